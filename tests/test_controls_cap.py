"""--cap COUNT/WINDOW across campaigns sharing one journal, against the emulator."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.emulator import Emulator

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AUDIENCE = SAMPLES / "audience-timezones.csv"


def _send(
    cfg: Path, journal: Path, template: str, *args: str, now: str | None = None
) -> tuple[int, list[Any], str]:
    res = CliRunner().invoke(
        app,
        ["--config", str(cfg), "--profile", "emulator", "--output", "json", "send",
         str(SAMPLES / "templates" / template), "--audience", str(AUDIENCE),
         "--journal", str(journal), *args],
        env={"PUSHCTL_NOW": now} if now else {},
    )  # fmt: skip
    return res.exit_code, [json.loads(line) for line in res.stdout.splitlines()], res.stderr


def _us_tokens() -> set[str]:
    with AUDIENCE.open(newline="") as fh:
        return {row["token"] for row in csv.DictReader(fh) if row["country"] == "US"}


def _two_campaigns(tmp_path: Path, now: str | None, later: str | None) -> None:
    journal = tmp_path / "j.sqlite3"
    us = _us_tokens()
    with Emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        code, lines, err = _send(
            cfg, journal, "welcome.yaml", "--where", 'country == "US"', "--cap", "1/24h", now=now
        )
        assert code == 0, err
        assert emu.inbox.tokens() == us
        code, lines, err = _send(cfg, journal, "promo-image.yaml", "--cap", "1/24h", now=later)
        assert code == 0, err
        results, summary = lines[:-1], lines[-1]
        assert summary["type"] == "summary"
        by_token = {r["token"]: (r["outcome"], r["reason"]) for r in results}
        assert len(by_token) == 48
        for token, outcome in by_token.items():
            assert outcome == (("skipped", "frequency_cap") if token in us else ("delivered", "")), token
        assert summary["outcomes"]["skipped"] == len(us)
        assert {"outcome": "skipped", "reason": "frequency_cap", "count": len(us)} in summary["reasons"]
        assert emu.inbox.duplicates() == {}
        assert emu.inbox.total() == 48


def test_cap_skips_the_second_campaign_for_devices_the_first_reached(tmp_path: Path) -> None:
    _two_campaigns(tmp_path, None, None)


def test_cap_honours_the_pinned_clock(tmp_path: Path) -> None:
    pinned = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    _two_campaigns(tmp_path, pinned.isoformat(), (pinned + timedelta(hours=1)).isoformat())


def test_cap_count_is_per_window_across_all_campaigns(tmp_path: Path) -> None:
    # One earlier delivery: a cap of 1 skips the next campaign, a cap of 2 lets the third through.
    journal = tmp_path / "j.sqlite3"
    with Emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        assert _send(cfg, journal, "welcome.yaml", "--where", 'country == "JP"')[0] == 0
        code, lines, _ = _send(
            cfg, journal, "promo-image.yaml", "--where", 'country == "JP"', "--cap", "1/1h"
        )
        assert code == 0 and lines[-1]["outcomes"]["skipped"] == 2
        code, lines, _ = _send(cfg, journal, "silent.yaml", "--where", 'country == "JP"', "--cap", "2/1h")
        assert code == 0 and lines[-1]["outcomes"]["delivered"] == 2
