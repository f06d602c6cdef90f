"""The device directory: user id -> devices (token, platform, attributes), in the journal database.

Trigger events name users, not tokens; the directory answers "which devices does u1001 have?"
with one indexed lookup. Tokens a send found invalid are kept in ``invalid_tokens`` and left out
of every lookup from then on (the prune loop closes itself); a later import does not bring
them back.

Personal data lives in exactly these tables (for erasure): ``directory`` (user_id, token,
attributes) and ``invalid_tokens`` (token, user_id).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pushctl import clock
from pushctl.model import Device, Platform

__all__ = ["DIRECTORY_SCHEMA", "Directory", "DirectoryEntry", "ImportStats"]

DIRECTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS directory (
    user_id     TEXT NOT NULL,
    token       TEXT NOT NULL,
    platform    TEXT NOT NULL,
    attrs_json  TEXT NOT NULL DEFAULT '{}',
    source      TEXT NOT NULL DEFAULT '',
    line        INTEGER NOT NULL DEFAULT 0,
    import_id   TEXT NOT NULL DEFAULT '',
    updated_at  REAL NOT NULL,
    PRIMARY KEY (user_id, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS directory_by_token ON directory (token);
CREATE INDEX IF NOT EXISTS directory_by_import ON directory (import_id);
CREATE TABLE IF NOT EXISTS invalid_tokens (
    token      TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    marked_at  REAL NOT NULL
) WITHOUT ROWID;
"""

_UPSERT = """
INSERT INTO directory (user_id, token, platform, attrs_json, source, line, import_id, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id, token) DO UPDATE SET
    platform = excluded.platform, attrs_json = excluded.attrs_json, source = excluded.source,
    line = excluded.line, import_id = excluded.import_id, updated_at = excluded.updated_at
"""
CHUNK = 2000

Transaction = Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]
"""The journal's ``BEGIN IMMEDIATE ... COMMIT`` (one writer transaction at a time)."""


@dataclass(slots=True)
class ImportStats:
    """What one import did."""

    devices: int = 0
    users: int = 0
    removed: int = 0
    """Devices of the imported users that the file no longer lists."""
    missing_user: int = 0
    """Rows without a ``user_id`` (not imported)."""


@dataclass(slots=True)
class DirectoryEntry:
    """One device of a user, with its invalid mark (``""`` when usable)."""

    device: Device
    invalid_reason: str
    updated_at: float


