"""The journal's tables, the statements a run writes with, and the upgrade of older journals.

Tables holding personal data are registered in :mod:`pushctl.journal.personal` (a test checks).
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    campaign_id    TEXT PRIMARY KEY,
    template_fp    TEXT NOT NULL,
    audience_fp    TEXT NOT NULL,
    options_json   TEXT NOT NULL DEFAULT '{}',
    created_at     REAL NOT NULL,
    started_at     REAL NOT NULL,
    finished_at    REAL,
    status         TEXT NOT NULL,
    stopped_reason TEXT,
    runs_count     INTEGER NOT NULL DEFAULT 1,
    pruned_at      REAL
);
CREATE TABLE IF NOT EXISTS devices (
    campaign_id   TEXT NOT NULL,
    token         TEXT NOT NULL,
    platform      TEXT NOT NULL,
    line          INTEGER NOT NULL DEFAULT 0,
    variant       TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    outcome       TEXT,
    reason        TEXT,
    status        INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    latency_ms    REAL,
    provider_id   TEXT,
    first_sent_at REAL,
    settled_at    REAL,
    PRIMARY KEY (campaign_id, token)
) WITHOUT ROWID;
-- By token alone: the settle UPDATE changes outcome and settled_at, and with those columns in
-- the index every settled device moved an entry at a random place in it (tokens are random), which
-- cost ~10% of a send's CPU. The caps and --skip-known-invalid queries read the row instead.
CREATE INDEX IF NOT EXISTS devices_by_token ON devices (token);

-- The audience's user_id of a campaign's device, when the audience has that column: what lets
-- `pushctl forget --user` find a user's tokens. Kept apart from `devices` so the send's hot
-- path writes nothing more for audiences without user ids. No index on user_id: it made writes
-- dearer (~1 s more per 200,000 devices), and forget (rare) scans this table once whatever the
-- number of users.
CREATE TABLE IF NOT EXISTS device_users (
    campaign_id TEXT NOT NULL,
    token       TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (campaign_id, token)
) WITHOUT ROWID;

-- Counts of device rows that were removed (forgotten or pruned), per run: the reports add them
-- to the remaining rows, so a run's totals stay what they were. outcome '' = still in flight.
CREATE TABLE IF NOT EXISTS run_tallies (
    campaign_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL,
    variant     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    devices     INTEGER NOT NULL,
    retries     INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, outcome, reason, variant, platform)
) WITHOUT ROWID;
"""

# -- the writes of a run (pushctl.journal.store.Run) --

MARK_SQL = """
INSERT INTO devices (campaign_id, token, platform, line, variant, state, first_sent_at)
VALUES (?, ?, ?, ?, ?, 'inflight', ?)
ON CONFLICT (campaign_id, token) DO UPDATE SET
    platform = excluded.platform, line = excluded.line, variant = excluded.variant,
    state = 'inflight', first_sent_at = COALESCE(devices.first_sent_at, excluded.first_sent_at)
"""

# A result may arrive without a prior mark (skipped / deferred rows are never sent), so upsert;
# keep the marked line / variant when the result does not carry them.
RECORD_SQL = """
INSERT INTO devices (campaign_id, token, platform, line, variant, state, outcome, reason, status,
                     attempts, latency_ms, provider_id, first_sent_at, settled_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (campaign_id, token) DO UPDATE SET
    platform = excluded.platform,
    line = CASE WHEN excluded.line != 0 THEN excluded.line ELSE devices.line END,
    variant = CASE WHEN excluded.variant != '' THEN excluded.variant ELSE devices.variant END,
    state = excluded.state, outcome = excluded.outcome, reason = excluded.reason,
    status = excluded.status, attempts = excluded.attempts, latency_ms = excluded.latency_ms,
    provider_id = excluded.provider_id,
    first_sent_at = COALESCE(devices.first_sent_at, excluded.first_sent_at),
    settled_at = excluded.settled_at
"""


# The audience row's user id wins: a token handed to another user is linked to the new one.
USER_SQL = """
INSERT INTO device_users (campaign_id, token, user_id) VALUES (?, ?, ?)
ON CONFLICT (campaign_id, token) DO UPDATE SET user_id = excluded.user_id
"""


# Columns added since the first journals: (table, column, declaration).
_ADDED_COLUMNS = (
    ("runs", "pruned_at", "REAL"),
    # "I/N" when the journal holds one shard of the campaign (send --shard), NULL for all of it.
    ("runs", "shard", "TEXT"),
    # JSON list of the shard journals a `runs merge` combined into this run (NULL: not a merge).
    ("runs", "merged_from", "TEXT"),
)


_OLD_TOKEN_INDEX = "(token, outcome, settled_at)"


def create(conn: sqlite3.Connection) -> None:
    """Create missing tables, add the columns older journals lack, and narrow their token index."""
    _narrow_token_index(conn)
    conn.executescript(SCHEMA)
    for table, column, declaration in _ADDED_COLUMNS:
        known = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in known:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process upgraded it meanwhile
                    raise


def _narrow_token_index(conn: sqlite3.Connection) -> None:
    """Drop a journal's older, wider ``devices_by_token`` index; the schema creates the new one."""
    query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'devices_by_token'"
    row = conn.execute(query).fetchone()
    if row is not None and _OLD_TOKEN_INDEX in (row[0] or ""):
        conn.execute("DROP INDEX IF EXISTS devices_by_token")
