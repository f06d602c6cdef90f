"""Engagement in the journal: opens, conversions and dismissals, attributed to the sends they follow.

An imported event names its notification in one of these ways (tried in this order):

1. the **provider id** the journal recorded for the send (``apns-id``, the FCM message name or just
   its last part, the Web Push ``Location``, the HMS request id — with the token when a request
   carried several devices);
2. the **campaign and the token**, or the campaign and the **user id** (the audience's ``user_id``);
3. the **token** alone: the last delivery to that token before the event (last touch);
4. the **campaign and the variant** alone (what the payload's ``pushctl_variant`` gives an app that
   does not report its token): counted for the variant, without a device.

It counts only for a delivered send and only within the **attribution window** after it (72 h by
default; five minutes before the send are tolerated for clock skew). Each event id is stored once:
a duplicate counts once. Events that match nothing are kept too (``unmatched``): each user's best
hour is learnt from every open, attributed or not.

Tables (personal data, registered in :mod:`pushctl.journal.personal`): ``engagement_events`` (one
row per event id; token, user id; ages out with retention) and ``engagement_devices`` (one row per
campaign device that engaged; pruned with its run, folded into ``engagement_tallies`` first so
reports keep their totals).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pushctl import clock
from pushctl.journal.directory import Transaction

__all__ = [
    "ATTRIBUTION_WINDOW",
    "ENGAGEMENT_SCHEMA",
    "KINDS",
    "AttributionStats",
    "EngagementEvent",
    "EngagementStore",
    "provider_id_key",
]

ATTRIBUTION_WINDOW = 72 * 3600.0
"""Seconds after a send during which an open or a conversion counts for it."""
CLOCK_SKEW = 300.0
"""Seconds an event may seem to precede its send (device and server clocks disagree)."""
KINDS = ("open", "conversion", "dismissal")

ENGAGEMENT_SCHEMA = """
CREATE TABLE IF NOT EXISTS engagement_events (
    event_id    TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    occurred_at REAL NOT NULL,
    token       TEXT,
    user_id     TEXT,
    campaign_id TEXT,
    variant     TEXT,
    provider_id TEXT,
    value       REAL,
    attribution TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    line        INTEGER NOT NULL DEFAULT 0,
    imported_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS engagement_by_user ON engagement_events (user_id, kind, occurred_at);
CREATE INDEX IF NOT EXISTS engagement_by_token ON engagement_events (token, kind, occurred_at);
CREATE TABLE IF NOT EXISTS engagement_devices (
    campaign_id  TEXT NOT NULL,
    token        TEXT NOT NULL,
    variant      TEXT NOT NULL DEFAULT '',
    platform     TEXT NOT NULL DEFAULT '',
    opened_at    REAL,
    converted_at REAL,
    dismissed_at REAL,
    value        REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, token)
) WITHOUT ROWID;
-- Engagement no longer listed per device (erased, pruned, or reported without a device): counts
-- per campaign, variant and platform, added to the listed rows by the reports.
CREATE TABLE IF NOT EXISTS engagement_tallies (
    campaign_id TEXT NOT NULL,
    variant     TEXT NOT NULL,
    platform    TEXT NOT NULL,
    opened      INTEGER NOT NULL DEFAULT 0,
    converted   INTEGER NOT NULL DEFAULT 0,
    dismissed   INTEGER NOT NULL DEFAULT 0,
    value       REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, variant, platform)
) WITHOUT ROWID;
"""

# The part of a provider id an app can know: an FCM message name's last part (the app's
# RemoteMessage.getMessageId()), case-folded (apns-id is a UUID). Indexed as an expression, so the
# same text must be used in the query. Created by the first import only: journals that never
# import engagement do not pay for it on every send.
_PROVIDER_KEY_SQL = (
    "lower(CASE WHEN instr(provider_id, '/messages/') > 0 "
    "THEN substr(provider_id, instr(provider_id, '/messages/') + 10) ELSE provider_id END)"
)
_PROVIDER_INDEX = f"CREATE INDEX IF NOT EXISTS devices_by_provider_key ON devices ({_PROVIDER_KEY_SQL})"

# A device counts as opened when it opened or converted (a conversion from a push is an open).
ENGAGEMENT_TALLY = """
INSERT INTO engagement_tallies (campaign_id, variant, platform, opened, converted, dismissed, value)
SELECT campaign_id, variant, platform, SUM(opened_at IS NOT NULL OR converted_at IS NOT NULL),
       SUM(converted_at IS NOT NULL), SUM(dismissed_at IS NOT NULL), SUM(value)