class Directory:
    """The directory tables of one journal; use from the journal's thread."""

    def __init__(self, conn: sqlite3.Connection, transaction: Transaction) -> None:
        self._conn = conn
        self._transaction = transaction

    def import_devices(self, devices: Iterable[Device], *, replace_all: bool = False) -> ImportStats:
        """Store every device that has a ``user_id`` attribute, in one transaction.

        The users in ``devices`` end up with exactly the devices listed for them (devices the file
        no longer lists are removed); other users are untouched unless ``replace_all``.
        """
        stats = ImportStats()
        import_id = f"{clock.timestamp():.6f}-{id(self)}"
        now = clock.timestamp()
        with self._transaction() as conn:
            if replace_all:
                stats.removed += conn.execute("DELETE FROM directory").rowcount
            batch: list[tuple[Any, ...]] = []
            for device in devices:
                user_id = device.attrs.get("user_id", "").strip()
                if not user_id:
                    stats.missing_user += 1
                    continue
                attrs = json.dumps(device.attrs, ensure_ascii=False, separators=(",", ":"))
                batch.append(
                    (
                        user_id,
                        device.token,
                        str(device.platform),
                        attrs,
                        device.source,
                        device.line,
                        import_id,
                        now,
                    )
                )
                if len(batch) >= CHUNK:
                    conn.executemany(_UPSERT, batch)
                    stats.devices += len(batch)
                    batch.clear()
            if batch:
                conn.executemany(_UPSERT, batch)
                stats.devices += len(batch)
            stats.removed += conn.execute(
                "DELETE FROM directory WHERE import_id != ? AND user_id IN "
                "(SELECT user_id FROM directory WHERE import_id = ?)",
                (import_id, import_id),
            ).rowcount
            stats.users = conn.execute(
                "SELECT COUNT(DISTINCT user_id) FROM directory WHERE import_id = ?", (import_id,)
            ).fetchone()[0]
        return stats

    def devices(self, user_id: str, *, include_invalid: bool = False) -> list[DirectoryEntry]:
        """The user's devices (without the ones marked invalid, unless asked), in import order."""
        rows = self._conn.execute(
            "SELECT d.token, d.platform, d.attrs_json, d.source, d.line, d.updated_at, "
            "COALESCE(i.reason, '') FROM directory d LEFT JOIN invalid_tokens i ON i.token = d.token "
            "WHERE d.user_id = ? ORDER BY d.line, d.token",
            (user_id,),
        )
        entries = []
        for token, platform, attrs, source, line, updated, invalid in rows:
            if invalid and not include_invalid:
                continue
            device = Device(token, Platform(platform), json.loads(attrs), source, line)
            entries.append(DirectoryEntry(device, invalid, updated))
        return entries

    def device(self, token: str) -> Device | None:
        """The directory's device with this token (any user), or None."""
        row = self._conn.execute(
            "SELECT platform, attrs_json, source, line FROM directory WHERE token = ? LIMIT 1", (token,)
        ).fetchone()
        if row is None:
            return None
        return Device(token, Platform(row[0]), json.loads(row[1]), row[2], row[3])

    def is_invalid(self, tokens: Sequence[str]) -> set[str]:
        """The given tokens that are marked invalid."""
        found: set[str] = set()
        for start in range(0, len(tokens), 500):
            part = tokens[start : start + 500]
            rows = self._conn.execute(
                f"SELECT token FROM invalid_tokens WHERE token IN ({','.join('?' * len(part))})", tuple(part)
            )
            found.update(token for (token,) in rows)
        return found

    def mark_invalid(self, marks: Iterable[tuple[str, str, str]]) -> None:
        """Mark ``(token, user_id, reason)`` invalid (the first mark of a token is kept)."""
        rows = [(token, user, reason, clock.timestamp()) for token, user, reason in marks]
        if rows:
            with self._transaction() as conn:
                self.write_marks(conn, rows)

    @staticmethod
    def write_marks(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str, float]]) -> None:
        """Insert ``(token, user_id, reason, marked_at)`` marks inside the caller's transaction."""
        conn.executemany(
            "INSERT OR IGNORE INTO invalid_tokens (token, user_id, reason, marked_at) VALUES (?, ?, ?, ?)",
            rows,
        )

    def invalid(self) -> Iterator[tuple[str, str, str, float]]:
        """Every marked token: ``(token, user_id, reason, marked_at)``, oldest mark first."""
        cursor = self._conn.execute(
            "SELECT token, user_id, reason, marked_at FROM invalid_tokens ORDER BY marked_at, token"
        )
        yield from cursor

    def token_owners(self) -> Iterator[tuple[str, str]]:
        """Every ``(token, user_id)`` of the directory."""
        yield from self._conn.execute("SELECT token, user_id FROM directory")

    def copy_from(self, path: Path) -> None:
        """Copy another journal's directory and invalid marks into this one (for rehearsals)."""
        self._conn.execute("ATTACH DATABASE ? AS other", (str(path),))
        try:
            with self._transaction() as conn:
                tables = {row[0] for row in conn.execute("SELECT name FROM other.sqlite_master")}
                for table in ("directory", "invalid_tokens"):
                    if table in tables:
                        conn.execute(f"INSERT OR REPLACE INTO main.{table} SELECT * FROM other.{table}")
        finally:
            self._conn.execute("DETACH DATABASE other")

    def counts(self) -> tuple[int, int, int]:
        """(users, devices, invalid marks)."""
        users, devices = self._conn.execute(
            "SELECT COUNT(DISTINCT user_id), COUNT(*) FROM directory"
        ).fetchone()
        invalid = self._conn.execute("SELECT COUNT(*) FROM invalid_tokens").fetchone()[0]
        return int(users), int(devices), int(invalid)
