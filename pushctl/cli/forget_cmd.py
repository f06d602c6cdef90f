"""`pushctl forget`: erase users' and devices' personal data from the journal (erasure requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pushctl.campaign import SuppressionList
from pushctl.cli.journals import JournalsOption, resolve_journals
from pushctl.cli.state import get_state
from pushctl.errors import CampaignLocked, InputError
from pushctl.journal import ForgetReport, Journal

HELP = """Erase users' and devices' personal data from the journal.

For erasure requests (GDPR, CCPA, PIPL).
Deletes every journal row of each user (--user: their devices, found through the audiences'
user_id column) and of each device token (--token): per-device results, user links, and any other
table registered as personal data. The totals of past runs (runs list / runs show) do not change.
The file is then compacted (VACUUM), so the data is gone from it, not just hidden.

Running it twice is harmless: the second run finds nothing. A forgotten token that appears in a
later audience is sent to like any new device; put it on a --suppress list to stop that.
Files written outside the journal (--results, --invalid-tokens, exports) are yours to delete.
"""


def forget(
    users: Annotated[
        list[str] | None, typer.Option("--user", "-u", help="A user id (the audience's user_id); repeatable.")
    ] = None,
    tokens: Annotated[
        list[str] | None, typer.Option("--token", "-t", help="A device token; repeatable.")
    ] = None,
    from_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--from",
            help="A file of ids: CSV with user_id and/or token columns, or one value per line "
            "(matched as either); repeatable. A --suppress list works as is.",
        ),
    ] = None,
    journal: JournalsOption = None,
) -> None:
    state = get_state()
    terminal = state.terminal
    wanted_users = set(users or ())
    wanted_tokens = set(tokens or ())
    if from_files:
        listed = SuppressionList.load(from_files, option="--from")
        wanted_users.update(listed.user_ids)
        wanted_tokens.update(listed.tokens)
        wanted_users.update(listed.either)  # a bare value is a user id or a token: forget both
        wanted_tokens.update(listed.either)
    if not wanted_users and not wanted_tokens:
        raise InputError("nothing to forget", hint="give --user ID, --token TOKEN or --from FILE")
    reports: list[ForgetReport] = []
    for path in resolve_journals(journal, state):
        with Journal(path) as j:
            reports.append(j.forget(users=sorted(wanted_users), tokens=sorted(wanted_tokens)))
    if terminal.json:
        for report in reports:
            terminal.json_line(report.to_dict())
    else:
        terminal.table(
            ["journal", "removed", "campaigns", "vacuum"],
            [(r.journal, _removed(r), ", ".join(r.campaigns), r.vacuum) for r in reports],
            title="Forgotten",
            caption=f"{len(wanted_users):,} user id(s), {len(wanted_tokens):,} token(s) asked for; "
            "run totals are unchanged",
        )
    running = sorted({c for r in reports for c in r.running})
    if running:
        raise CampaignLocked(
            f"campaign {', '.join(running)} is being sent into the journal: its rows were left alone "
            "(it may still record these users)",
            hint="run the same pushctl forget again when it has finished",
        )


def _removed(report: ForgetReport) -> str:
    if not report.removed:
        return "nothing (already gone)"
    return ", ".join(f"{table}: {count:,}" for table, count in report.removed.items())


def register(app: typer.Typer) -> None:
    """Add `pushctl forget`."""
    app.command("forget", help=HELP)(forget)
