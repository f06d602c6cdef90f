"""Trigger state in the journal database: events seen, jobs (pending delays, digests), sends.

The exactly-once-visible protocol of campaigns, applied to rules:

1. An event's effects (the event id as *seen*, the jobs it creates or cancels, the sends it fires,
   marked *in flight*) are committed in one transaction with the rest of their batch; the source
   acknowledges the batch only after that commit. A redelivered event finds its id seen and does
   nothing more.
2. A job fires once: ``UPDATE ... SET state = 'fired' WHERE state = 'pending'`` is the claim, so a
   cancel or a second process sharing the journal cannot make it fire twice.
3. A send left in flight by a dead process is sent again with the same collapse id (derived from
   the job), so the device still shows one notification.

Personal data (for erasure) is in ``trigger_jobs`` (user_id, token, the events), ``trigger_sends``
(user_id, token) and ``trigger_dedupe`` (keys taken from events).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pushctl import clock
from pushctl.journal.directory import Directory, Transaction
from pushctl.outcome import Outcome, Result

__all__ = ["TRIGGER_SCHEMA", "Job", "PendingSend", "TriggerStore"]

TRIGGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS trigger_events (
    ruleset TEXT NOT NULL, event_id TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (ruleset, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trigger_jobs (
    job_key     TEXT PRIMARY KEY,
    ruleset     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    token       TEXT NOT NULL DEFAULT '',
    platform    TEXT NOT NULL DEFAULT '',
    group_key   TEXT NOT NULL DEFAULT '',
    events_json TEXT NOT NULL,
    event_count INTEGER NOT NULL DEFAULT 1,
    due_at      REAL NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    fired_at    REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trigger_jobs_due ON trigger_jobs (state, due_at);
CREATE INDEX IF NOT EXISTS trigger_jobs_group ON trigger_jobs (ruleset, rule, group_key, state);
CREATE INDEX IF NOT EXISTS trigger_jobs_fired ON trigger_jobs (ruleset, rule, user_id, fired_at);
CREATE TABLE IF NOT EXISTS trigger_dedupe (
    ruleset TEXT NOT NULL, rule TEXT NOT NULL, key TEXT NOT NULL, seen_at REAL NOT NULL,
    PRIMARY KEY (ruleset, rule, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trigger_sends (
    job_key     TEXT NOT NULL,
    token       TEXT NOT NULL,
    ruleset     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    user_id     TEXT NOT NULL DEFAULT '',
    platform    TEXT NOT NULL,
    collapse_id TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL DEFAULT '',
    state       TEXT NOT NULL,
    due_at      REAL,
    outcome     TEXT,
    reason      TEXT,
    status      INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    latency_ms  REAL,
    provider_id TEXT,
    created_at  REAL NOT NULL,
    settled_at  REAL,
    PRIMARY KEY (job_key, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS trigger_sends_state ON trigger_sends (state, due_at);
CREATE INDEX IF NOT EXISTS trigger_sends_by_token ON trigger_sends (token, outcome, settled_at);
CREATE TABLE IF NOT EXISTS trigger_counts (
    ruleset TEXT NOT NULL, rule TEXT NOT NULL, what TEXT NOT NULL, reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (ruleset, rule, what, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trigger_consumers (
    ruleset TEXT NOT NULL, source TEXT NOT NULL, consumer TEXT NOT NULL,
    pid INTEGER, host TEXT, started_at REAL, seen_at REAL, events INTEGER NOT NULL DEFAULT 0,
    lag INTEGER, status TEXT NOT NULL DEFAULT 'running',
    PRIMARY KEY (ruleset, source, consumer)
) WITHOUT ROWID;
"""

_SETTLE = (
    "UPDATE trigger_sends SET state = ?, outcome = ?, reason = ?, status = ?, attempts = ?, latency_ms = ?, "
    "provider_id = ?, settled_at = ? WHERE job_key = ? AND token = ?"
)
_INSERT_SEND = (
    "INSERT INTO trigger_sends (job_key, token, ruleset, rule, user_id, platform, collapse_id, owner, "
    "state, due_at, outcome, reason, created_at, settled_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_key, token) DO UPDATE SET owner = excluded.owner, state = excluded.state, "
    "due_at = excluded.due_at, outcome = excluded.outcome, reason = excluded.reason, "
    "settled_at = excluded.settled_at"
)
_BUMP = (
    "INSERT INTO trigger_counts (ruleset, rule, what, reason, count) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (ruleset, rule, what, reason) DO UPDATE SET count = count + excluded.count"
)
FLUSH_ROWS = 500
FLUSH_SECONDS = 0.2


