"""Result files written as the run goes (``--results``, ``--invalid-tokens``).

Lines are buffered; the caller calls :meth:`flush` per batch (before the journal commits one, see
``pushctl/cli/result_sink.py``), so a crash leaves the file complete up to the last settled device.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

from pushctl.errors import InputError
from pushctl.outcome import Outcome, Result
from pushctl.paths import open_private

RESULT_FIELDS = (
    "token",
    "platform",
    "outcome",
    "reason",
    "status",
    "attempts",
    "latency_ms",
    "provider_id",
    "variant",
    "line",
)


_BUFFER = 1 << 22


def _open(path: Path, option: str) -> IO[str]:
    try:
        # Tokens are personal data: a new file is 0600 whatever the umask (README: security).
        # A buffer far larger than one batch: lines reach the file only at flush(), whole, and
        # the results and prune files stay consistent with each other between flushes.
        return open_private(path, "a", encoding="utf-8", newline="", buffering=_BUFFER)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", file=path, field=option) from None


class ResultFile:
    """Per-device results as CSV (``.csv``) or JSON Lines (anything else), appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fresh = not path.exists() or path.stat().st_size == 0
        self._fh = _open(path, "--results")
        self._csv = csv.DictWriter(self._fh, RESULT_FIELDS) if path.suffix.lower() == ".csv" else None
        if self._csv is not None and fresh:
            self._csv.writeheader()

    def write(self, result: Result) -> None:
        row = result.to_dict()
        if self._csv is not None:
            self._csv.writerow({k: row.get(k, "") for k in RESULT_FIELDS})
        else:
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class InvalidTokenFile:
    """The prune list: one invalid token per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = _open(path, "--invalid-tokens")

    def write(self, result: Result) -> None:
        if result.outcome is Outcome.INVALID_TOKEN:
            self._fh.write(result.token + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
