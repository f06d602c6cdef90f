"""Read-side queries behind ``pushctl runs report``: funnel counts, timelines, latencies, reasons.

Counts are the listed device rows plus the tallies (``run_tallies``, ``engagement_tallies``) of rows
removed by ``forget`` and retention, as in :mod:`pushctl.journal.reports`. An A/B campaign with a
winner splits into its test slice and the rollout (``pushctl_in_slice``); tallied rows cannot be
placed in either and are reported in the campaign's totals only.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass

from pushctl.journal.abtests import AbTest, AbTests

__all__ = [
    "EngagementData",
    "FunnelCounts",
    "FunnelRow",
    "funnel_rows",
    "latencies",
    "reason_counts",
    "report_data",
    "timeline",
]

# Sent = handed to the push service (a request went out, or was about to when the process died).
_SENT = "(d.outcome IS NULL OR d.outcome NOT IN ('skipped', 'deferred'))"


@dataclass(slots=True)
class FunnelCounts:
    """Devices at each step of the funnel (and the conversions' value)."""

    targeted: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    converted: int = 0
    dismissed: int = 0
    value: float = 0.0

    def add(self, other: FunnelCounts) -> None:
        """Add ``other``'s counts to these."""
        self.targeted += other.targeted
        self.sent += other.sent
        self.delivered += other.delivered
        self.opened += other.opened
        self.converted += other.converted
        self.dismissed += other.dismissed
        self.value += other.value


@dataclass(slots=True, kw_only=True)
class FunnelRow(FunnelCounts):
    """Counts of one (phase, variant, platform) group of a campaign."""

    phase: str = ""
    """``test`` / ``rollout`` (an A/B campaign's slice and the rest), ``tally`` (removed rows), or ``''``."""
    variant: str = ""
    platform: str = ""


def funnel_rows(conn: sqlite3.Connection, campaign_id: str, fraction: float | None) -> list[FunnelRow]:
    """Every group's counts (listed devices by phase, variant and platform, then the tallies)."""
    phase = (
        "''"
        if fraction is None
        else "CASE WHEN pushctl_in_slice(d.campaign_id, d.token, ?) THEN 'test' ELSE 'rollout' END"
    )
    params: tuple[object, ...] = (campaign_id,) if fraction is None else (fraction, campaign_id)
    rows = conn.execute(
        f"SELECT {phase} AS phase, d.variant, d.platform, COUNT(*), SUM({_SENT}), "
        "SUM(d.outcome = 'delivered'), "
        "SUM(e.opened_at IS NOT NULL OR e.converted_at IS NOT NULL), SUM(e.converted_at IS NOT NULL), "
        "SUM(e.dismissed_at IS NOT NULL), COALESCE(SUM(e.value), 0) "
        "FROM devices d LEFT JOIN engagement_devices e "
        "ON e.campaign_id = d.campaign_id AND e.token = d.token "
        "WHERE d.campaign_id = ? GROUP BY phase, d.variant, d.platform",
        params,
    )
    found = []
    for phase_, variant, platform, *counts, value in rows:
        targeted, sent, delivered, opened, converted, dismissed = (int(n or 0) for n in counts)
        found.append(FunnelRow(targeted, sent, delivered, opened, converted, dismissed, float(value or 0),
                               phase=phase_, variant=variant, platform=platform))  # fmt: skip
    tallied: dict[tuple[str, str], FunnelRow] = {}
    for outcome, variant, platform, devices in conn.execute(
        "SELECT outcome, variant, platform, SUM(devices) FROM run_tallies WHERE campaign_id = ? "
        "GROUP BY outcome, variant, platform",
        (campaign_id,),
    ):
        row = tallied.setdefault((variant, platform), _tally_row(variant, platform))
        row.targeted += devices
        row.sent += devices if outcome not in ("skipped", "deferred") else 0
        row.delivered += devices if outcome == "delivered" else 0
    for variant, platform, opened, converted, dismissed, value in conn.execute(
        "SELECT variant, platform, opened, converted, dismissed, value FROM engagement_tallies "
        "WHERE campaign_id = ?",
        (campaign_id,),
    ):
        row = tallied.setdefault((variant, platform), _tally_row(variant, platform))
        row.opened += opened
        row.converted += converted
        row.dismissed += dismissed
        row.value += value
    return found + list(tallied.values())


def _tally_row(variant: str, platform: str) -> FunnelRow:
    return FunnelRow(phase="tally", variant=variant, platform=platform)


def timeline(conn: sqlite3.Connection, campaign_id: str) -> tuple[list[float], list[float], list[float]]:
    """Epoch seconds of each delivery, each device's first open, each device's conversion."""
    deliveries = [
        float(t) for (t,) in conn.execute(
            "SELECT settled_at FROM devices WHERE campaign_id = ? AND outcome = 'delivered' "
            "AND settled_at IS NOT NULL ORDER BY settled_at",
            (campaign_id,),
        )
    ]  # fmt: skip
    opens: list[float] = []
    conversions: list[float] = []
    for opened, converted in conn.execute(
        "SELECT opened_at, converted_at FROM engagement_devices WHERE campaign_id = ?", (campaign_id,)
    ):
        first = min((t for t in (opened, converted) if t is not None), default=None)
        if first is not None:
            opens.append(float(first))
        if converted is not None:
            conversions.append(float(converted))
    return deliveries, sorted(opens), sorted(conversions)


def latencies(conn: sqlite3.Connection, campaign_id: str) -> list[float]:
    """Milliseconds from first attempt to answer, for every device that got an answer."""
    return [
        float(ms) for (ms,) in conn.execute(
            "SELECT latency_ms FROM devices "
            "WHERE campaign_id = ? AND attempts > 0 AND latency_ms IS NOT NULL",
            (campaign_id,),
        )
    ]  # fmt: skip


def reason_counts(conn: sqlite3.Connection, campaign_id: str) -> list[tuple[str, str, int]]:
    """``(outcome, reason, devices)`` of the campaign, listed rows and tallies, biggest first."""
    rows = conn.execute(
        "SELECT outcome, reason, SUM(n) FROM ("
        "  SELECT outcome, COALESCE(reason, '') AS reason, COUNT(*) AS n FROM devices "
        "  WHERE campaign_id = ? AND outcome IS NOT NULL GROUP BY outcome, reason "
        "  UNION ALL SELECT outcome, reason, SUM(devices) FROM run_tallies "
        "  WHERE campaign_id = ? AND outcome != '' GROUP BY outcome, reason"
        ") GROUP BY outcome, reason ORDER BY SUM(n) DESC, outcome, reason",
        (campaign_id, campaign_id),
    )
    return [(str(o), str(r), int(n)) for o, r, n in rows]


@dataclass(slots=True)
class EngagementData:
    """Everything ``runs report`` reads about one campaign."""

    campaign_id: str
    ab_test: AbTest | None
    rows: list[FunnelRow]
    deliveries: list[float]
    opens: list[float]
    conversions: list[float]
    latencies_ms: list[float]
    reasons: list[tuple[str, str, int]]
    slots: list[tuple[str, str, int]]


def report_data(conn: sqlite3.Connection, campaign_id: str) -> EngagementData:
    """The funnel groups, timelines, latencies, reasons and slots of ``campaign_id``."""
    ab = AbTests(conn, _no_transaction).get(campaign_id)
    deliveries, opens, conversions = timeline(conn, campaign_id)
    return EngagementData(
        campaign_id=campaign_id,
        ab_test=ab,
        rows=funnel_rows(conn, campaign_id, ab.fraction if ab is not None else None),
        deliveries=deliveries,
        opens=opens,
        conversions=conversions,
        latencies_ms=latencies(conn, campaign_id),
        reasons=reason_counts(conn, campaign_id),
        slots=AbTests(conn, _no_transaction).slot_counts(campaign_id),
    )


def _no_transaction() -> contextlib.AbstractContextManager[sqlite3.Connection]:
    raise AssertionError("read-only use")
