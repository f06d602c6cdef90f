"""Where pushctl keeps its files (XDG base directories on Linux), and how privately (0600 / 0700)."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value:
        return Path(value)
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    return Path.home() / fallback


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/pushctl`` (``~/.config/pushctl``)."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "pushctl"


def data_dir() -> Path:
    """``$XDG_DATA_HOME/pushctl`` (``~/.local/share/pushctl``): journal, emulator state."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "pushctl"


def default_config_file() -> Path:
    return config_dir() / "config.toml"


def default_journal_file() -> Path:
    return data_dir() / "journal.sqlite3"


def default_emulator_state_dir() -> Path:
    return data_dir() / "emulator"


# -- private files: personal data at rest --------------------------------------------------------
#
# Journals, result and prune files, emulator state and credential caches hold device tokens,
# user ids or secrets: pushctl creates them readable by their owner only, whatever the umask.
# Files that already exist keep their mode (the owner chose it); commands warn instead
# (:func:`exposure_warning`).

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

_OPEN_FLAGS = {
    "w": os.O_WRONLY | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_APPEND,
    "r+": os.O_RDWR,
}


def make_private_dir(path: Path) -> Path:
    """``mkdir -p path``, each directory it creates mode 0700; existing ones keep their mode."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: theirs to decide
        os.chmod(directory, PRIVATE_DIR_MODE)  # mkdir's mode went through the umask
    return Path(path)


def open_private_fd(path: Path, mode: str = "w") -> int:
    """Open ``path`` for writing (``w`` truncates, ``a`` appends, ``r+`` neither), creating it
    mode 0600 whatever the umask; an existing file keeps its mode. Missing parents are made 0700."""
    flags = _OPEN_FLAGS[mode] | getattr(os, "O_CLOEXEC", 0)
    make_private_dir(Path(path).parent)
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return os.open(path, flags)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # a umask such as 0277 would otherwise leave it 0400
    return fd


def open_private(path: Path, mode: str = "w", *, binary: bool = False, **kwargs: Any) -> IO[Any]:
    """:func:`open_private_fd` as a file object (``kwargs`` go to :func:`open`: encoding, newline)."""
    fd = open_private_fd(path, mode)
    file_mode = ("w" if mode == "w" else "a" if mode == "a" else "r+") + ("b" if binary else "")
    return os.fdopen(fd, file_mode, **kwargs)


def write_private(path: Path, data: str | bytes) -> Path:
    """Replace ``path``'s contents with ``data`` (a new file is 0600, see :func:`open_private`)."""
    if isinstance(data, str):
        data = data.encode()
    with open_private(path, "w", binary=True) as fh:
        fh.write(data)
    return Path(path)


def create_private(path: Path) -> bool:
    """Create an empty 0600 file at ``path`` unless one exists; True when it was created."""
    make_private_dir(Path(path).parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.fchmod(fd, PRIVATE_FILE_MODE)
    os.close(fd)
    return True


def exposed(path: Path) -> int | None:
    """The permission bits of ``path`` when group or others may read or write it, else None
    (also None for a missing file, a non-regular file such as ``/dev/stdout``, and on Windows)."""
    if os.name == "nt":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o077:
        return None
    return stat.S_IMODE(st.st_mode)


def exposure_warning(paths: Iterable[Path], what: str) -> str | None:
    """``<what> <file> is open to other users (mode 644); run chmod 600 <files>``, or None."""
    loose = [(Path(p), mode) for p in paths if (mode := exposed(Path(p))) is not None]
    if not loose:
        return None
    first, mode = loose[0]
    names = " ".join(shlex.quote(str(p)) for p, _ in loose)
    return f"{what} {first} is open to other users (mode {mode:o}); run chmod 600 {names}"
