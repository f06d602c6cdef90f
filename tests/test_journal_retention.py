"""Retention: `pushctl runs prune --older-than` and the profile's `journal.retention` delete the
per-device rows of runs that ended before the window, keep the run summaries, and shrink the file."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.config import parse_age
from pushctl.errors import ConfigError
from pushctl.journal import Journal, PersonalTable
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result

REPO = Path(__file__).resolve().parent.parent
WELCOME = str(REPO / "samples/templates/welcome.yaml")
LONG_AGO = "2026-06-01T10:00:00Z"
RECENTLY = "2026-11-20T10:00:00Z"
NOW = "2026-12-01T10:00:00Z"  # 183 days after LONG_AGO, 11 after RECENTLY
TABLES = ("devices", "device_users")


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def invoke(*args: str, now: str = NOW, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "PUSHCTL_NOW": now, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def audience(path: Path, n: int, prefix: str) -> Path:
    with path.open("w") as fh:
        fh.write("token,platform,user_id,name\n")
        for i in range(n):
            fh.write(f"{prefix}{i:013x}{'ab' * 25},ios,{prefix}-u{i},N{i}\n")  # 64 hex digits
    return path


def send(journal: Path, people: Path, now: str, *extra: str) -> tuple[str, str]:
    args = ["-o", "json", "send", WELCOME, "--audience", str(people), "--emulator", "--journal", str(journal)]
    code, out, err = invoke(*args, *extra, now=now)
    assert code == 0, err
    return json.loads(out.splitlines()[-1])["campaign"], err


def runs(journal: Path) -> dict[str, dict[str, Any]]:
    code, out, err = invoke("-o", "json", "runs", "list", "--journal", str(journal))
    assert code == 0, err
    return {r["campaign"]: r for r in map(json.loads, out.splitlines())}


def counts(journal: Path) -> tuple[int, int]:
    conn = sqlite3.connect(journal)
    try:
        devices, users = (conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES)
        return devices, users
    finally:
        conn.close()


def size(journal: Path) -> int:
    return sum(p.stat().st_size for p in Journal.files(journal) if p.exists())


def test_prune_removes_old_device_rows_keeps_summaries_and_shrinks_the_file(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    old, _ = send(journal, audience(tmp_path / "old.csv", 3000, "a"), LONG_AGO)
    new, _ = send(journal, audience(tmp_path / "new.csv", 20, "b"), RECENTLY)
    before = runs(journal)
    assert counts(journal) == (3020, 3020)
    size_before = size(journal)

    code, out, err = invoke("-o", "json", "runs", "prune", "--older-than", "90d", "--journal", str(journal))
    assert code == 0, err
    report = json.loads(out)
    assert report["runs"] == [old] and report["removed"] == {"devices": 3000, "device_users": 3000}
    assert report["vacuum"] == "done" and report["bytes_before"] == size_before
    assert counts(journal) == (20, 20)  # the recent run keeps its rows
    assert size(journal) == report["bytes_after"] < size_before / 5  # the file really shrank
    assert b"a0000000000000" not in journal.read_bytes()

    after = runs(journal)
    assert after[old].pop("removed") == 3000 and after[old].pop("pruned_at") is not None
    assert before[old].pop("removed") == 0 and before[old].pop("pruned_at") is None
    assert after[old] == before[old] and after[new] == before[new]  # totals, outcomes: unchanged
    assert after[old]["total"] == 3000 and after[old]["outcomes"]["delivered"] == 3000

    # Idempotent: a second prune removes nothing and leaves the file as it is.
    code, out, err = invoke("-o", "json", "runs", "prune", "--older-than", "90d", "--journal", str(journal))
    assert code == 0, err
    again = json.loads(out)
    assert (again["runs"], again["rows"], again["vacuum"]) == ([], 0, "not needed")
    assert again["bytes_after"] == report["bytes_after"]
    code, out, err = invoke("-o", "table", "runs", "prune", "--older-than", "1w", "--journal", str(journal))
    assert code == 0 and "runs that ended before 2026-11-24" in out


def test_show_of_a_pruned_run_and_resuming_it(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    people = audience(tmp_path / "old.csv", 5, "c")
    old, _ = send(journal, people, LONG_AGO)
    assert invoke("runs", "prune", "--older-than", "90d", "--journal", str(journal))[0] == 0
    code, _, err = invoke("-o", "table", "runs", "show", old, "--journal", str(journal))
    assert code == 0 and "5 devices' rows were removed (pruned on 2026-12-01" in err
    # The same send again would be the same campaign: refused, since it would reach everyone again.
    code, _, err = invoke("send", WELCOME, "--audience", str(people), "--emulator", "--journal", str(journal))
    assert code == 2 and f"campaign {old} ended long ago and its device rows were pruned" in err
    campaign, _ = send(journal, people, NOW, "--force")
    assert campaign == old and counts(journal) == (5, 5)


def test_runs_being_sent_are_never_pruned_but_abandoned_ones_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "J"
    monkeypatch.setenv("PUSHCTL_NOW", LONG_AGO)
    with Journal(path) as journal:
        runs_ = {}
        for campaign in ("live", "dead"):
            run = journal.open_run(campaign, template_fp="t", audience_fp="a", options={})
            run.mark_inflight([(f"{campaign}-{'ab' * 30}", Platform.IOS, 1, "")])
            runs_[campaign] = run
        runs_["dead"].abandon()  # as if its process had died: no lock holder, status still running
        monkeypatch.setenv("PUSHCTL_NOW", NOW)
        code, out, err = invoke("-o", "json", "runs", "prune", "--older-than", "90d", "--journal", str(path))
        assert code == 0, err
        report = json.loads(out)
        assert report["runs"] == ["dead"] and report["removed"] == {"devices": 1}
        assert report["vacuum"].startswith("put off: campaign live is being sent")
        runs_["live"].finish()
    listed = runs(path)
    assert listed["dead"]["inflight"] == 1 and listed["dead"]["removed"] == 1  # counted as it was
    assert listed["live"]["removed"] == 0


def test_runs_prune_takes_its_age_from_the_profile(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    old, _ = send(journal, audience(tmp_path / "old.csv", 50, "d"), LONG_AGO)
    send(journal, audience(tmp_path / "new.csv", 3, "e"), RECENTLY)
    config = tmp_path / "config.toml"
    code, _, err = invoke("--config", str(config), "config", "set", "journal.retention", "90d")
    assert code == 0, err
    assert 'retention = "90d"' in config.read_text()
    env = {"PUSHCTL_CONFIG": str(config)}
    code, out, err = invoke("-o", "json", "runs", "prune", "--journal", str(journal), env=env)
    assert code == 0, err
    assert json.loads(out)["runs"] == [old] and counts(journal) == (3, 3)


def test_send_applies_the_retention_of_its_profile(tmp_path: Path) -> None:
    from pushctl.emulator import Emulator

    journal = tmp_path / "J"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        base = ["--config", str(config), "--profile", "emulator", "-o", "json", "send", WELCOME]
        old = audience(tmp_path / "old.csv", 40, "f")
        code, _, err = invoke(*base, "--audience", str(old), "--journal", str(journal), now=LONG_AGO)
        assert code == 0, err
        setting = ["config", "set", "profiles.emulator.journal.retention", "30d"]
        assert invoke("--config", str(config), *setting)[0] == 0
        new = audience(tmp_path / "new.csv", 2, "9")
        code, _, err = invoke(*base, "--audience", str(new), "--journal", str(journal))
        assert code == 0, err
    assert "journal retention 30d: removed 80 rows of 1 run(s) that ended before 2026-11-01" in err
    assert counts(journal) == (2, 2)
    assert [r["total"] for r in sorted(runs(journal).values(), key=lambda r: r["started_at"])] == [40, 2]


def test_prune_needs_an_age_and_ages_are_checked(tmp_path: Path) -> None:
    journal = tmp_path / "J"
    with Journal(journal):
        pass
    code, _, err = invoke("runs", "prune", "--journal", str(journal))
    assert code == 2 and "pushctl config set journal.retention 90d" in err
    code, _, err = invoke("runs", "prune", "--older-than", "3 months", "--journal", str(journal))
    assert code == 2 and "not an age: '3 months'" in err
    assert parse_age("36h").total_seconds() == 36 * 3600 and parse_age("12w").days == 84
    with pytest.raises(ConfigError):
        parse_age("0d")
    config = tmp_path / "config.toml"
    config.write_text('[profiles.default.journal]\nretention = "forever"\n')
    code, _, err = invoke("--config", str(config), "runs", "prune", "--journal", str(journal))
    assert code == 2 and "journal.retention" in err and "expected an age such as 90d" in err


def test_a_registered_table_tied_to_no_run_expires_by_its_time_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seam the trigger and insights rooms plug into: register a table, get erasure and retention."""
    import pushctl.journal.erasure as erasure

    events = PersonalTable("room_events", token="token", user="user_id", at="occurred_at")
    monkeypatch.setattr(erasure, "PERSONAL_TABLES", (*erasure.PERSONAL_TABLES, events))
    path = tmp_path / "J"
    with Journal(path) as journal:
        journal._conn.execute("CREATE TABLE room_events (token TEXT, user_id TEXT, occurred_at REAL)")
        journal._conn.executemany(
            "INSERT INTO room_events VALUES (?, ?, ?)",
            [("t-old", "u1", 1_000.0), ("t-new", "u1", 2e9), ("t-other", "u2", 2e9)],
        )
        run = journal.open_run("c", template_fp="t", audience_fp="a", options={})
        run.note_users([("t-new", "u1")])
        run.record(Result("t-new", Platform.IOS, Outcome.DELIVERED, status=200, attempts=1))
        run.finish()
        pruned = journal.prune(parse_age("90d"))
        assert pruned.removed == {"room_events": 1} and pruned.runs == []
        forgotten = journal.forget(users=["u1"])
        assert forgotten.removed == {"devices": 1, "device_users": 1, "room_events": 1}
        left = journal._conn.execute("SELECT token FROM room_events").fetchall()
        assert left == [("t-other",)]
        assert journal.run_info("c").total == 1  # the run's count survived the erasure
