"""Campaign controls through `pushctl send` against the emulator: --where errors, suppression,
known-invalid tokens, --at / --now, --spread, quiet hours from the profile, quiet_hours: ignore."""

from __future__ import annotations

import csv
import json
import re
import tomllib
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TZ_AUDIENCE = SAMPLES / "audience-timezones.csv"
# 02:00 UTC: night in Europe and the Americas, day in Asia and Oceania.
NIGHT_IN_EUROPE = "2026-12-01T02:00:00Z"


class Sent:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.lines: list[dict[str, Any]] = [json.loads(ln) for ln in stdout.splitlines()] if code != 2 else []

    @property
    def summary(self) -> dict[str, Any]:
        return self.lines[-1]

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        return {r["token"]: r for r in self.lines[:-1]}


@pytest.fixture
def emu(tmp_path: Path) -> Any:
    with Emulator(tmp_path / "emu") as emulator:
        emulator.write_profile(tmp_path / "config.toml")
        yield emulator


def send(tmp_path: Path, *args: str, template: str = "welcome.yaml", audience: Path = TZ_AUDIENCE,
         now: str | None = NIGHT_IN_EUROPE) -> Sent:  # fmt: skip
    res = CliRunner().invoke(
        app,
        ["--config", str(tmp_path / "config.toml"), "--profile", "emulator", "--output", "json", "send",
         str(SAMPLES / "templates" / template), "--audience", str(audience),
         "--journal", str(tmp_path / "j.sqlite3"), *args],
        env={"PUSHCTL_NOW": now} if now else {},
    )  # fmt: skip
    return Sent(res.exit_code, res.stdout, res.stderr)


@pytest.mark.parametrize(
    ("expr", "column"),
    [
        ('country == "US" and', 19),
        ('country === "US"', 10),
        ("tier in [gold, ", 9),
        ('(country == "US"', 16),
        ("last_seen >= 2026-13-01", 13),
    ],
)
def test_bad_where_exits_2_with_a_caret(tmp_path: Path, emu: Emulator, expr: str, column: int) -> None:
    out = send(tmp_path, "--where", expr)
    assert out.code == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 3, out.stderr
    assert lines[0].startswith("error: --where: ") and f"column {column + 1}" in lines[0]
    assert lines[1] == f"  {expr}"
    assert lines[2] == "  " + " " * column + "^"
    assert emu.inbox.total() == 0


def test_where_selects_rows(tmp_path: Path, emu: Emulator) -> None:
    out = send(
        tmp_path, "--where", 'country in ["JP", "IN"] or (tier == "gold" and timezone startswith "Europe/")'
    )
    assert out.code == 0, out.stderr
    # JP 2 + IN 2 + gold rows in Moscow and Berlin 2 (tier is gold on every third row).
    assert out.summary["total"] == len(emu.inbox.tokens()) == 6
    assert "42 devices did not match --where" in out.stderr


def test_suppression_and_known_invalid_are_skipped_with_reasons(tmp_path: Path, emu: Emulator) -> None:
    sample = SAMPLES / "audience.csv"
    first = send(tmp_path, audience=sample)
    assert first.code == 1  # the sample's deliberate failures
    invalid = {t for t, r in first.results.items() if r["outcome"] == "invalid_token"}
    assert len(invalid) == 6
    delivered = sorted(t for t, r in first.results.items() if r["outcome"] == "delivered")
    opt_out = tmp_path / "optout.txt"
    opt_out.write_text(f"# opted out\n{delivered[0]}\nu1003\n")  # one token, one user id (Li Wei)
    opt_csv = tmp_path / "complaints.csv"
    opt_csv.write_text(f"token,when\n{delivered[1]},2026-11-01\n")
    emu.inbox.clear()
    # Another template: a new campaign over the same audience and journal.
    out = send(tmp_path, "--suppress", str(opt_out), "--suppress", str(opt_csv), "--skip-known-invalid",
               template="promo-image.yaml", audience=sample)  # fmt: skip
    reasons = {t: (r["outcome"], r["reason"]) for t, r in out.results.items()}
    suppressed = {t for t, why in reasons.items() if why == ("skipped", "suppressed")}
    assert delivered[0] in suppressed and delivered[1] in suppressed and len(suppressed) == 3
    assert {t for t, why in reasons.items() if why == ("skipped", "known_invalid")} == invalid
    assert {"outcome": "skipped", "reason": "suppressed", "count": 3} in out.summary["reasons"]
    assert {"outcome": "skipped", "reason": "known_invalid", "count": 6} in out.summary["reasons"]
    assert not emu.inbox.tokens() & (suppressed | invalid)


def test_at_in_the_past_needs_now(tmp_path: Path, emu: Emulator) -> None:
    out = send(tmp_path, "--at", "2026-12-01T01:00:00Z")
    assert out.code == 2 and out.stdout == ""
    assert "--at 2026-12-01T01:00:00+00:00 is in the past" in out.stderr and "--now" in out.stderr
    assert emu.inbox.total() == 0
    out = send(tmp_path, "--at", "2026-12-01T01:00:00Z", "--now")
    assert out.code == 0, out.stderr
    assert emu.inbox.total() == 48


