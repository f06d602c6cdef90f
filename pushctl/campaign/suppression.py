"""``--suppress FILE``: tokens and user ids that must never be sent to (opt-outs, complaints).

A file is either

* plain text: one token or user id per line; blank lines and ``#`` comments are ignored, or
* CSV (detected by a ``.csv`` name, or a first line naming a ``token`` / ``user_id`` column):
  a header with a ``token`` and/or ``user_id`` column; other columns are ignored.

Plain-text entries are matched against both the device token and its ``user_id`` column, since
the two never look alike. Lists are held in memory as sets: a few hundred thousand entries is a
few tens of MB at most.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pushctl.errors import InputError
from pushctl.inputs import read_bounded_text
from pushctl.model import Device

__all__ = ["SUPPRESSED", "SuppressionList"]

SUPPRESSED = "suppressed"
"""The skip reason for a suppressed device."""

_COLUMNS = ("token", "user_id")
SUPPRESSION_MAX_BYTES = 256 * 1024 * 1024
"""A list is held in memory: 256 MB is several million tokens."""


@dataclass
class SuppressionList:
    """Suppressed tokens and user ids, each remembering the first file that listed it."""

    tokens: dict[str, str] = field(default_factory=dict)
    """Suppressed token -> the file name it came from."""
    user_ids: dict[str, str] = field(default_factory=dict)
    """Suppressed user id -> the file name it came from."""
    either: dict[str, str] = field(default_factory=dict)
    """Plain-text entries, matched as a token or a user id -> the file name."""
    loaded: int = 0
    """Entries read from all files, duplicates included."""
    option: str = "--suppress"
    """The option that named the files (``pushctl forget --from`` reads the same format)."""

    @classmethod
    def load(cls, paths: Sequence[Path], *, option: str = "--suppress") -> SuppressionList:
        """Read every file in ``paths``; raises InputError naming ``file:line`` on a bad file."""
        result = cls(option=option)
        for path in paths:
            result.add_file(Path(path))
        return result

    def __len__(self) -> int:
        """Distinct suppressed values (a value listed as both token and user id counts once)."""
        return len(self.tokens.keys() | self.user_ids.keys() | self.either.keys())

    @property
    def _noun(self) -> str:
        return "suppression file" if self.option == "--suppress" else "file"

    def add_file(self, path: Path) -> int:
        """Add one file's entries; returns how many it had."""
        if not os.path.lexists(path):
            raise InputError(f"no such {self._noun}", file=path, field=self.option)
        try:
            text = read_bounded_text(path, what=self._noun, limit=SUPPRESSION_MAX_BYTES)
        except InputError as exc:
            raise InputError(exc.message, file=path, line=exc.line, field=self.option) from None
        lines = text.splitlines()
        first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
        header = [c.strip().lower() for c in next(csv.reader([first]))] if first else []
        if path.suffix.lower() == ".csv" or any(c in header for c in _COLUMNS):
            count = self._add_csv(path, lines)
        else:
            count = self._add_text(path.name, lines)
        self.loaded += count
        return count

    def _add_text(self, source: str, lines: Iterable[str]) -> int:
        count = 0
        for line in lines:
            value = line.strip()
            if value and not value.startswith("#"):
                self.either.setdefault(value, source)
                count += 1
        return count

    def _add_csv(self, path: Path, lines: list[str]) -> int:
        rows = csv.reader(lines)
        header: list[str] | None = None
        indexes: list[tuple[int, str]] = []
        count = 0
        try:
            for row in rows:
                lineno = rows.line_num
                if not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                    continue
                if header is None:
                    header = [cell.strip().lower() for cell in row]
                    if not any(c in header for c in _COLUMNS):
                        message = "no 'token' or 'user_id' column in the header"
                        raise InputError(message, file=path, line=lineno, field=self.option)
                    indexes = [(header.index(c), c) for c in _COLUMNS if c in header]
                    continue
                if len(row) > len(header):
                    message = f"{len(row)} fields but the header has {len(header)}"
                    raise InputError(message, file=path, line=lineno, field=self.option)
                for index, column in indexes:
                    value = row[index].strip() if index < len(row) else ""
                    if value:
                        target = self.tokens if column == "token" else self.user_ids
                        target.setdefault(value, path.name)
                        count += 1
        except csv.Error as exc:
            raise InputError(f"bad CSV: {exc}", file=path, line=rows.line_num, field=self.option) from None
        return count

    def source_for(self, device: Device) -> str | None:
        """The name of the file that suppresses ``device``, or None."""
        source = self.tokens.get(device.token) or self.either.get(device.token)
        if source is None:
            user_id = device.attrs.get("user_id")
            if user_id:
                source = self.user_ids.get(user_id) or self.either.get(user_id)
        return source

    def reason_for(self, device: Device) -> str | None:
        """``"suppressed"`` if the device's token or ``user_id`` is listed, else None."""
        return SUPPRESSED if self.source_for(device) is not None else None
