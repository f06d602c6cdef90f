"""Users' notification preferences kept in the journal (``pushctl prefs import``).

One row per (user or token, category): opted in or out, replaced by the next import that names
the same pair. Campaigns and trigger rules read it beside ``--preferences`` files and
``pref_<category>`` audience columns (:mod:`pushctl.insights.preferences` decides). Personal data:
registered in :mod:`pushctl.journal.personal` (erased on request; current state, not history).
A row names a user or a token, the other column is NULL (never ``''``: erasure links the two).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pushctl import clock
from pushctl.journal.directory import Transaction

__all__ = ["PREFERENCES_SCHEMA", "PreferenceRow", "PreferenceStore"]

PREFERENCES_SCHEMA = """
CREATE TABLE IF NOT EXISTS preferences (
    subject    TEXT NOT NULL,
    category   TEXT NOT NULL,
    user_id    TEXT,
    token      TEXT,
    opted_in   INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (subject, category)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS preferences_by_token ON preferences (token);
"""


@dataclass(frozen=True, slots=True)
class PreferenceRow:
    """One user's (or one device's) choice for one category."""

    category: str
    opted_in: bool
    user_id: str | None = None
    token: str | None = None
    source: str = ""

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}" if self.user_id else f"token:{self.token}"


class PreferenceStore:
    """The ``preferences`` table of one journal."""

    def __init__(self, conn: sqlite3.Connection, transaction: Transaction) -> None:
        self._conn = conn
        self._transaction = transaction

    def save(self, rows: Iterable[PreferenceRow]) -> int:
        """Store ``rows`` in one transaction (a later row for the same pair wins); how many."""
        now = clock.timestamp()
        count = 0
        with self._transaction() as conn:
            batch = []
            for row in rows:
                batch.append((row.subject, row.category, row.user_id or None, row.token or None,
                              int(row.opted_in), now, row.source))  # fmt: skip
                if len(batch) >= 2000:
                    count += self._write(conn, batch)
                    batch = []
            count += self._write(conn, batch)
        return count

    @staticmethod
    def _write(conn: sqlite3.Connection, batch: Sequence[tuple[object, ...]]) -> int:
        conn.executemany(
            "INSERT INTO preferences (subject, category, user_id, token, opted_in, updated_at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject, category) DO UPDATE SET "
            "opted_in = excluded.opted_in, updated_at = excluded.updated_at, source = excluded.source",
            batch,
        )
        return len(batch)

    def opted_out(
        self, users: Sequence[str], tokens: Sequence[str], category: str
    ) -> tuple[set[str], set[str]]:
        """(users, tokens) among these that opted out of ``category``."""
        subjects = [f"user:{u}" for u in users if u] + [f"token:{t}" for t in tokens if t]
        out_users: set[str] = set()
        out_tokens: set[str] = set()
        for start in range(0, len(subjects), 500):
            part = subjects[start : start + 500]
            rows = self._conn.execute(
                f"SELECT subject FROM preferences WHERE subject IN ({','.join('?' * len(part))}) "
                "AND category = ? AND opted_in = 0",
                (*part, category),
            )
            for (subject,) in rows:
                kind, _, value = subject.partition(":")
                (out_users if kind == "user" else out_tokens).add(value)
        return out_users, out_tokens

    def of(self, user_id: str | None = None, token: str | None = None) -> list[PreferenceRow]:
        """Every stored choice of a user or a token (``pushctl prefs show``)."""
        rows = self._conn.execute(
            "SELECT category, opted_in, user_id, token, source FROM preferences WHERE subject IN (?, ?) "
            "ORDER BY category",
            (f"user:{user_id}", f"token:{token}"),
        )
        return [PreferenceRow(c, bool(o), u, t, s) for c, o, u, t, s in rows]

    def counts(self) -> tuple[int, int]:
        """(rows, opted-out rows)."""
        total, out = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(opted_in = 0), 0) FROM preferences"
        ).fetchone()
        return int(total), int(out)
