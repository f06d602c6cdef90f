"""Event sources: JSON Lines from a file or stdin (``--follow`` keeps reading a growing file, as
``tail -F`` does, across rotation); Redis Streams live in :mod:`.redis_source`.

A source hands out :class:`Record` values in batches and is told, with :meth:`EventSource.ack`,
which of them are journaled. A file has nothing to acknowledge (the journal's record of seen
event ids is what makes a re-read harmless); a Redis stream acknowledges with ``XACK``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO

from pushctl.errors import InputError
from pushctl.triggers.record import EventSource, Record

__all__ = ["EventSource", "FileSource", "Record", "StdinSource", "open_source"]

MAX_LINE = 1 << 20
_TOO_LONG = "\x00<line longer than MAX_LINE>"  # compared by identity: stands for a skipped line
"""A line longer than this (1 MiB) is a malformed event, not a reason to run out of memory."""
FOLLOW_POLL = 0.2


class _Unacknowledged:
    """Sources with nothing to acknowledge: the journal's record of seen event ids is what
    makes reading a record twice harmless."""

    async def ack(self, records: list[Record]) -> None:
        return None

    async def dead_letter(self, record: Record, reason: str) -> None:
        return None  # the runner's --dead-letter file keeps it


class FileSource(_Unacknowledged):
    """JSON Lines from a file; with ``follow``, waits for more and reopens a rotated file."""

    finite: bool
    consumer = "main"

    def __init__(self, path: Path, *, follow: bool = False) -> None:
        self.path = path
        self.follow = follow
        self.finite = not follow
        self.name = f"file:{path}"
        self.caught_up = False
        self.exhausted = False
        self._fh: IO[bytes] | None = None
        self._inode: tuple[int, int] | None = None
        self._line = 0
        self._partial = b""

    async def open(self) -> None:
        if not self.path.exists() and not self.follow:
            raise InputError("no such file", file=self.path, field="--events")
        if self.path.is_dir():
            raise InputError("is a directory", file=self.path, field="--events")
        self._reopen()

    def _reopen(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            self._fh = self.path.open("rb")
        except FileNotFoundError:
            if not self.follow:
                raise InputError("no such file", file=self.path, field="--events") from None
            return  # tail -F: wait for the file to appear
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=self.path, field="--events") from None
        st = os.fstat(self._fh.fileno())
        self._inode = (st.st_dev, st.st_ino)
        self._line = 0
        self._partial = b""

    def _rotated(self) -> bool:
        """The path now names another file (rotated), or ours was truncated."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False  # being rotated: keep reading the old one until a new one appears
        if self._fh is None:
            return True
        if (st.st_dev, st.st_ino) != self._inode:
            return True
        return st.st_size < self._fh.tell()

    async def read(self, max_records: int, timeout: float) -> list[Record]:
        records = self._read_lines(max_records)
        if records or not self.follow:
            self.caught_up = len(records) < max_records  # the end of the file was reached
            self.exhausted = not records and not self.follow
            return records
        self.caught_up = True
        if self._rotated():
            self._reopen()
            records = self._read_lines(max_records)
            if records:
                return records
        await asyncio.sleep(min(timeout, FOLLOW_POLL))
        return self._read_lines(max_records)

    def _read_lines(self, max_records: int) -> list[Record]:
        fh = self._fh
        if fh is None:
            return []
        records: list[Record] = []
        while len(records) < max_records:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            if not raw.endswith(b"\n") and self.follow and len(raw) <= MAX_LINE:
                self._partial += raw  # a writer is mid-line: wait for the rest
                break
            raw, self._partial = self._partial + raw, b""
            self._line += 1
            if len(raw) > MAX_LINE:
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = fh.readline(MAX_LINE)
                records.append(Record(b"", f"{self.path}:{self._line}", problem="line longer than 1 MiB"))
                continue
            if raw.strip():
                records.append(Record(raw, f"{self.path}:{self._line}"))
        return records

    async def lag(self) -> int | None:
        if self._fh is None:
            return None
        with contextlib.suppress(OSError):
            return max(0, os.fstat(self._fh.fileno()).st_size - self._fh.tell())
        return None

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class StdinSource(_Unacknowledged):
    """JSON Lines from standard input, read by a daemon thread (works for pipes, terminals and
    redirected files alike, and never holds up the exit)."""

    finite = True
    consumer = "main"
    name = "stdin"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self.caught_up = False
        self.exhausted = False
        self._lines: deque[str | None] = deque()
        self._wake: asyncio.Event | None = None
        self._line = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        stream = self._stream if self._stream is not None else sys.stdin

        def pump() -> None:
            try:
                # readline with a bound, as the file source does: `cat /dev/zero |` must not fill memory.
                while line := stream.readline(MAX_LINE + 1):
                    if len(line) > MAX_LINE:
                        while line and not line.endswith("\n"):  # skip the rest of the line
                            line = stream.readline(MAX_LINE)
                        line = _TOO_LONG
                    self._lines.append(line)
                    loop.call_soon_threadsafe(wake.set)
            except (OSError, ValueError):
                pass
            finally:
                self._lines.append(None)
                with contextlib.suppress(RuntimeError):  # the loop may be gone at exit
                    loop.call_soon_threadsafe(wake.set)

        threading.Thread(target=pump, name="pushctl-stdin", daemon=True).start()

    async def read(self, max_records: int, timeout: float) -> list[Record]:
        assert self._wake is not None
        if not self._lines and not self.exhausted:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        records: list[Record] = []
        while self._lines and len(records) < max_records:
            line = self._lines.popleft()
            if line is None:
                self.exhausted = True
                break
            self._line += 1
            if line is _TOO_LONG:
                records.append(Record("", f"<stdin>:{self._line}", problem="line longer than 1 MiB"))
            elif line.strip():
                records.append(Record(line, f"<stdin>:{self._line}"))
        self.caught_up = not self._lines
        return records

    async def lag(self) -> int | None:
        return len(self._lines)

    async def close(self) -> None:
        return None


def open_source(spec: str, *, follow: bool = False, consumer: str | None = None) -> EventSource:
    """The source ``--events`` names: ``-`` (stdin), ``redis://...`` or a JSON Lines file."""
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from pushctl.triggers.redis_source import RedisSource

        return RedisSource.from_url(spec, consumer=consumer)
    if spec == "-":
        if follow:
            raise InputError("--follow reads a file, not stdin", field="--follow")
        return StdinSource()
    return FileSource(Path(spec), follow=follow)
