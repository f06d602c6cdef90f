"""Which journal(s) a command works on: ``--journal PATH`` or a quoted glob of shard journals
(``'shards/*.sqlite3'``), else ``$PUSHCTL_JOURNAL``, the profile's ``sender.journal``, or the
default file in the user data dir; a campaign read from several shard journals is their merge."""

from __future__ import annotations

import contextlib
import glob
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer

from pushctl.cli.console import Terminal
from pushctl.cli.state import State
from pushctl.config import Profile, resolve_profile
from pushctl.errors import InputError
from pushctl.inputs import check_regular_file
from pushctl.journal import Journal, shard_runs
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
    else:
        paths = _matches(option)
    for path in paths:
        require_journal_file(path)
        if warning := exposure_warning(Journal.files(path), "journal"):
            state.terminal.warn(warning)
    return paths


def expand_journals(patterns: Sequence[str]) -> list[Path]:
    """Journal paths from arguments that may be quoted globs (each match once, in order)."""
    found: list[Path] = []
    for pattern in patterns:
        for path in _matches(pattern):
            require_journal_file(path)
            if path not in found:
                found.append(path)
    return found


def _matches(pattern: str) -> list[Path]:
    """The journals a quoted glob matches (never their -wal/-shm companions), or the one path."""
    if not glob.has_magic(pattern):
        return [Path(pattern).expanduser()]
    matches = sorted(glob.glob(str(Path(pattern).expanduser())))
    paths = [Path(m) for m in matches if Path(m).is_file() and not m.endswith(_COMPANIONS)]
    if not paths:
        raise InputError(f"no journal matches {pattern}", field="--journal")
    return paths


def require_journal_file(path: Path) -> None:
    """Refuse a missing journal (never create one here: a typo would leave an empty database
    behind) and anything but a regular file (a directory, /dev/zero), saying which."""
    if path.exists():
        check_regular_file(path, what="the journal")
    else:
        raise InputError(f"no journal at {path}", field="--journal", hint="no runs yet")


@contextlib.contextmanager
def open_campaign(option: str | None, campaign_id: str, terminal: Terminal) -> Iterator[Journal]:
    """The journal to read ``campaign_id`` from: ``--journal PATH``, or a quoted glob of journals
    of which the one holding the campaign is opened, or, when several hold shards of it, their
    merge (``runs merge`` into a scratch journal; its run names missing and unfinished shards)."""
    paths = expand_journals([option]) if option is not None else [default_journal_file()]
    if option is None:
        require_journal_file(paths[0])
    for path in paths:
        if warning := exposure_warning(Journal.files(path), "journal"):
            terminal.warn(warning)
    if len(paths) > 1:
        holding = [p for p in paths if any(cid == campaign_id for cid, _shard, _merged in shard_runs(p))]
        if not holding:
            raise InputError(f"no run '{campaign_id}' in {len(paths)} journals matching {option}",
                             field="--journal")
        paths = holding
    if len(paths) == 1:
        with Journal(paths[0]) as journal:
            yield journal
        return
    with (
        tempfile.TemporaryDirectory(prefix="pushctl-merge-") as scratch,
        Journal(Path(scratch) / "merged.sqlite3") as merged,
    ):
        merged.merge_shards(paths, campaign_id)  # the run it makes says what it combined
        yield merged