FROM engagement_devices WHERE {where}
GROUP BY campaign_id, variant, platform
ON CONFLICT (campaign_id, variant, platform) DO UPDATE SET
    opened = opened + excluded.opened, converted = converted + excluded.converted,
    dismissed = dismissed + excluded.dismissed, value = value + excluded.value
"""

_UPSERT_DEVICE = """
INSERT INTO engagement_devices (campaign_id, token, variant, platform, opened_at, converted_at,
                                dismissed_at, value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (campaign_id, token) DO UPDATE SET
    opened_at = COALESCE(MIN(opened_at, excluded.opened_at), opened_at, excluded.opened_at),
    converted_at = COALESCE(MIN(converted_at, excluded.converted_at), converted_at, excluded.converted_at),
    dismissed_at = COALESCE(MIN(dismissed_at, excluded.dismissed_at), dismissed_at, excluded.dismissed_at),
    value = value + excluded.value
"""
_INSERT_EVENT = """
INSERT OR IGNORE INTO engagement_events (event_id, kind, occurred_at, token, user_id, campaign_id,
    variant, provider_id, value, attribution, source, line, imported_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_DEVICE_COLUMNS = "d.campaign_id, d.token, d.variant, d.platform, d.outcome, d.first_sent_at, d.settled_at"


def provider_id_key(provider_id: str) -> str:
    """What :data:`_PROVIDER_KEY_SQL` makes of a provider id (an FCM name's last part, lower case)."""
    at = provider_id.find("/messages/")
    return (provider_id[at + 10 :] if at >= 0 else provider_id).lower()


@dataclass(slots=True)
class EngagementEvent:
    """One open, conversion or dismissal, as read from a file or an event stream."""

    event_id: str
    kind: str
    """``open``, ``conversion`` or ``dismissal``."""
    occurred_at: float
    token: str | None = None
    user_id: str | None = None
    campaign_id: str | None = None
    variant: str | None = None
    provider_id: str | None = None
    value: float | None = None
    """A conversion's value (revenue), when the source gives one."""
    source: str = ""
    line: int = 0


@dataclass
class AttributionStats:
    """What one import did with its events."""

    read: int = 0
    duplicates: int = 0
    """Events whose id was already stored (counted once)."""
    attributed: int = 0
    anonymous: int = 0
    """Attributed to a campaign's variant without a device."""
    unmatched: int = 0
    """No delivered send of a campaign in the journal matches (kept for best hours)."""
    outside_window: int = 0
    """A send matches but the event is outside its attribution window."""
    by_kind: Counter[str] = field(default_factory=Counter)
    """Attributed events per kind."""
    campaigns: Counter[str] = field(default_factory=Counter)
    """Attributed events per campaign."""
    examples: dict[str, str] = field(default_factory=dict)
    """One example per problem (``unmatched``, ``outside_window``), for the import's warnings."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "duplicates": self.duplicates,
            "attributed": self.attributed,
            "anonymous": self.anonymous,
            "unmatched": self.unmatched,
            "outside_window": self.outside_window,
            "by_kind": dict(self.by_kind),
            "campaigns": dict(self.campaigns),
        }


@dataclass(slots=True)
class _Send:
    campaign_id: str
    token: str
    variant: str
    platform: str
    outcome: str | None
    sent_at: float | None


class EngagementStore:
    """The engagement tables of one journal; use from the journal's thread."""

    def __init__(self, conn: sqlite3.Connection, transaction: Transaction) -> None:
        self._conn = conn
        self._transaction = transaction

    def record(
        self,
        events: Iterable[EngagementEvent],
        *,
        window: float = ATTRIBUTION_WINDOW,
        in_transaction: bool = False,
        stats: AttributionStats | None = None,
    ) -> AttributionStats:
        """Store and attribute ``events`` in one transaction (or the caller's, ``in_transaction``)."""
        stats = stats if stats is not None else AttributionStats()
        if in_transaction:
            self._record(self._conn, events, window, stats)
            return stats
        self._conn.execute(_PROVIDER_INDEX)
        with self._transaction() as conn:
            self._record(conn, events, window, stats)
        return stats

    def prepare(self) -> None:
        """Create the provider-id index (outside any transaction: it may take a while once)."""
        self._conn.execute(_PROVIDER_INDEX)

    def _record(
        self,
        conn: sqlite3.Connection,
        events: Iterable[EngagementEvent],
        window: float,
        stats: AttributionStats,
    ) -> None:
        now = clock.timestamp()
        for event in events:
            stats.read += 1
            seen = conn.execute("SELECT 1 FROM engagement_events WHERE event_id = ?", (event.event_id,))
            if seen.fetchone() is not None:
                stats.duplicates += 1
                continue
            attribution = self._attribute(conn, event, window, stats)
            conn.execute(
                _INSERT_EVENT,
                (
                    event.event_id, event.kind, event.occurred_at, event.token, event.user_id,
                    event.campaign_id, event.variant, event.provider_id, event.value, attribution,
                    event.source, event.line, now,
                ),
            )  # fmt: skip

    def _attribute(
        self, conn: sqlite3.Connection, event: EngagementEvent, window: float, stats: AttributionStats
    ) -> str:
        """Find the send, check the window, count; fills the event's missing fields from the send."""
        send = self._send_for(conn, event)
        if send is None or send.outcome != "delivered" or send.sent_at is None:
            anonymous = event.campaign_id and event.variant and not (event.token or event.user_id)
            if send is None and anonymous and self._campaign_known(conn, event.campaign_id or ""):
                self._tally_anonymous(conn, event)
                stats.anonymous += 1
                stats.by_kind[event.kind] += 1
                stats.campaigns[event.campaign_id or ""] += 1
                return "anonymous"
            stats.unmatched += 1
            stats.examples.setdefault("unmatched", _where(event))
            return "unmatched"
        event.campaign_id, event.token, event.variant = send.campaign_id, send.token, send.variant
        if event.user_id is None:
            row = conn.execute(
                "SELECT user_id FROM device_users WHERE campaign_id = ? AND token = ?",
                (send.campaign_id, send.token),
            ).fetchone()
            event.user_id = row[0] if row else None
        if not send.sent_at - CLOCK_SKEW <= event.occurred_at <= send.sent_at + window:
            stats.outside_window += 1
            stats.examples.setdefault("outside_window", _where(event))
            return "outside_window"
        opened = event.occurred_at if event.kind == "open" else None
        converted = event.occurred_at if event.kind == "conversion" else None
        dismissed = event.occurred_at if event.kind == "dismissal" else None
        conn.execute(
            _UPSERT_DEVICE,
            (send.campaign_id, send.token, send.variant, send.platform, opened, converted, dismissed,
             event.value or 0.0),
        )  # fmt: skip
        stats.attributed += 1
        stats.by_kind[event.kind] += 1
        stats.campaigns[send.campaign_id] += 1
        return "attributed"

    def _send_for(self, conn: sqlite3.Connection, event: EngagementEvent) -> _Send | None:
        if event.provider_id:
            sql = (
                f"SELECT {_DEVICE_COLUMNS} FROM devices d "
                f"WHERE {_PROVIDER_KEY_SQL.replace('provider_id', 'd.provider_id')} = ?"
            )
            params: list[Any] = [provider_id_key(event.provider_id)]
            if event.token:  # an HMS request id is shared by up to 1,000 devices
                sql += " AND d.token = ?"
                params.append(event.token)
            rows = conn.execute(sql, params).fetchall()
            if len(rows) == 1:
                return _send(rows[0])
        if event.campaign_id and event.token:
            row = conn.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM devices d WHERE d.campaign_id = ? AND d.token = ?",
                (event.campaign_id, event.token),
            ).fetchone()
            return _send(row) if row else None
        if event.campaign_id and event.user_id:
            # A user with several devices: the delivered one sent last before the event.
            row = conn.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM device_users u JOIN devices d "
                "ON d.campaign_id = u.campaign_id AND d.token = u.token "
                "WHERE u.campaign_id = ? AND u.user_id = ? "
                "ORDER BY d.outcome = 'delivered' DESC, d.variant = ? DESC, "
                "d.first_sent_at <= ? DESC, d.first_sent_at DESC LIMIT 1",
                (event.campaign_id, event.user_id, event.variant or "", event.occurred_at + CLOCK_SKEW),
            ).fetchone()
            return _send(row) if row else None
        if event.token and not event.campaign_id:
            row = conn.execute(
                f"SELECT {_DEVICE_COLUMNS} FROM devices d INDEXED BY devices_by_token "
                "WHERE d.token = ? AND d.outcome = 'delivered' AND d.first_sent_at <= ? "
                "ORDER BY d.first_sent_at DESC LIMIT 1",
                (event.token, event.occurred_at + CLOCK_SKEW),
            ).fetchone()
            return _send(row) if row else None
        return None

    @staticmethod
    def _campaign_known(conn: sqlite3.Connection, campaign_id: str) -> bool:
        return conn.execute("SELECT 1 FROM runs WHERE campaign_id = ?", (campaign_id,)).fetchone() is not None

    @staticmethod
    def _tally_anonymous(conn: sqlite3.Connection, event: EngagementEvent) -> None:
        conn.execute(
            "INSERT INTO engagement_tallies (campaign_id, variant, platform, opened, converted, dismissed, "
            "value) VALUES (?, ?, '', ?, ?, ?, ?) ON CONFLICT (campaign_id, variant, platform) DO UPDATE SET "
            "opened = opened + excluded.opened, converted = converted + excluded.converted, "
            "dismissed = dismissed + excluded.dismissed, value = value + excluded.value",
            (
                event.campaign_id, event.variant, int(event.kind in ("open", "conversion")),
                int(event.kind == "conversion"), int(event.kind == "dismissal"), event.value or 0.0,
            ),
        )  # fmt: skip

    # -- what best hours are learnt from --------------------------------------------------------

    def open_times(
        self, users: Sequence[str], tokens: Sequence[str], since: float
    ) -> dict[str, tuple[str | None, str | None, float]]:
        """Every open since ``since`` (epoch s) by these users or on these tokens: event id ->
        ``(user_id, token, occurred_at)``."""
        found: dict[str, tuple[str | None, str | None, float]] = {}
        for column, values in (("user_id", users), ("token", tokens)):
            for start in range(0, len(values), 500):
                part = values[start : start + 500]
                rows = self._conn.execute(
                    f"SELECT event_id, user_id, token, occurred_at FROM engagement_events "
                    f"WHERE {column} IN ({','.join('?' * len(part))}) AND kind = 'open' AND occurred_at >= ?",
                    (*part, since),
                )
                for event_id, user, token, at in rows:
                    found[event_id] = (user, token, at)
        return found

    def counts(self) -> dict[str, int]:
        """Stored events per attribution (``attributed``, ``unmatched``...)."""
        rows = self._conn.execute("SELECT attribution, COUNT(*) FROM engagement_events GROUP BY attribution")
        return {str(k): int(n) for k, n in rows}


def _send(row: tuple[Any, ...]) -> _Send:
    campaign_id, token, variant, platform, outcome, first_sent_at, settled_at = row
    return _Send(campaign_id, token, variant or "", platform, outcome, first_sent_at or settled_at)


def _where(event: EngagementEvent) -> str:
    where = f"{event.source}:{event.line}: " if event.source else ""
    return f"{where}event {event.event_id}"
