"""What `pushctl send` prints and writes: the README's first command, JSON Lines, result files, dry run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

REPO = Path(__file__).resolve().parent.parent
WELCOME = "samples/templates/welcome.yaml"
SAMPLE_AUDIENCE = "samples/audience.csv"
# The sample's deliberately bad tokens and the reason each must show.
SAMPLE_INVALID = {
    "dead": "Unregistered",
    "0bad": "DeviceTokenNotForTopic",
    "261f": "BadDeviceToken",
    "unre": "UNREGISTERED",
    "othe": "SENDER_ID_MISMATCH",
    "shor": "INVALID_ARGUMENT",
}


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line must be one JSON object (nothing else goes to stdout)."""
    objs = []
    for number, line in enumerate(stdout.splitlines(), 1):
        obj = json.loads(line)  # raises on a non-JSON line
        assert isinstance(obj, dict), f"stdout line {number} is not an object: {line!r}"
        objs.append(obj)
    return objs


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "160"})
    return result.exit_code, result.stdout, result.stderr


def test_readme_first_command_as_typed(tmp_path: Path) -> None:
    """Exactly the README's command, in a child process; piped stdout means JSON Lines."""
    env = dict(os.environ, PUSHCTL_JOURNAL=str(tmp_path / "journal.sqlite3"))
    proc = subprocess.run(
        [sys.executable, "-m", "pushctl", "send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr  # the sample holds deliberately invalid tokens
    objs = _json_lines(proc.stdout)
    results, summary = objs[:-1], objs[-1]
    assert summary["type"] == "summary" and all(o["type"] == "result" for o in results)
    # The sample reaches all four platforms: APNs, FCM, Web Push and HMS.
    assert summary["outcomes"]["delivered"] == 9
    assert summary["outcomes"]["invalid_token"] == 6
    assert summary["total"] == 15 == len(results)
    assert set(summary["platforms"]) == {"ios", "android", "web", "webpush", "hms"}
    assert summary["platforms"]["webpush"] == {"delivered": 1}
    assert summary["platforms"]["hms"] == {"delivered": 1}
    assert summary["exit_code"] == 1
    reasons = {r["token"][:4]: r["reason"] for r in results if r["outcome"] == "invalid_token"}
    assert reasons == SAMPLE_INVALID
    assert "Traceback" not in proc.stderr


def test_readme_first_command_shows_device_and_summary_tables() -> None:
    code, stdout, stderr = _invoke(
        "--output", "table", "send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator"
    )
    assert code == 1, stderr
    assert "Devices" in stdout and "Summary" in stdout  # --show all (default), failures first
    device_rows = [line for line in stdout.split("Summary")[0].splitlines() if "│" in line]
    assert len(device_rows) == 15
    outcomes = ["delivered" if "delivered" in row else "failure" for row in device_rows]
    assert outcomes == sorted(outcomes, key=lambda o: o == "delivered")
    header = next(line for line in stdout.splitlines() if "token" in line and "outcome" in line)
    for column in ("platform", "reason", "tries", "ms"):
        assert column in header
    for prefix, reason in SAMPLE_INVALID.items():
        row = next(line for line in stdout.splitlines() if prefix in line and "invalid_token" in line)
        assert reason in row, row
    summary_rows = [line for line in stdout.splitlines() if "delivered" in line]
    assert any(" 9 " in line for line in summary_rows)
    assert "By platform" in stdout
    assert any("webpush" in line and " 1 " in line for line in stdout.splitlines())
    assert "15 devices" in stdout  # the closing line: devices, duration, throughput, retries
    assert "{" not in stdout  # tables, not JSON
    assert "Traceback" not in stderr


def test_json_output_is_json_lines_only(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, stdout, stderr = _invoke(
            "--config",
            str(config),
            "--profile",
            "emulator",
            "--output",
            "json",
            "send",
            WELCOME,
            "--audience",
            SAMPLE_AUDIENCE,
            "--journal",
            str(tmp_path / "j.sqlite3"),
        )
    assert code == 1, stderr
    objs = _json_lines(stdout)
    assert [o["type"] for o in objs] == ["result"] * 15 + ["summary"]
    keys = {"token", "platform", "outcome", "reason", "status", "attempts", "latency_ms", "provider_id"}
    for obj in objs[:-1]:
        assert keys <= set(obj)
        assert obj["attempts"] == 1 and obj["status"] in (200, 201, 400, 403, 404, 410)  # Web Push: 201
        if obj["outcome"] == "delivered":
            assert obj["provider_id"]  # apns-id or the FCM message name
    summary = objs[-1]
    assert summary["outcomes"]["delivered"] == 9 and summary["outcomes"]["invalid_token"] == 6
    assert summary["retries"] == 0
    # Diagnostics went to stderr, none of it to stdout.
    assert "campaign" in stderr


def test_result_files_are_written_as_the_run_goes(tmp_path: Path) -> None:
    """Kill -9 in the middle of a run: both files hold every device answered so far, whole lines."""
    n = 4_000
    audience = tmp_path / "audience.csv"
    tokens = []
    with audience.open("w") as fh:
        fh.write("token,platform,name\n")
        for i in range(n):
            # every 10th APNs token is a test token the emulator answers 410 Unregistered
            token = (f"dead{i:06x}" if i % 10 == 0 else f"{i:010x}") + "cd" * 27
            tokens.append(token)
            fh.write(f"{token},ios,n{i}\n")
    results = tmp_path / "out" / "results.csv"
    invalid = tmp_path / "out" / "invalid.txt"
    with Emulator(tmp_path / "emu", latency_ms=5) as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        cmd = [
            sys.executable,
            "-m",
            "pushctl",
            "--config",
            str(config),
            "--profile",
            "emulator",
            "send",
            WELCOME,
            "--audience",
            str(audience),
            "--journal",
            str(tmp_path / "j.sqlite3"),
            "--concurrency",
            "10",
            "--results",
            str(results),
            "--invalid-tokens",
            str(invalid),
        ]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if results.exists() and results.stat().st_size > 300 * 100:
                    break
                time.sleep(0.02)
            proc.kill()
        finally:
            proc.wait(30)
            assert proc.stderr is not None
            proc.stderr.close()
        answered = {t for t in tokens if emu.inbox.count(t) == 1}
        assert all(emu.inbox.count(t) <= 1 for t in tokens)

    assert proc.returncode == -9
    text = results.read_text()
    assert text.endswith("\n")  # flushed line by line: no half-written row
    rows = list(csv.DictReader(text.splitlines()))
    assert 100 < len(rows) < n
    delivered = {r["token"] for r in rows if r["outcome"] == "delivered"}
    dead = {r["token"] for r in rows if r["outcome"] == "invalid_token"}
    assert delivered <= answered  # every delivered row was received by its device
    assert all(t.startswith("dead") for t in dead) and dead
    assert {r["reason"] for r in rows if r["outcome"] == "invalid_token"} == {"Unregistered"}
    prune = invalid.read_text()
    assert prune.endswith("\n")
    assert set(prune.split()) == dead


def test_result_files_after_a_complete_run(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    invalid = tmp_path / "invalid.txt"
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, stdout, stderr = _invoke(
            "--config",
            str(config),
            "--profile",
            "emulator",
            "--output",
            "json",
            "send",
            WELCOME,
            "--audience",
            SAMPLE_AUDIENCE,
            "--journal",
            str(tmp_path / "j.sqlite3"),
            "--results",
            str(results),
            "--invalid-tokens",
            str(invalid),
        )
    assert code == 1, stderr
    printed = [o for o in _json_lines(stdout) if o["type"] == "result"]
    written = [json.loads(line) for line in results.read_text().splitlines()]
    key = lambda o: (o["token"], o["outcome"], o["reason"])  # noqa: E731
    assert sorted(map(key, written)) == sorted(map(key, printed))
    prune = invalid.read_text().splitlines()
    assert sorted(prune) == sorted(o["token"] for o in printed if o["outcome"] == "invalid_token")
    assert len(prune) == 6


def test_dry_run_sends_nothing_and_prints_what_would_be_sent(tmp_path: Path) -> None:
    with Emulator(tmp_path / "emu") as emu:
        config = emu.write_profile(tmp_path / "config.toml")
        code, stdout, stderr = _invoke(
            "--config",
            str(config),
            "--profile",
            "emulator",
            "--output",
            "json",
            "send",
            WELCOME,
            "--audience",
            SAMPLE_AUDIENCE,
            "--journal",
            str(tmp_path / "j.sqlite3"),
            "--dry-run",
        )
        stats = emu.stats()
    assert code == 0, stderr
    assert stats["inbox_total"] == 0
    assert not stats["apns"] and not stats["fcm"] and not stats["oauth"]  # no request at all
    objs = _json_lines(stdout)
    planned = [o for o in objs if o["type"] == "dry_run"]
    assert len(planned) == 15
    alice = next(o for o in planned if o["token"].startswith("a4c1"))
    assert alice["payload"]["aps"]["alert"]["title"] == "Welcome, Alice!"
    assert alice["path"].startswith("/3/device/a4c1")
    benoit = next(o for o in planned if o["token"].startswith("jORS"))
    assert benoit["payload"]["message"]["notification"]["title"] == "Bienvenue, Benoît !"
    summary = objs[-1]
    assert summary["type"] == "summary" and summary["dry_run"] is True
    assert summary["would_send"] == {"apns": 6, "fcm": 7, "webpush": 1, "hms": 1}
    sofia = next(o for o in planned if o["platform"] == "webpush")
    assert sofia["payload"]["title"] == "Welcome, Sofia!" and sofia["encrypted_bytes"] > sofia["bytes"]
    assert not (tmp_path / "j.sqlite3").exists()  # no campaign was started


def test_dry_run_table_mode_says_nothing_was_sent() -> None:
    code, stdout, stderr = _invoke(
        "--output", "table", "send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator", "--dry-run"
    )
    assert code == 0, stderr
    assert "dry run: nothing was sent" in stdout
    assert "Welcome, Alice!" in stdout


def test_show_all_lists_every_device_failures_first() -> None:
    code, stdout, stderr = _invoke(
        "--output", "table", "send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator", "--show", "all"
    )
    assert code == 1, stderr
    assert "Devices" in stdout
    rows = [line for line in stdout.splitlines() if "delivered" in line or "invalid_token" in line]
    device_rows = rows[:15]
    assert [("invalid_token" in r) for r in device_rows] == [True] * 6 + [False] * 9


def test_a_row_missing_a_variable_is_rejected_and_the_campaign_goes_on(tmp_path: Path) -> None:
    template = tmp_path / "code.yaml"
    template.write_text('title: "Hi {{ name }}"\nbody: "Your code: {{ code }}"\n')
    audience = tmp_path / "audience.csv"
    rows = [f"{i:02x}{'ab' * 31},ios,n{i},C{i}" for i in range(1, 40)]
    rows[20] = rows[20].rsplit(",", 1)[0] + ","  # row 22 has no code
    audience.write_text("token,platform,name,code\n" + "\n".join(rows) + "\n")
    code, stdout, stderr = _invoke(
        "send",
        str(template),
        "--audience",
        str(audience),
        "--emulator",
        "--journal",
        str(tmp_path / "j.sqlite3"),
    )
    objs = [json.loads(line) for line in stdout.splitlines()]
    results = [o for o in objs if o["type"] == "result"]
    rejected = [r for r in results if r["outcome"] == "rejected"]
    assert code == 1, stderr
    assert [r["line"] for r in rejected] == [22]
    assert rejected[0]["reason"] == "template field 'body': variable 'code' is not defined"
    assert objs[-1]["type"] == "summary" and objs[-1]["outcomes"]["delivered"] == 38


def test_a_template_that_renders_for_nobody_stops_before_any_send(tmp_path: Path) -> None:
    template = tmp_path / "bad.yaml"
    template.write_text('title: "Hi {{ nickname }}"\n')
    code, stdout, stderr = _invoke(
        "send",
        str(template),
        "--audience",
        SAMPLE_AUDIENCE,
        "--emulator",
        "--journal",
        str(tmp_path / "j.sqlite3"),
    )
    assert code == 2
    assert "variable 'nickname' is not defined" in stderr and "Traceback" not in stderr
    assert '"type": "result"' not in stdout


def test_skipped_bad_rows_and_duplicates_are_counted_in_the_summary(tmp_path: Path) -> None:
    code, stdout, stderr = _invoke(
        "send",
        WELCOME,
        "--audience",
        "samples/audience-bad-rows.csv",
        "--emulator",
        "--on-bad-row",
        "skip",
        "--journal",
        str(tmp_path / "j.sqlite3"),
    )
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["type"] == "summary", stderr
    assert code == summary["exit_code"]
    assert summary["audience"]["bad_rows"] >= 3
    assert summary["audience"]["duplicates"] >= 1
    assert "bad audience rows skipped" in stderr


def test_dry_run_shows_the_collapse_id_and_campaign_of_the_real_send(tmp_path: Path) -> None:
    code, stdout, _ = _invoke("send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator", "--dry-run")
    first = json.loads(stdout.splitlines()[0])
    code2, real, _ = _invoke(
        "send", WELCOME, "--audience", SAMPLE_AUDIENCE, "--emulator", "--journal", str(tmp_path / "j.sqlite3")
    )
    campaign = json.loads(real.splitlines()[-1])["campaign"]
    assert (code, code2) == (0, 1)
    assert first["headers"]["apns-collapse-id"] == f"pushctl-{campaign}"
