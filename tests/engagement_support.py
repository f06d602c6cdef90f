"""The sample A/B campaign of samples/engagement/, sent on the emulator and with its events imported
(the README walk-through), for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pushctl.cli.app import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ENGAGEMENT = SAMPLES / "engagement"
SENT_AT = "2026-03-02T09:00:00Z"


def sample_journal(directory: Path) -> Path:
    """Send samples/templates/spring-sale.yaml at SENT_AT (campaign spring-sale), import its events."""
    journal = directory / "demo.sqlite3"
    runner = CliRunner()
    sent = runner.invoke(
        app,
        ["--output", "json", "send", str(SAMPLES / "templates" / "spring-sale.yaml"),
         "--audience", str(ENGAGEMENT / "audience.csv"), "--campaign", "spring-sale", "--emulator",
         "--journal", str(journal)],
        env={"PUSHCTL_NOW": SENT_AT},
    )  # fmt: skip
    assert sent.exit_code == 0, sent.stderr
    imported = runner.invoke(
        app,
        ["--output", "json", "engage", "import", str(ENGAGEMENT / "events.csv"), "--journal", str(journal)],
    )
    assert imported.exit_code == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert summary["duplicates"] == 4 and summary["outside_window"] == 3 and summary["unmatched"] == 2
    return journal
