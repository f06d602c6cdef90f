"""`pushctl prefs`: users' notification preferences per category, kept in the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pushctl.cli.state import get_state
from pushctl.cli.trigger_cmd import JournalOption, _configured_journal
from pushctl.errors import InputError
from pushctl.journal import Journal

HELP = "Users' notification preferences per category, kept in the journal."

IMPORT_HELP = """Store users' choices (CSV or JSON Lines: user_id or token, category, opted_in).

Campaigns (send) and trigger rules then skip a device whose user, or the device itself, opted out
of the template's or rule's category (reason preference), unless the profile's
preferences.mandatory_categories lists it. A later import replaces a user's earlier choice for the
same category; --preferences FILE and pref_<category> audience columns apply too (an opt-out wins).
"""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


@app.command("import", help=IMPORT_HELP)
def import_(
    file: Annotated[Path, typer.Argument(help="Preferences file (CSV, JSONL).", show_default=False)],
    on_bad_row: Annotated[
        Literal["fail", "skip"], typer.Option(help="Stop at the first bad row, or skip and count it.")
    ] = "fail",
    journal: JournalOption = None,
) -> None:
    from pushctl.insights import PreferenceReadStats, read_preferences

    t = get_state().terminal
    stats = PreferenceReadStats()
    path = journal or _configured_journal(get_state())
    with Journal(path) as j:
        store = j.preferences()
        saved = store.save(read_preferences(file, on_bad_row=on_bad_row, stats=stats))
        total, out = store.counts()
    if t.json:
        t.json_line(
            {
                "type": "prefs_import",
                "file": str(file),
                "rows": stats.rows,
                "saved": saved,
                "bad_rows": stats.bad_rows,
                "journal_choices": total,
                "journal_opted_out": out,
            }
        )
    else:
        t.print(
            f"saved {saved:,} choices from {file} ({stats.bad_rows:,} bad rows); the journal holds {total:,} "
            f"choices, {out:,} of them opt-outs"
        )
    for sample in stats.bad_samples[:10]:
        t.warn(f"skipped {sample}")


@app.command("show")
def show(
    subject: Annotated[str, typer.Argument(metavar="USER_ID|TOKEN", help="A user id or a device token.")],
    journal: JournalOption = None,
) -> None:
    """A user's (or a device's) choices in the journal."""
    t = get_state().terminal
    path = journal or _configured_journal(get_state())
    if not path.exists():
        raise InputError(
            "no journal here yet", file=path, field="--journal", hint="run `pushctl prefs import`"
        )
    with Journal(path) as j:
        rows = j.preferences().of(user_id=subject, token=subject)
    if t.json:
        for row in rows:
            t.json_line(
                {
                    "type": "preference",
                    "user_id": row.user_id,
                    "token": row.token,
                    "category": row.category,
                    "opted_in": row.opted_in,
                    "source": row.source,
                }
            )
        return
    if not rows:
        t.info(f"no choices recorded for {subject}: opted in to every category")
        return
    t.table(
        ["category", "opted in", "for", "from"],
        [
            (r.category, "yes" if r.opted_in else "no", "user" if r.user_id else "device", r.source)
            for r in rows
        ],
        title=f"Preferences of {subject}",
    )


def register(root: typer.Typer) -> None:
    """Add `pushctl prefs`."""
    root.add_typer(app, name="prefs", help=HELP)