def test_at_in_the_future_with_a_pinned_clock_does_not_hang(tmp_path: Path, emu: Emulator) -> None:
    out = send(tmp_path, "--at", "2026-12-01T09:00:00+08:00", now="2026-12-01T00:55:00Z")
    assert out.code == 0, out.stderr
    assert (
        "PUSHCTL_NOW is fixed" in out.stderr and "not waiting until 2026-12-01T09:00:00+08:00" in out.stderr
    )


def test_spread_paces_by_rate(tmp_path: Path, emu: Emulator) -> None:
    # 48 devices over 2 s: 24/s, one every 0.0417 s (the sender's rate limiter does the pacing).
    out = send(tmp_path, "--spread", "2s")
    assert out.code == 0, out.stderr
    assert re.search(r"--spread 2s: 48 devices at 24/s \(one every 0\.0417 s\)", out.stderr), out.stderr
    assert emu.inbox.total() == 48


def test_spread_needs_a_file(tmp_path: Path, emu: Emulator) -> None:
    res = CliRunner().invoke(
        app,
        ["--config", str(tmp_path / "config.toml"), "--profile", "emulator", "--output", "json", "send",
         str(SAMPLES / "templates" / "welcome.yaml"), "--audience", "-", "--spread", "30m",
         "--journal", str(tmp_path / "j.sqlite3")],
        input=TZ_AUDIENCE.read_text(),
    )  # fmt: skip
    assert res.exit_code == 2 and res.stdout == ""
    assert "--spread needs an audience file" in res.stderr


def _profile_quiet_hours(tmp_path: Path, window: str) -> None:
    cfg = tmp_path / "config.toml"
    data = tomllib.loads(cfg.read_text())
    data["profiles"]["emulator"]["sender"] = {"quiet_hours": window, "default_timezone": "UTC"}
    cfg.write_text(tomli_w.dumps(data))


def _night_tokens(out: Sent) -> set[str]:
    return {t for t, r in out.results.items() if (r["outcome"], r["reason"]) == ("deferred", "quiet_hours")}


def test_quiet_hours_from_the_profile(tmp_path: Path, emu: Emulator) -> None:
    _profile_quiet_hours(tmp_path, "22:00-08:00")
    out = send(tmp_path)
    assert out.code == 0, out.stderr
    night = _night_tokens(out)
    at = datetime.fromisoformat(NIGHT_IN_EUROPE)
    with TZ_AUDIENCE.open(newline="") as fh:
        local = {
            r["token"]: at.astimezone(ZoneInfo(r["timezone"] or "UTC")).time() for r in csv.DictReader(fh)
        }
    assert night == {t for t, clock in local.items() if clock >= time(22) or clock < time(8)}
    assert len(night) == 20  # Europe, the Atlantic, the Americas, Pacific west of the date line, UTC
    assert not emu.inbox.tokens() & night
    assert len(emu.inbox.tokens()) == 48 - len(night)
    # The command line wins over the profile (no zone is at 12:10-12:20 at 02:00 UTC).
    out = send(tmp_path, "--quiet-hours", "12:10-12:20", template="promo-image.yaml")
    assert out.code == 0 and _night_tokens(out) == set()


def test_time_sensitive_template_ignores_quiet_hours(tmp_path: Path, emu: Emulator) -> None:
    out = send(
        tmp_path, "--quiet-hours", "22:00-08:00", "--default-timezone", "UTC", template="critical-alert.yaml"
    )
    assert out.code == 0, out.stderr
    assert out.summary["outcomes"]["deferred"] == 0
    assert out.summary["outcomes"]["delivered"] == 48 == emu.inbox.total()


def test_a_local_time_slot_inside_quiet_hours_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "send",
            "samples/templates/welcome.yaml",
            "--audience",
            "samples/audience.csv",
            "--dry-run",
            "--local-time",
            "23:00",
            "--quiet-hours",
            "22:00-08:00",
            "--journal",
            str(tmp_path / "j.sqlite3"),
        ],
    )
    assert result.exit_code == 2
    assert "entirely inside the quiet hours" in result.stderr
    assert result.stdout == ""


def test_an_unknown_default_timezone_says_what_to_use_once(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "send",
            str(SAMPLES / "templates" / "welcome.yaml"),
            "--audience",
            str(SAMPLES / "audience.csv"),
            "--dry-run",
            "--default-timezone",
            "Mars/Base",
            "--journal",
            str(tmp_path / "j.sqlite3"),
        ],
        terminal_width=200,
    )
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert "unknown time zone 'Mars/Base'" in err
    assert err.count("IANA name like Europe/Paris") == 1, err
    assert result.stdout == ""


def test_an_unknown_timezone_in_a_row_is_skipped_not_moved(tmp_path: Path, emu: Emulator) -> None:
    audience = tmp_path / "zones.csv"
    audience.write_text(
        f"token,platform,name,timezone\n{'a1' * 32},ios,Ann,Europe/Paris\n{'a2' * 32},ios,Bob,Europe/Pariss\n"
    )
    out = send(
        tmp_path, "--quiet-hours", "22:00-08:00", "--default-timezone", "Asia/Tokyo", audience=audience
    )
    assert out.code == 0, out.stderr
    assert out.results["a2" * 32]["outcome"] == "skipped"
    assert out.results["a2" * 32]["reason"] == "bad_timezone"
    assert out.results["a1" * 32]["outcome"] == "deferred"  # 03:00 in Paris
