"""`pushctl runs merge`: the shard journals of one campaign combined into one journal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pushctl.cli.journals import expand_journals
from pushctl.cli.state import get_state
from pushctl.errors import ExitCode
from pushctl.journal import Journal
from pushctl.paths import exposure_warning

MERGE_HELP = """Combine the shard journals of one campaign (send --shard I/N) into one journal.

The result is one campaign, as if one process had sent it: `runs show`, `runs export` and
`runs prune-list` read it like any other (or read the shard journals directly with a quoted
glob: --journal 'shards/*.sqlite3'). Refuses shards of different campaigns, templates,
audiences, options or shard counts, a shard given twice, and any device that is not in the
shard its journal claims. Missing shards and unfinished ones (stopped, abandoned, devices
still in flight) are named; the merged run is then `partial` and the command exits 1.
Merging again (after a shard finished) replaces the earlier merge.

\b
  pushctl runs merge shards/*.sqlite3 --into campaign.sqlite3
  pushctl runs show c-1a2b3c4d5e6f --journal campaign.sqlite3
"""


def merge_cmd(
    journals: Annotated[
        list[str], typer.Argument(metavar="JOURNAL...", help="Shard journals (paths or quoted globs).")
    ],
    into: Annotated[Path, typer.Option("--into", help="The journal to merge into (created if new).")],
    campaign: Annotated[
        str | None,
        typer.Option("--campaign", "-c", help="The campaign to merge (when the journals hold several)."),
    ] = None,
) -> None:
    terminal = get_state().terminal
    sources = expand_journals(journals)
    for path in sources:
        if warning := exposure_warning(Journal.files(path), "journal"):
            terminal.warn(warning)
    with Journal(into) as journal:
        report = journal.merge_shards(sources, campaign)
    for problem in report.problems():
        terminal.warn(problem)
    if terminal.json:
        terminal.json_line(report.to_dict())
    else:
        terminal.table(
            ["shard", "journal", "status", "devices"],
            [(str(s.shard), str(s.journal), s.state(), f"{s.info.total:,}") for s in report.shards],
            title=f"Campaign {report.campaign_id}: {len(report.shards)} of {report.count} shards",
            caption=f"merged into {into}",
        )
        terminal.info(
            f"merged {report.devices:,} devices of {report.campaign_id} into {into}"
            + ("" if report.complete else " (partial: see the warnings)")
        )
    if not report.complete:
        raise typer.Exit(int(ExitCode.PARTIAL))


def register(runs_app: typer.Typer) -> None:
    """Add ``runs merge`` to the ``runs`` group."""
    runs_app.command("merge", help=MERGE_HELP)(merge_cmd)
