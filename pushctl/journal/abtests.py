"""A/B tests with a winner for the rest, and the per-device send slots of ``--local-time best``.

``--ab-test 10%`` records the campaign's test here: a stable random slice of the devices (a hash of
the campaign id and the token, independent of the variant hash) gets the variants, the others are
held back (``deferred``, reason ``ab_holdout``). ``--winner-of`` records the winning variant; from
then on, every run of that campaign sends it to the held-back devices. Since membership of the
slice is a pure function of (campaign, token, fraction), reports can tell test devices from the
rollout without a column on the hot path (``pushctl_in_slice`` is registered on the connection).

``device_slots`` keeps the slot ``--local-time best`` chose for each device (its user's best hour,
or the fallback): a later run of the same campaign reuses it, so a device's slot never moves
under it, and ``runs show`` can say who was sent when. Personal data (token): registered in
:mod:`pushctl.journal.personal`, pruned with its run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pushctl import clock
from pushctl.journal.directory import Transaction

__all__ = ["AB_SCHEMA", "AbTest", "AbTests", "SlotChoice", "in_ab_slice", "register_functions"]

AB_SCHEMA = """
CREATE TABLE IF NOT EXISTS ab_tests (
    campaign_id TEXT PRIMARY KEY,
    fraction    REAL NOT NULL,
    created_at  REAL NOT NULL,
    winner      TEXT,
    metric      TEXT,
    decided_at  REAL,
    decision    TEXT NOT NULL DEFAULT '{}'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_slots (
    campaign_id TEXT NOT NULL,
    token       TEXT NOT NULL,
    slot        TEXT NOT NULL,
    basis       TEXT NOT NULL,
    opens       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, token)
) WITHOUT ROWID;
"""

_SCALE = float(1 << 64)


def in_ab_slice(campaign_id: str, token: str, fraction: float) -> bool:
    """Whether ``token`` is in the campaign's test slice of ``fraction`` (0..1) of the devices."""
    digest = hashlib.blake2b(f"ab-slice\x00{campaign_id}\x00{token}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < fraction


def register_functions(conn: sqlite3.Connection) -> None:
    """``pushctl_in_slice(campaign, token, fraction)`` for the report queries."""
    conn.create_function("pushctl_in_slice", 3, lambda c, t, f: int(in_ab_slice(c, t, f)), deterministic=True)


@dataclass(slots=True)
class AbTest:
    """One campaign's A/B test: the slice, and the winner once chosen."""

    campaign_id: str
    fraction: float
    created_at: float
    winner: str | None = None
    metric: str | None = None
    decided_at: float | None = None
    decision: dict[str, Any] = field(default_factory=dict)
    """What the choice rested on (the verdict's figures and sentence)."""


@dataclass(frozen=True, slots=True)
class SlotChoice:
    """The slot ``--local-time best`` chose for one device."""

    slot: str
    """``HH:MM``, local time."""
    basis: str
    """``history`` (the user's own best hour) or ``fallback``."""
    opens: int = 0
    """Opens the choice rested on."""


class AbTests:
    """The ``ab_tests`` and ``device_slots`` tables of one journal."""

    def __init__(self, conn: sqlite3.Connection, transaction: Transaction) -> None:
        self._conn = conn
        self._transaction = transaction

    def get(self, campaign_id: str) -> AbTest | None:
        row = self._conn.execute(
            "SELECT campaign_id, fraction, created_at, winner, metric, decided_at, decision FROM ab_tests "
            "WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        if row is None:
            return None
        return AbTest(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6] or "{}"))

    def start(self, campaign_id: str, fraction: float) -> AbTest:
        """Record the test (the first run's fraction stays: the slice must not move on a resume)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO ab_tests (campaign_id, fraction, created_at) VALUES (?, ?, ?)",
                (campaign_id, fraction, clock.timestamp()),
            )
        test = self.get(campaign_id)
        assert test is not None
        return test

    def decide(self, campaign_id: str, winner: str, metric: str, decision: dict[str, Any]) -> None:
        """Record the winner (once: a resumed rollout keeps the variant it started with)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE ab_tests SET winner = ?, metric = ?, decided_at = ?, decision = ? "
                "WHERE campaign_id = ? AND winner IS NULL",
                (winner, metric, clock.timestamp(), json.dumps(decision, default=str), campaign_id),
            )

    # -- --local-time best --------------------------------------------------------------------

    def slots(self, campaign_id: str, tokens: Sequence[str]) -> dict[str, SlotChoice]:
        """The slots already chosen for these devices of the campaign."""
        found: dict[str, SlotChoice] = {}
        for start in range(0, len(tokens), 500):
            part = tokens[start : start + 500]
            rows = self._conn.execute(
                "SELECT token, slot, basis, opens FROM device_slots WHERE campaign_id = ? "
                f"AND token IN ({','.join('?' * len(part))})",
                (campaign_id, *part),
            )
            found.update((token, SlotChoice(slot, basis, opens)) for token, slot, basis, opens in rows)
        return found

    @staticmethod
    def write_slots(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, str, str, int]]) -> None:
        """Insert ``(campaign, token, slot, basis, opens)`` inside the caller's transaction; a slot
        once chosen is kept."""
        conn.executemany(
            "INSERT OR IGNORE INTO device_slots (campaign_id, token, slot, basis, opens) "
            "VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def slot_counts(self, campaign_id: str) -> list[tuple[str, str, int]]:
        """``(slot, basis, devices)`` for ``runs show``, earliest slot first."""
        rows = self._conn.execute(
            "SELECT slot, basis, COUNT(*) FROM device_slots WHERE campaign_id = ? GROUP BY slot, basis "
            "ORDER BY slot, basis",
            (campaign_id,),
        )
        return [(str(s), str(b), int(n)) for s, b, n in rows]
