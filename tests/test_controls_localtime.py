"""--local-time and quiet hours against the emulator, run cron-style with a pinned clock.

The audience (``samples/audience-timezones.csv``) has an iOS and an Android device in each of 23
zones (whole, half- and three-quarter-hour offsets, both hemispheres) plus two rows without a
zone. The command runs every 30 minutes across one UTC day (``PUSHCTL_NOW``); the emulator's
inbox says at which run each device was first sent, and that none was sent twice.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AUDIENCE = SAMPLES / "audience-timezones.csv"
TEMPLATE = SAMPLES / "templates" / "welcome.yaml"
DAY = datetime(2026, 12, 1, tzinfo=UTC)
RUNS = [DAY + timedelta(minutes=30 * i) for i in range(48)]



def _rows() -> list[dict[str, str]]:
    with AUDIENCE.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _zone(row: dict[str, str]) -> ZoneInfo:
    return ZoneInfo(row["timezone"] or "UTC")  # the tests pass --default-timezone UTC


def _first_run(row: dict[str, str], due: Callable[[time], bool]) -> datetime:
    """The first cron run at which the device's local wall-clock time satisfies ``due``."""
    return next(t for t in RUNS if due(t.astimezone(_zone(row)).time()))


def _cron_day(tmp_path: Path, extra: list[str]) -> dict[str, Any]:
    """Run the send at every 30-minute mark of DAY; what each run printed and first delivered."""
    runner = CliRunner()
    first_seen: dict[str, datetime] = {}
    runs: list[dict[str, Any]] = []
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        for when in RUNS:
            states_before = _states(journal)
            res = runner.invoke(
                app,
                ["--config", str(cfg), "--profile", "emulator", "--output", "json", "send", str(TEMPLATE),
                 "--audience", str(AUDIENCE), "--default-timezone", "UTC", "--journal", str(journal), *extra],
                env={"PUSHCTL_NOW": when.isoformat()},
            )  # fmt: skip
            assert res.exit_code == 0, (when, res.stdout, res.stderr)
            lines = [json.loads(line) for line in res.stdout.splitlines()]
            assert lines[-1]["type"] == "summary"
            for token in emu.inbox.tokens() - first_seen.keys():
                first_seen[token] = when
            runs.append(
                {"when": when, "results": lines[:-1], "summary": lines[-1], "stderr": res.stderr,
                 "before": states_before}
            )  # fmt: skip
        assert emu.inbox.duplicates() == {}
        assert emu.inbox.total() == len(first_seen)
    return {"first_seen": first_seen, "runs": runs, "final": _states(journal)}


def _states(journal: Path) -> dict[str, tuple[str, str]]:
    if not journal.exists():
        return {}
    with sqlite3.connect(journal) as conn:
        return {t: (s, o) for t, s, o in conn.execute("SELECT token, state, outcome FROM devices")}


def _check_reconsidered(runs: list[dict[str, Any]]) -> None:
    """Each run reports exactly the devices not settled before it; settled ones are left alone."""
    for run in runs:
        settled = {t for t, (state, _) in run["before"].items() if state == "settled"}
        reported = {r["token"] for r in run["results"]}
        assert not reported & settled, run["when"]
        assert len(reported) + len(settled) == len(_rows()), run["when"]
        for r in run["results"]:
            if run["before"].get(r["token"], ("",))[0] == "deferred":
                assert r["outcome"] in ("deferred", "delivered")


def test_local_time_sends_each_device_once_at_its_slot(tmp_path: Path) -> None:
    day = _cron_day(tmp_path, ["--local-time", "09:00"])
    rows = _rows()
    slot = (time(9), time(10))
    for row in rows:
        expected = _first_run(row, lambda t: slot[0] <= t < slot[1])
        assert day["first_seen"].get(row["token"]) == expected, row
    assert len(day["first_seen"]) == len(rows)
    # Same command, same derived campaign id, at every run; the first run starts it, the rest continue.
    ids = {run["summary"]["campaign"] for run in day["runs"]}
    assert len(ids) == 1
    (cid,) = ids
    assert f"campaign {cid}" in day["runs"][0]["stderr"]
    assert all(f"continuing {cid}" in run["stderr"] for run in day["runs"][1:])
    first = day["runs"][0]
    deferred = [r for r in first["results"] if r["outcome"] == "deferred"]
    assert deferred and all(r["reason"] == "local_time" for r in deferred)
    assert "deferred (local_time): run again after" in first["stderr"]
    _check_reconsidered(day["runs"])
    assert {o for _, o in day["final"].values()} == {"delivered"}
    last = day["runs"][-1]["summary"]
    assert last["outcomes"]["delivered"] == len(rows) and last["outcomes"]["deferred"] == 0


def test_quiet_hours_inside_the_local_slot_defers_to_the_end_of_the_window(tmp_path: Path) -> None:
    # Slot 07:30-08:30 local, quiet until 08:00: every device is seen at 07:30 (deferred, quiet_hours)
    # and sent at the first run at or after 08:00 local.
    day = _cron_day(tmp_path, ["--local-time", "07:30", "--quiet-hours", "22:00-08:00"])
    quiet_seen: set[str] = set()
    for run in day["runs"]:
        quiet_seen |= {r["token"] for r in run["results"] if r["reason"] == "quiet_hours"}
        assert all(r["outcome"] == "deferred" for r in run["results"] if r["reason"] == "quiet_hours")
    for row in _rows():
        expected = _first_run(row, lambda t: time(8) <= t < time(8, 30))
        assert day["first_seen"].get(row["token"]) == expected, row
        # Deferred first wherever a run before the send fell in 07:30-08:00 local (not for UTC+8, whose
        # 07:30 is 23:30 the day before): whole / half-hour offsets at 07:30, Kathmandu / Chatham at 07:45.
        in_quiet_part = any(
            time(7, 30) <= t.astimezone(_zone(row)).time() < time(8) for t in RUNS if t < expected
        )
        assert (row["token"] in quiet_seen) == in_quiet_part, row
    assert len(quiet_seen) > len(_rows()) // 2


def test_quiet_hours_alone_defer_night_devices_until_morning(tmp_path: Path) -> None:
    day = _cron_day(tmp_path, ["--quiet-hours", "22:00-08:00"])
    first = day["runs"][0]
    outcomes = {r["token"]: (r["outcome"], r["reason"]) for r in first["results"]}
    for row in _rows():
        local = DAY.astimezone(_zone(row)).time()
        night = local >= time(22) or local < time(8)
        assert outcomes[row["token"]] == (("deferred", "quiet_hours") if night else ("delivered", "")), row
        expected = _first_run(row, lambda t: time(8) <= t < time(22))
        assert day["first_seen"][row["token"]] == expected, row
    assert first["summary"]["outcomes"]["deferred"] > 0
    assert "deferred (quiet_hours): run again after" in first["stderr"]
    _check_reconsidered(day["runs"])
