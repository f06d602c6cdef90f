"""`--local-time best`: run from cron over a pinned day, each device of the sample audience is sent in
its user's best hour (learnt from the sample open history, in its own time zone), users without
enough history at the fallback; the slot is journaled, kept, and shown by `runs show`."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

ENGAGEMENT = Path(__file__).resolve().parent.parent / "samples" / "engagement"
TEMPLATE = ENGAGEMENT.parent / "templates" / "welcome.yaml"
AUDIENCE = ENGAGEMENT / "best-time-audience.csv"
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _expected_hours() -> dict[str, tuple[int, str]]:
    """token -> (UTC hour of DAY it must be sent at, basis), computed from the files, not by pushctl."""
    with AUDIENCE.open(newline="") as fh:
        people = list(csv.DictReader(fh))
    with (ENGAGEMENT / "opens-history.csv").open(newline="") as fh:
        history = list(csv.DictReader(fh))
    expected = {}
    for person in people:
        zone = ZoneInfo(person["timezone"])
        hours = Counter(
            datetime.fromisoformat(e["ts"]).astimezone(zone).hour
            for e in history
            if e["user_id"] == person["user_id"]
            and DAY - timedelta(days=60) <= datetime.fromisoformat(e["ts"]) <= DAY
        )
        if sum(hours.values()) >= 3:
            local_hour, basis = max(hours.items(), key=lambda kv: (kv[1], -kv[0]))[0], "history"
        else:
            local_hour, basis = 9, "fallback"
        # The first hourly run of DAY (UTC) at which the device's local clock is in its hour.
        utc_hour = next(
            h for h in range(24) if (DAY + timedelta(hours=h)).astimezone(zone).hour == local_hour
        )
        expected[person["token"]] = (utc_hour, basis)
    return expected


def test_each_device_in_its_users_best_hour_and_the_rest_at_the_fallback(tmp_path: Path) -> None:
    expected = _expected_hours()
    assert Counter(basis for _, basis in expected.values()) == {"history": 9, "fallback": 3}
    assert len({hour for hour, _ in expected.values()}) >= 9  # a real spread over the day
    journal = tmp_path / "j.sqlite3"
    runner = CliRunner()
    history = str(ENGAGEMENT / "opens-history.csv")
    imported = runner.invoke(app, ["-o", "json", "engage", "import", history, "--journal", str(journal)])
    assert imported.exit_code == 0, imported.stderr
    first_seen: dict[str, int] = {}
    with Emulator(tmp_path / "emu") as emu:
        base = ["--config", str(emu.write_profile(tmp_path / "config.toml")), "--profile", "emulator"]
        args = ["send", str(TEMPLATE), "--audience", str(AUDIENCE), "--local-time", "best",
                "--best-fallback", "09:00", "--journal", str(journal), "--campaign", "best"]  # fmt: skip
        for hour in range(24):
            now = (DAY + timedelta(hours=hour)).isoformat()
            res = runner.invoke(app, [*base, "--output", "json", *args], env={"PUSHCTL_NOW": now})
            assert res.exit_code == 0, (hour, res.stderr)
            for token in emu.inbox.tokens() - first_seen.keys():
                first_seen[token] = hour
            if hour == 0:
                # Opens imported after the first run do not move a slot already chosen.
                moved = tmp_path / "moved.csv"
                ana = next(t for t, (h, _) in expected.items() if h == 6)
                moved.write_text("type,ts,token\n" + "".join(
                    f"opened,2026-02-{d:02d}T10:00:00Z,{ana}\n" for d in range(1, 28)))  # fmt: skip
                again = runner.invoke(app, ["engage", "import", str(moved), "--journal", str(journal)])
                assert again.exit_code == 0, again.stderr
        assert emu.inbox.duplicates() == {}
    assert first_seen == {token: hour for token, (hour, _) in expected.items()}

    shown = runner.invoke(
        app, ["--output", "json", "runs", "show", "best", "--journal", str(journal), "--show", "none"]
    )
    record = json.loads(shown.stdout.splitlines()[0])
    assert record["type"] == "slots" and record["fallback"] == {"09:00": 3}
    assert sum(record["best_hour"].values()) == 9
    table = runner.invoke(
        app, ["--output", "table", "runs", "show", "best", "--journal", str(journal), "--show", "none"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert "--local-time best: 9 devices at their user's best hour" in table.stdout
    assert "3 at the fallback (3 at 09:00)" in table.stdout


def test_wait_waits_for_the_next_slot_and_a_fallback_in_quiet_hours_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    runner = CliRunner()
    runner.invoke(app, ["engage", "import", str(ENGAGEMENT / "opens-history.csv"), "--journal", str(journal)])
    args = ["send", str(TEMPLATE), "--audience", str(AUDIENCE), "--local-time", "best",
            "--journal", str(journal), "--emulator"]  # fmt: skip
    res = runner.invoke(app, [*args, "--wait"], env={"PUSHCTL_NOW": "2026-03-02T02:30:00Z"})
    assert res.exit_code == 0, res.stderr
    # Nobody's slot holds 02:30 UTC; the earliest next one is Chen's and Fatima's (04:00 UTC).
    assert "waiting until 2026-03-02T04:00:00+00:00 for deferred devices (--wait)" in res.stderr
    refused = runner.invoke(app, [*args, "--quiet-hours", "22:00-08:00", "--best-fallback", "07:00"])
    assert (
        refused.exit_code == 2
        and "--best-fallback 07:00 lies entirely inside the quiet hours" in refused.stderr
    )
