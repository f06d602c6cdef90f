"""Opening the files users name: regular files only, never more than a kind's limit.

A template path of ``/dev/zero`` once read 2.7 GB before failing; a directory or a socket gave a
misleading "no such file". Every file pushctl reads whole goes through :func:`read_bounded`, and
every file it streams (audiences, suppression lists) through :func:`check_regular_file`, so the
answer is always one located line: "not found", "is a directory", "is not a regular file" or
"is larger than the 1 MB limit".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pushctl.errors import InputError

KB = 1024
MB = 1024 * KB

TEMPLATE_MAX_BYTES = 1 * MB
"""A template: a few KB in practice (payloads are at most 4 KB); 1 MB leaves room for many locales."""
CONFIG_MAX_BYTES = 1 * MB
CREDENTIAL_MAX_BYTES = 1 * MB
"""A .p8 key, .p12 / PEM certificate or service-account JSON (all a few KB)."""
CA_MAX_BYTES = 10 * MB
"""A CA bundle (the system one is ~200 KB)."""
SCENARIO_MAX_BYTES = 1 * MB


def size_text(limit: int) -> str:
    """``1 MB``, ``64 KB``, ``512 bytes``: how limits are named in messages."""
    if limit >= MB and limit % MB == 0:
        return f"{limit // MB} MB"
    if limit >= KB and limit % KB == 0:
        return f"{limit // KB} KB"
    return f"{limit:,} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def _refuse(path: Path, mode: int, what: str, error: type[InputError]) -> InputError:
    if stat.S_ISDIR(mode):
        return error(f"{what} is a directory, expected a file", file=path)
    return error(f"{what} is not a regular file (it is {_kind(mode)})", file=path)


def _stat_error(path: Path, exc: OSError, what: str, error: type[InputError]) -> InputError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return error(f"{what} not found", file=path)
    return error(f"cannot read {what}: {exc.strerror or exc}", file=path)


def check_regular_file(
    path: Path, *, what: str, error: type[InputError] = InputError, hint: str | None = None
) -> None:
    """Raise ``error`` (located at ``path``) unless ``path`` is an existing regular file.

    ``hint`` is added when it exists but is something else (a device, a pipe, a socket).
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise _stat_error(path, exc if isinstance(exc, OSError) else OSError(str(exc)), what, error) from None
    if not stat.S_ISREG(mode):
        refusal = _refuse(path, mode, what, error)
        if hint and not stat.S_ISDIR(mode):
            refusal.hint = hint
        raise refusal


def read_bounded(path: Path, *, what: str, limit: int, error: type[InputError] = InputError) -> bytes:
    """The bytes of the regular file ``path``, refusing anything else or anything over ``limit``.

    The limit is checked on the opened file and again while reading, so a file that grows (or
    lies about its size, as ``/proc`` files do) is never read past ``limit + 1`` bytes.
    """
    path = Path(path).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError) as exc:
        if isinstance(exc, IsADirectoryError):
            raise error(f"{what} is a directory, expected a file", file=path) from None
        raise _stat_error(path, exc if isinstance(exc, OSError) else OSError(str(exc)), what, error) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refuse(path, info.st_mode, what, error)
    with os.fdopen(fd, "rb") as fh:
        too_large = error(f"{what} is larger than the {size_text(limit)} limit", file=path)
        if info.st_size > limit:
            raise too_large
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise error(f"cannot read {what}: {exc.strerror or exc}", file=path) from None
    if len(data) > limit:
        raise too_large
    return data


def read_bounded_text(path: Path, *, what: str, limit: int, error: type[InputError] = InputError) -> str:
    """:func:`read_bounded`, decoded as UTF-8 (a BOM is dropped); not UTF-8 is a located error."""
    data = read_bounded(path, what=what, limit=limit, error=error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{what} is not UTF-8 text (byte {exc.start})", file=path, line=line) from None
