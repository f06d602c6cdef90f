"""`pushctl devices`: the device directory (user id -> devices) that trigger rules send to."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from pushctl.cli.results_view import short_token
from pushctl.cli.state import get_state
from pushctl.cli.trigger_cmd import JournalOption, _configured_journal
from pushctl.errors import InputError
from pushctl.journal import Journal

HELP = "Keep the device directory (user id -> devices) that trigger rules send to."

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)


def _journal(journal: Path | None) -> Path:
    return journal or _configured_journal(get_state())


@app.command("import")
def import_(
    audience: Annotated[Path, typer.Argument(help="Audience file (CSV, JSONL) with a user_id column.")],
    fmt: Annotated[
        Literal["csv", "jsonl", "text"] | None, typer.Option("--format", "-f", help="Audience format.")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Forget every other user first.")] = False,
    journal: JournalOption = None,
) -> None:
    """Load an audience file into the directory: each user listed gets exactly the devices listed.

    The same readers as `send`: every column becomes an attribute templates can use. Rows without
    a user_id, and bad rows, are skipped and counted. Tokens marked invalid stay marked.
    """
    from pushctl.audience import AudienceReader

    t = get_state().terminal
    reader = AudienceReader(audience, fmt=fmt, on_bad_row="skip")
    with Journal(_journal(journal)) as j:
        stats = j.directory().import_devices(reader, replace_all=replace)
        users, devices, invalid = j.directory().counts()
    summary = {
        "type": "import",
        "file": str(audience),
        "devices": stats.devices,
        "users": stats.users,
        "removed": stats.removed,
        "missing_user_id": stats.missing_user,
        "bad_rows": reader.stats.bad_rows,
        "duplicates": reader.stats.duplicates,
        "directory_users": users,
        "directory_devices": devices,
        "invalid_marked": invalid,
    }
    if t.json:
        t.json_line(summary)
    else:
        t.print(
            f"imported {stats.devices:,} devices of {stats.users:,} users from {audience} "
            f"({stats.removed:,} removed, {stats.missing_user:,} rows without user_id, "
            f"{reader.stats.bad_rows:,} bad rows); the directory holds {devices:,} devices of {users:,} users"
        )
    for bad in reader.stats.bad_samples[:10]:
        t.warn(f"skipped {bad}")


@app.command("show")
def show(
    user: Annotated[str, typer.Argument(help="User id.")],
    journal: JournalOption = None,
) -> None:
    """Show a user's devices, their attributes and invalid marks."""
    t = get_state().terminal
    path = _journal(journal)
    if not path.exists():
        raise InputError(
            "no journal here yet", file=path, field="--journal", hint="run `pushctl devices import` first"
        )
    with Journal(path) as j:
        entries = j.directory().devices(user, include_invalid=True)
    if not entries:
        raise InputError(
            f"no devices for user '{user}' in the directory", hint="see `pushctl devices import`"
        )
    if t.json:
        for e in entries:
            d = e.device
            t.json_line(
                {
                    "type": "device",
                    "user_id": user,
                    "token": d.token,
                    "platform": str(d.platform),
                    "attrs": d.attrs,
                    "invalid": e.invalid_reason or None,
                    "source": f"{d.source}:{d.line}",
                }
            )
        return
    rows = [
        (
            short_token(e.device.token),
            str(e.device.platform),
            e.invalid_reason or "ok",
            ", ".join(f"{k}={v}" for k, v in e.device.attrs.items() if k != "user_id"),
            e.device.where,
        )
        for e in entries
    ]
    t.table(["token", "platform", "state", "attributes", "from"], rows, title=f"devices of {user}")


@app.command("invalid")
def invalid(journal: JournalOption = None) -> None:
    """List the tokens sends found invalid (the prune list), oldest mark first."""
    t = get_state().terminal
    path = _journal(journal)
    if not path.exists():
        return
    with Journal(path) as j:
        marks = list(j.directory().invalid())
    if t.json:
        for token, user, reason, at in marks:
            t.json_line(
                {"type": "invalid_token", "token": token, "user_id": user, "reason": reason, "marked_at": at}
            )
        return
    t.table(
        ["token", "user", "reason", "marked"],
        [
            (token, user, reason, datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"))
            for token, user, reason, at in marks
        ],
        caption=f"{len(marks)} invalid token(s)",
    )


def register(root: typer.Typer) -> None:
    """Add `pushctl devices`."""
    root.add_typer(app, name="devices", help=HELP)
