"""`pushctl runs list|show|export|prune-list` through Typer's CliRunner."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.delivery import Summary
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result

ENV = {"COLUMNS": "120"}


def _results() -> list[Result]:
    out = []
    for i in range(120):
        bad = i % 10 == 0
        out.append(
            Result(
                token=f"{i:064x}",
                platform=Platform.IOS if i % 2 else Platform.ANDROID,
                outcome=Outcome.INVALID_TOKEN if bad else Outcome.DELIVERED,
                reason="Unregistered" if bad else "",
                status=410 if bad else 200,
                attempts=2 if i % 3 == 0 else 1,
                latency_ms=12.5,
                provider_id=f"id-{i}",
                variant="A" if i % 4 else "B",
                line=i + 1,
            )
        )
    return out


@pytest.fixture
def journal_file(tmp_path: Path) -> Path:
    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        run = journal.open_run("spring", template_fp="t", audience_fp="a", options={})
        for result in _results():
            run.record(result)
        run.finish()
        run = journal.open_run("crashed", template_fp="t", audience_fp="a", options={})
        run.mark_inflight([("tok-inflight-0000000000000000000000", Platform.ANDROID, 1, "")])
        run.abandon()
    return path


def _invoke(*args: str, journal: Path | None = None, output: str = "table") -> tuple[int, str, str]:
    extra = ["--journal", str(journal)] if journal is not None else []
    result = CliRunner().invoke(app, ["-o", output, *args, *extra], env=ENV)
    return result.exit_code, result.stdout, result.stderr


def test_list_table_and_json(journal_file: Path) -> None:
    code, out, err = _invoke("runs", "list", journal=journal_file)
    assert (code, err) == (0, "")
    assert "spring" in out and "completed" in out and "crashed" in out and "abandoned" in out
    code, out, _ = _invoke("runs", "list", journal=journal_file, output="json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["campaign"] for r in rows] == ["crashed", "spring"]
    spring = rows[1]
    assert spring["type"] == "run"
    assert spring["outcomes"]["delivered"] == 108 and spring["outcomes"]["invalid_token"] == 12
    assert rows[0]["inflight"] == 1 and rows[0]["status"] == "abandoned"


def test_list_without_a_journal_says_no_runs_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"
    code, out, err = _invoke("runs", "list", journal=path)
    assert (code, out) == (0, "")
    assert "no runs yet" in err
    assert not path.exists()


def test_journal_path_from_environment(journal_file: Path) -> None:
    env = {"PUSHCTL_JOURNAL": str(journal_file)}
    result = CliRunner().invoke(app, ["-o", "json", "runs", "list"], env=env)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2


def test_show_table_lists_failures_first_then_summary(journal_file: Path) -> None:
    code, out, err = _invoke("runs", "show", "spring", journal=journal_file)
    assert (code, err) == (0, "")
    assert out.index("Devices") < out.index("Summary") < out.index("By variant")
    assert out.index("invalid_token") < out.index("delivered")  # failures first
    assert out.count("Unregistered") == 12 + 1  # 12 device rows + 1 summary row
    assert "0000…000a" in out
    assert "campaign spring, 120 devices" in out and "40 retries" in out


def test_show_all_caps_rows_with_a_note(journal_file: Path) -> None:
    code, out, _ = _invoke("runs", "show", "spring", "--show", "all", "--limit", "15", journal=journal_file)
    assert code == 0
    table = out[: out.index("Summary")]
    # All 12 failures come before any delivered row, then 3 delivered rows fill the cap.
    assert table.count("invalid_token") == 12 and table.count("delivered") == 3
    assert "… 105 more rows: see `pushctl runs export spring`" in out


def test_show_json_matches_the_journal(journal_file: Path) -> None:
    code, out, err = _invoke("runs", "show", "spring", journal=journal_file, output="json")
    assert (code, err) == (0, "")
    objs = [json.loads(line) for line in out.splitlines()]
    results, summary = objs[:-1], objs[-1]
    assert all(o["type"] == "result" for o in results) and len(results) == 120
    assert [o["outcome"] for o in results[:12]] == ["invalid_token"] * 12
    expected = {r.token: {"type": "result", **r.to_dict()} for r in _results()}
    assert {o["token"]: o for o in results} == expected
    live = Summary()
    for r in _results():
        live.add(r)
    assert summary["type"] == "summary"
    assert summary["outcomes"] == live.to_dict()["outcomes"]
    assert summary["variants"] == live.to_dict()["variants"]
    assert (summary["total"], summary["retries"], summary["exit_code"]) == (120, 40, 1)


def test_show_none_prints_only_the_summary(journal_file: Path) -> None:
    code, out, _ = _invoke("runs", "show", "spring", "--show", "none", journal=journal_file, output="json")
    assert code == 0
    (line,) = out.splitlines()
    assert json.loads(line)["type"] == "summary"


def test_show_warns_about_devices_left_in_flight(journal_file: Path) -> None:
    code, out, err = _invoke("runs", "show", "crashed", journal=journal_file, output="json")
    assert code == 0
    assert "1 devices were in flight" in err
    assert json.loads(out.splitlines()[-1])["total"] == 0


@pytest.mark.parametrize("command", ["show", "export", "prune-list"])
def test_unknown_run_is_exit_2(journal_file: Path, command: str) -> None:
    code, out, err = _invoke("runs", command, "sprin", journal=journal_file)
    assert code == 2
    assert out == ""
    assert "no run 'sprin'" in err and "did you mean spring?" in err


def test_missing_journal_is_exit_2(tmp_path: Path) -> None:
    code, _, err = _invoke("runs", "show", "spring", journal=tmp_path / "none.sqlite3")
    assert code == 2
    assert "no journal at" in err


@pytest.mark.parametrize("command", ["show", "list", "merge"])
def test_a_journal_that_is_a_device_or_a_directory_says_so(tmp_path: Path, command: str) -> None:
    for path, kind in ((Path("/dev/zero"), "character device"), (tmp_path, "directory")):
        if command == "merge":
            code, _, err = _invoke("runs", "merge", str(path), "--into", str(tmp_path / "merged.sqlite3"))
        else:
            code, _, err = _invoke("runs", command, *(["spring"] if command == "show" else []), journal=path)
        assert code == 2, err
        assert kind in err and "no runs yet" not in err


def test_export_csv_and_jsonl(journal_file: Path, tmp_path: Path) -> None:
    code, out, _ = _invoke("runs", "export", "spring", "--format", "csv", journal=journal_file)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 120
    assert rows[0] == {
        "token": "0" * 64,
        "platform": "android",
        "outcome": "invalid_token",
        "reason": "Unregistered",
        "status": "410",
        "attempts": "2",
        "latency_ms": "12.5",
        "provider_id": "id-0",
        "variant": "B",
        "line": "1",
    }

    target = tmp_path / "out.jsonl"
    code, out, err = _invoke("runs", "export", "spring", "--out", str(target), journal=journal_file)
    assert (code, out) == (0, "")
    assert "wrote 120 rows" in err
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [o["line"] for o in lines] == list(range(1, 121))

    csv_target = tmp_path / "out.csv"
    assert _invoke("runs", "export", "spring", "--out", str(csv_target), journal=journal_file)[0] == 0
    assert csv_target.read_text().startswith("token,platform,outcome")


def test_prune_list_plain_file_and_json(journal_file: Path, tmp_path: Path) -> None:
    invalid = [f"{i:064x}" for i in range(0, 120, 10)]
    code, out, _ = _invoke("runs", "prune-list", "spring", journal=journal_file)
    assert (code, out.splitlines()) == (0, invalid)

    target = tmp_path / "prune.txt"
    code, out, err = _invoke("runs", "prune-list", "spring", "--out", str(target), journal=journal_file)
    assert (code, out) == (0, "")
    assert target.read_text().splitlines() == invalid
    assert "wrote 12 invalid tokens" in err

    code, out, _ = _invoke("runs", "prune-list", "spring", journal=journal_file, output="json")
    assert [json.loads(line)["token"] for line in out.splitlines()] == invalid


@pytest.mark.parametrize(
    "command", [["runs", "show", "spring"], ["runs", "export", "spring", "--format", "jsonl"]]
)
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path, command: list[str]) -> None:
    import os
    import shlex
    import subprocess
    import sys

    journal_file = tmp_path / "big.sqlite3"
    with Journal(journal_file) as journal:  # far more than a pipe buffer holds
        run = journal.open_run("spring", template_fp="t", audience_fp="a", options={})
        for i in range(20_000):
            run.record(Result(f"{i:064x}", Platform.IOS, Outcome.DELIVERED, attempts=1, line=i + 2))
        run.finish()

    argv = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "pushctl", "-o", "json", *command])
    env = dict(os.environ, PUSHCTL_JOURNAL=str(journal_file))
    proc = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {argv} | head -1"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == "", proc.stderr


def test_a_file_that_is_not_a_journal_is_an_input_error(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("this is not a database\n" * 100)
    result = CliRunner().invoke(app, ["runs", "list", "--journal", str(garbage)])
    assert result.exit_code == 2
    assert str(garbage) in result.stderr and "cannot open the journal" in result.stderr
    assert "Traceback" not in result.stderr
