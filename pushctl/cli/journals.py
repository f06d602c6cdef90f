"""Which journal(s) a maintenance command works on: ``--journal PATH`` or a quoted glob of shard
journals (``'shards/*.sqlite3'``), else ``$PUSHCTL_JOURNAL``, the profile's ``sender.journal``,
or the default file in the user data dir."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated

import typer

from pushctl.cli.state import State
from pushctl.config import Profile, resolve_profile
from pushctl.errors import InputError
from pushctl.journal import Journal
from pushctl.paths import default_journal_file, exposure_warning

JournalsOption = Annotated[
    str | None,
    typer.Option(
        "--journal",
        envvar="PUSHCTL_JOURNAL",
        metavar="PATH|GLOB",
        help="Journal, or a quoted glob of shard journals "
        "(default: the profile's sender.journal, else the user data dir's).",
    ),
]

# Files SQLite and pushctl keep beside a journal: never journals themselves.
_COMPANIONS = ("-wal", "-shm", "-journal", ".lock")


def resolve_journals(option: str | None, state: State, profile: Profile | None = None) -> list[Path]:
    """The existing journal files to work on (InputError when there are none); a warning for each
    one other users can read."""
    if option is None:
        profile = profile or resolve_profile(state.config_path, state.profile)
        paths = [profile.sender.journal or default_journal_file()]
    elif glob.has_magic(option):
        matches = sorted(glob.glob(str(Path(option).expanduser())))
        paths = [Path(m) for m in matches if Path(m).is_file() and not m.endswith(_COMPANIONS)]
        if not paths:
            raise InputError(f"no journal matches {option}", field="--journal")
    else:
        paths = [Path(option).expanduser()]
    for path in paths:
        if not path.is_file():
            # Never create a journal here: a typo would leave an empty database behind.
            raise InputError(f"no journal at {path}", field="--journal", hint="no runs yet")
        if warning := exposure_warning(Journal.files(path), "journal"):
            state.terminal.warn(warning)
    return paths