@dataclass(slots=True)
class Job:
    """One notification-to-be of one rule for one user (or token): a row of ``trigger_jobs``."""

    job_key: str
    rule: str
    user_id: str
    token: str
    platform: str
    group_key: str
    events_json: str
    event_count: int
    due_at: float
    state: str = "pending"


@dataclass(slots=True)
class PendingSend:
    """A send to (re)start: in flight when a process died, or deferred by quiet hours."""

    job_key: str
    token: str
    rule: str
    user_id: str
    platform: str
    collapse_id: str


_JOB_COLUMNS = "job_key, rule, user_id, token, platform, group_key, events_json, event_count, due_at, state"


class TriggerStore:
    """The trigger tables of one journal, for one rule set. Writes happen in :meth:`batch`."""

    def __init__(
        self, conn: sqlite3.Connection, transaction: Transaction, ruleset: str, owner: str = ""
    ) -> None:
        self._conn = conn
        self._transaction = transaction
        self.ruleset = ruleset
        self.owner = owner
        self.counts: Counter[tuple[str, str, str]] = Counter()
        """Not yet written ``(rule, what, reason)`` counters; written with the next batch."""
        self._settled: list[tuple[Any, ...]] = []
        self._marks: list[tuple[str, str, str, float]] = []
        self._last_flush = time.monotonic()

    @contextlib.contextmanager
    def batch(self) -> Iterator[TriggerStore]:
        """One transaction: everything done inside commits together (with buffered results)."""
        with self._transaction():
            yield self
            self._write_buffers()

    # -- events and dedupe ------------------------------------------------------------------

    def first_sight(self, event_id: str) -> bool:
        """Record the event id as seen; False when it was seen before (a redelivery)."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO trigger_events (ruleset, event_id, seen_at) VALUES (?, ?, ?)",
            (self.ruleset, event_id, clock.timestamp()),
        )
        return cur.rowcount == 1

    def first_dedupe(self, rule: str, key: str) -> bool:
        """Record a rule's dedupe key; False when it was recorded before."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO trigger_dedupe (ruleset, rule, key, seen_at) VALUES (?, ?, ?, ?)",
            (self.ruleset, rule, key, clock.timestamp()),
        )
        return cur.rowcount == 1

    # -- jobs --------------------------------------------------------------------------------

    def add_job(self, job: Job, *, fired_at: float | None = None) -> bool:
        """Insert a job (pending, or already fired when ``fired_at`` is given); False if it exists."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO trigger_jobs (job_key, ruleset, rule, user_id, token, platform, "
            "group_key, events_json, event_count, due_at, state, created_at, fired_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.job_key,
                self.ruleset,
                job.rule,
                job.user_id,
                job.token,
                job.platform,
                job.group_key,
                job.events_json,
                job.event_count,
                job.due_at,
                "fired" if fired_at is not None else "pending",
                clock.timestamp(),
                fired_at,
            ),
        )
        return cur.rowcount == 1

    def open_job(self, rule: str, group_key: str) -> Job | None:
        """The pending job of a rule for a group (an open digest window), if any."""
        row = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM trigger_jobs WHERE ruleset = ? AND rule = ? AND group_key = ? "
            "AND state = 'pending' ORDER BY due_at LIMIT 1",
            (self.ruleset, rule, group_key),
        ).fetchone()
        return Job(*row) if row else None

    def update_events(self, job_key: str, events_json: str, event_count: int) -> None:
        self._conn.execute(
            "UPDATE trigger_jobs SET events_json = ?, event_count = ? "
            "WHERE job_key = ? AND state = 'pending'",
            (events_json, event_count, job_key),
        )

    def cancel(self, rule: str, group_key: str) -> int:
        """Cancel the rule's pending jobs for this group; how many were cancelled."""
        return self._conn.execute(
            "UPDATE trigger_jobs SET state = 'cancelled', reason = 'cancelled' "
            "WHERE ruleset = ? AND rule = ? AND group_key = ? AND state = 'pending'",
            (self.ruleset, rule, group_key),
        ).rowcount

    def due_jobs(self, now: float, limit: int = 500) -> list[Job]:
        """Pending jobs due at ``now`` (UNIX seconds), earliest first."""
        rows = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM trigger_jobs INDEXED BY trigger_jobs_due "
            "WHERE state = 'pending' AND due_at <= ? AND ruleset = ? ORDER BY due_at LIMIT ?",
            (now, self.ruleset, limit),
        )
        return [Job(*row) for row in rows]

    def claim(self, job_key: str, now: float, *, state: str = "fired", reason: str = "") -> bool:
        """Move a pending job to ``state``; False when it was no longer pending (cancelled, fired)."""
        return (
            self._conn.execute(
                "UPDATE trigger_jobs SET state = ?, reason = ?, fired_at = ? "
                "WHERE job_key = ? AND state = 'pending'",
                (state, reason, now, job_key),
            ).rowcount
            == 1
        )

    def set_job_state(self, job_key: str, state: str, reason: str) -> None:
        self._conn.execute(
            "UPDATE trigger_jobs SET state = ?, reason = ? WHERE job_key = ?", (state, reason, job_key)
        )

    def job(self, job_key: str) -> Job | None:
        row = self._conn.execute(
            f"SELECT {_JOB_COLUMNS} FROM trigger_jobs WHERE job_key = ?", (job_key,)
        ).fetchone()
        return Job(*row) if row else None

    def fired_since(self, rule: str, user_id: str, since: float) -> int:
        """Jobs of this rule fired for the user since ``since`` (for ``throttle``)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM trigger_jobs INDEXED BY trigger_jobs_fired WHERE ruleset = ? AND rule = ? "
            "AND user_id = ? AND fired_at >= ? AND state = 'fired'",
            (self.ruleset, rule, user_id, since),
        ).fetchone()
        return int(row[0])

    def next_due(self) -> float | None:
        """The earliest due time of a pending job or a deferred send (None: nothing waits)."""
        job = self._conn.execute(
            "SELECT MIN(due_at) FROM trigger_jobs WHERE state = 'pending' AND ruleset = ?", (self.ruleset,)
        ).fetchone()[0]
        send = self._conn.execute(
            "SELECT MIN(due_at) FROM trigger_sends WHERE state = 'deferred' AND ruleset = ?", (self.ruleset,)
        ).fetchone()[0]
        times = [t for t in (job, send) if t is not None]
        return min(times) if times else None

    def pending_count(self) -> int:
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM trigger_jobs WHERE state = 'pending' AND ruleset = ?", (self.ruleset,)
            ).fetchone()[0]
        )

    # -- sends -------------------------------------------------------------------------------

    def add_send(
        self,
        job: Job,
        token: str,
        platform: str,
        collapse_id: str,
        *,
        state: str = "inflight",
        due_at: float | None = None,
        outcome: Outcome | None = None,
        reason: str = "",
    ) -> None:
        """Record one device's send of a job: in flight, deferred until ``due_at``, or settled."""
        now = clock.timestamp()
        self._conn.execute(
            _INSERT_SEND,
            (
                job.job_key,
                token,
                self.ruleset,
                job.rule,
                job.user_id,
                platform,
                collapse_id,
                self.owner,
                state,
                due_at,
                str(outcome) if outcome else None,
                reason or None,
                now,
                now if outcome else None,
            ),
        )

    def claim_send(self, job_key: str, token: str) -> bool:
        """Take a deferred send (its time came) or an orphaned in-flight one for this process."""
        return (
            self._conn.execute(
                "UPDATE trigger_sends SET state = 'inflight', owner = ? WHERE job_key = ? AND token = ? "
                "AND state IN ('deferred', 'inflight')",
                (self.owner, job_key, token),
            ).rowcount
            == 1
        )

    def sends(
        self,
        *,
        state: str,
        owners: Sequence[str] | None = None,
        due: float | None = None,
        limit: int = 10_000,
    ) -> list[PendingSend]:
        """Sends in ``state`` (``inflight`` of these owners; ``deferred`` due by ``due``)."""
        sql = (
            "SELECT job_key, token, rule, user_id, platform, collapse_id FROM trigger_sends "
            "INDEXED BY trigger_sends_state WHERE state = ? AND ruleset = ?"
        )
        params: list[Any] = [state, self.ruleset]
        if due is not None:
            sql += " AND due_at <= ?"
            params.append(due)
        if owners is not None:
            sql += f" AND owner IN ({','.join('?' * len(owners))})"
            params.extend(owners)
        rows = self._conn.execute(sql + " LIMIT ?", (*params, limit))
        return [PendingSend(*row) for row in rows]

    def inflight_owners(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT DISTINCT owner FROM trigger_sends WHERE state = 'inflight' AND ruleset = ?",
            (self.ruleset,),
        )
        return [owner for (owner,) in rows]

    def record(self, job_key: str, user_id: str, rule: str, result: Result) -> None:
        """Buffer one send's answer; written with the next batch, or after 500 / 0.2 s."""
        # auth_failed is not final: the send stays in flight and the next run sends it again.
        state = "settled" if result.outcome.is_final else "inflight"
        self._settled.append(
            (
                state,
                str(result.outcome),
                result.reason,
                result.status,
                result.attempts,
                result.latency_ms,
                result.provider_id,
                clock.timestamp(),
                job_key,
                result.token,
            )
        )
        self.counts[
            (rule, f"sent:{result.outcome}", result.reason if not result.outcome.is_success else "")
        ] += 1
        if result.outcome is Outcome.INVALID_TOKEN:
            self._marks.append((result.token, user_id, result.reason, clock.timestamp()))
        if len(self._settled) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write buffered answers and counters now."""
        if self._settled or self._marks or self.counts:
            with self._transaction():
                self._write_buffers()
        self._last_flush = time.monotonic()

    def _write_buffers(self) -> None:
        conn = self._conn
        if self._settled:
            conn.executemany(_SETTLE, self._settled)
            self._settled.clear()
        if self._marks:
            Directory.write_marks(conn, self._marks)
            self._marks.clear()
        if self.counts:
            conn.executemany(_BUMP, [(self.ruleset, *key, n) for key, n in self.counts.items()])
            self.counts.clear()
        self._last_flush = time.monotonic()

    # -- consumers and retention -----------------------------------------------------------------

    def heartbeat(
        self,
        source: str,
        consumer: str,
        *,
        pid: int,
        host: str,
        started_at: float,
        events: int,
        lag: int | None,
        status: str = "running",
    ) -> None:
        """Record a consumer's progress (``trigger status`` reads it)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO trigger_consumers (ruleset, source, consumer, pid, host, started_at, seen_at, "
                "events, lag, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (ruleset, source, consumer) DO UPDATE SET pid = excluded.pid, "
                "host = excluded.host, started_at = excluded.started_at, seen_at = excluded.seen_at, "
                "events = excluded.events, lag = excluded.lag, status = excluded.status",
                (self.ruleset, source, consumer, pid, host, started_at, time.time(), events, lag, status),
            )
            self._write_buffers()

    def prune(self, before: float) -> int:
        """Forget what is older than ``before`` (wall-clock seconds) and finished; keeps pending
        jobs and unsettled sends whatever their age. Returns the rows removed."""
        removed = 0
        with self._transaction() as conn:
            for sql in (
                "DELETE FROM trigger_events WHERE ruleset = ? AND seen_at < ?",
                "DELETE FROM trigger_dedupe WHERE ruleset = ? AND seen_at < ?",
                "DELETE FROM trigger_jobs WHERE ruleset = ? AND created_at < ? AND state != 'pending'",
                "DELETE FROM trigger_sends WHERE ruleset = ? AND settled_at < ? AND state = 'settled'",
            ):
                removed += conn.execute(sql, (self.ruleset, before)).rowcount
        return removed
