"""`pushctl engage`: import opens, conversions and dismissals, attributed to the sends they follow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pushctl.cli.state import get_state
from pushctl.cli.trigger_cmd import JournalOption, _configured_journal
from pushctl.journal import ATTRIBUTION_WINDOW, AttributionStats, Journal

HELP = "Import opens, conversions and dismissals, attributed to the sends they follow."

IMPORT_HELP = """Record opens, conversions and dismissals (CSV or JSON Lines; - for stdin) in the journal.

Each event names its notification by provider id (apns-id, the FCM message name or id, the Web
Push Location, the HMS request id with the token), by campaign with token or user_id, by token
alone (the last delivery before it), or by campaign and variant (the payload's pushctl_variant).
It counts for a delivered send within the attribution window after it (--window, default 72h);
an event id seen before counts once. Columns: event_id, type (opened, converted, dismissed), ts,
campaign, token, user_id, variant, provider_id, value. Then: pushctl runs report CAMPAIGN.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


def _window(text: str) -> float:
    from pushctl.campaign import parse_duration

    return parse_duration(text, field="--window").total_seconds()


@app.command("import", help=IMPORT_HELP)
def import_(
    file: Annotated[str, typer.Argument(metavar="FILE", help="Events file (CSV, JSONL) or - for stdin.")],
    fmt: Annotated[
        Literal["csv", "jsonl"] | None,
        typer.Option("--format", "-f", help="File format (default: by extension)."),
    ] = None,
    on_bad_row: Annotated[
        Literal["fail", "skip"], typer.Option(help="Stop at the first bad row, or skip and count it.")
    ] = "fail",
    window: Annotated[
        str, typer.Option("--window", help="Attribution window after each send, e.g. 72h, 7d.")
    ] = "72h",
    journal: JournalOption = None,
) -> None:
    from pushctl.insights import EngagementReader

    seconds = _window(window) if window != "72h" else ATTRIBUTION_WINDOW
    path = journal or _configured_journal(get_state())
    reader = EngagementReader(file, fmt=fmt, on_bad_row=on_bad_row)
    with Journal(path) as j:
        store = j.engagement()
        store.prepare()
        stats = AttributionStats()
        batch = []
        for event in reader:
            batch.append(event)
            if len(batch) >= 5000:
                store.record(batch, window=seconds, stats=stats)
                batch.clear()
        store.record(batch, window=seconds, stats=stats)
    _report(file, path, stats, reader.stats.rows, reader.stats.bad_rows, reader.stats.bad_samples, window)


def _report(
    file: str, journal: Path, stats: AttributionStats, rows: int, bad: int, samples: list[str], window: str
) -> None:
    t = get_state().terminal
    if t.json:
        t.json_line({"type": "engage_import", "file": file, "journal": str(journal), "rows": rows,
                     "bad_rows": bad, **stats.to_dict()})  # fmt: skip
    else:
        kinds = ", ".join(f"{n:,} {k}s" for k, n in sorted(stats.by_kind.items())) or "nothing"
        t.table(
            ["events", "attributed", "duplicates", "outside window", "unmatched", "bad rows"],
            [
                (
                    f"{stats.read:,}",
                    f"{stats.attributed + stats.anonymous:,}",
                    f"{stats.duplicates:,}",
                    f"{stats.outside_window:,}",
                    f"{stats.unmatched:,}",
                    f"{bad:,}",
                )
            ],
            title=f"Engagement from {file}",
            caption=f"attributed: {kinds}",
        )
        for campaign, n in sorted(stats.campaigns.items()):
            t.print(f"{campaign}: {n:,} events attributed (see `pushctl runs report {campaign}`)")
    for sample in samples[:10]:
        t.warn(f"skipped {sample}")
    if stats.outside_window:
        t.warn(
            f"{stats.outside_window:,} events happened outside the {window} attribution window of their "
            f"sends (too late, or before the send) and were not counted (e.g. "
            f"{stats.examples['outside_window']}); a longer --window counts late ones"
        )
    if stats.unmatched:
        t.warn(
            f"{stats.unmatched:,} events match no delivered send in this journal "
            f"(e.g. {stats.examples['unmatched']}); kept all the same: they tell when their users open "
            "pushes (--local-time best)"
        )


@app.command("status")
def status(journal: JournalOption = None) -> None:
    """How many engagement events the journal holds, by attribution."""
    t = get_state().terminal
    path = journal or _configured_journal(get_state())
    counts: dict[str, int] = {}
    if path.exists():
        with Journal(path) as j:
            counts = j.engagement().counts()
    if t.json:
        t.json_line({"type": "engagement", "journal": str(path), **counts})
        return
    t.table(["attribution", "events"], [(k, f"{n:,}") for k, n in sorted(counts.items())],
            title=f"Engagement events in {path}")  # fmt: skip


def register(root: typer.Typer) -> None:
    """Add `pushctl engage`."""
    root.add_typer(app, name="engage", help=HELP)
