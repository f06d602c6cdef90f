"""Read-side queries of the campaign journal: run listings, results, prune lists, summaries.

Counts are the remaining device rows plus ``run_tallies``: the rows ``forget`` and retention
removed, folded into per-run counts first, so a run's totals never change when its rows go.

Plain functions over a ``sqlite3.Connection`` so :mod:`pushctl.journal.store` stays about writing;
:class:`pushctl.journal.store.Journal` exposes them as methods.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pushctl.delivery import Summary
from pushctl.errors import InputError
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result

# SQLite's default limit on host parameters is 32766 since 3.32, but 999 on older builds:
# 500 stays under both with room for the other parameters of a query.
CHUNK = 500

_SUCCESS_SQL = "('delivered', 'skipped', 'deferred')"


@dataclass(slots=True)
class RunInfo:
    """One campaign's run metadata plus its device counts."""

    campaign_id: str
    template_fp: str
    audience_fp: str
    options: dict[str, Any]
    created_at: float
    started_at: float
    finished_at: float | None
    status: str
    """``running``, ``completed``, ``stopped`` or ``abandoned`` (running, but no live process)."""
    stopped_reason: str | None
    runs_count: int
    counts: dict[str, int] = field(default_factory=dict)
    """Settled devices per outcome."""
    inflight: int = 0
    """Devices sent but never answered (the process died): a resume re-sends them."""
    removed: int = 0
    """Devices counted above whose rows were removed (``forget``, retention): not listed any more."""
    pruned_at: float | None = None
    """When retention removed this run's device rows (None: never)."""
    shard: str | None = None
    """``"I/N"`` when this journal holds one shard of the campaign (``send --shard``), else None."""
    merged_from: dict[str, Any] | None = None
    """For a run ``runs merge`` made: ``{"count": N, "shards": [...], "missing": [...]}``."""

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.inflight

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "run",
            "campaign": self.campaign_id,
            "status": self.status,
            "stopped": self.stopped_reason,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "runs": self.runs_count,
            "total": self.total,
            "outcomes": {str(o): self.counts.get(str(o), 0) for o in Outcome},
            "inflight": self.inflight,
            "removed": self.removed,
            "pruned_at": self.pruned_at,
            "shard": self.shard,
            "merged_from": self.merged_from,
            "template_fp": self.template_fp,
            "audience_fp": self.audience_fp,
            "options": self.options,
        }


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


_RUN_COLUMNS = (
    "campaign_id, template_fp, audience_fp, options_json, created_at, started_at, "
    "finished_at, status, stopped_reason, runs_count, pruned_at, shard, merged_from"
)

# Per outcome: the remaining device rows, then the removed ones ('' = in flight).
_COUNTS_SQL = """
SELECT COALESCE(outcome, ''), COUNT(*), 0 FROM devices WHERE campaign_id = ? GROUP BY outcome
UNION ALL
SELECT outcome, SUM(devices), SUM(devices) FROM run_tallies WHERE campaign_id = ? GROUP BY outcome
"""


def _run_info(conn: sqlite3.Connection, row: tuple[Any, ...]) -> RunInfo:
    info = RunInfo(
        campaign_id=row[0],
        template_fp=row[1],
        audience_fp=row[2],
        options=json.loads(row[3] or "{}"),
        created_at=row[4],
        started_at=row[5],
        finished_at=row[6],
        status=row[7],
        stopped_reason=row[8],
        runs_count=row[9],
        pruned_at=row[10],
        shard=row[11],
        merged_from=json.loads(row[12]) if row[12] else None,
    )
    for outcome, count, removed in conn.execute(_COUNTS_SQL, (info.campaign_id, info.campaign_id)):
        if outcome == "":
            info.inflight += count
        else:
            info.counts[outcome] = info.counts.get(outcome, 0) + count
        info.removed += removed
    return info


def list_runs(conn: sqlite3.Connection, limit: int) -> list[RunInfo]:
    """The most recently started runs first."""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_run_info(conn, row) for row in rows]


def run_info(conn: sqlite3.Connection, campaign_id: str) -> RunInfo:
    """One run; ``InputError`` naming close matches when it is unknown."""
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE campaign_id = ?", (campaign_id,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT campaign_id FROM runs")]
        close = difflib.get_close_matches(campaign_id, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `pushctl runs list`"
        raise InputError(f"no run '{campaign_id}' in the journal", hint=hint)
    return _run_info(conn, row)


def results(conn: sqlite3.Connection, campaign_id: str, *, failures_first: bool = False) -> Iterator[Result]:
    """Settled devices in audience order (failures first if asked), streamed in batches.

    Devices still in flight (a crash left them unanswered) have no outcome and are not listed.
    """
    order = f"CASE WHEN outcome IN {_SUCCESS_SQL} THEN 1 ELSE 0 END, line, token" if failures_first else (
        "line, token"
    )
    cursor = conn.execute(
        "SELECT token, platform, outcome, reason, status, attempts, latency_ms, provider_id, variant, line "
        f"FROM devices WHERE campaign_id = ? AND outcome IS NOT NULL ORDER BY {order}",
        (campaign_id,),
    )
    try:
        while batch := cursor.fetchmany(1000):
            for row in batch:
                yield Result(
                    token=row[0],
                    platform=Platform(row[1]),
                    outcome=Outcome(row[2]),
                    reason=row[3] or "",
                    status=row[4],
                    attempts=row[5] or 0,
                    latency_ms=row[6] or 0.0,
                    provider_id=row[7] or "",
                    variant=row[8] or "",
                    line=row[9] or 0,
                )
    finally:
        # A reader that stops early (`runs show | head`) may drop this generator after the
        # journal closed; the cursor then went with the connection.
        with contextlib.suppress(sqlite3.ProgrammingError):
            cursor.close()


def prune_list(conn: sqlite3.Connection, campaign_id: str) -> Iterator[str]:
    """Tokens the providers called invalid in this campaign, in audience order."""
    cursor = conn.execute(
        "SELECT token FROM devices WHERE campaign_id = ? AND outcome = 'invalid_token' ORDER BY line, token",
        (campaign_id,),
    )
    try:
        while batch := cursor.fetchmany(1000):
            for (token,) in batch:
                yield token
    finally:
        # A reader that stops early (`runs show | head`) may drop this generator after the
        # journal closed; the cursor then went with the connection.
        with contextlib.suppress(sqlite3.ProgrammingError):
            cursor.close()


def summary(conn: sqlite3.Connection, campaign_id: str) -> Summary:
    """The campaign's summary rebuilt from its device rows and run metadata.

    Counts cover every settled device of the campaign; times are those of the latest session,
    and so is the throughput: it counts only the devices that session settled.
    """
    info = run_info(conn, campaign_id)
    result = Summary(
        started_at=info.started_at,
        finished_at=info.finished_at,
        stopped_reason=info.stopped_reason,
        campaign=campaign_id,
    )
    rows = conn.execute(
        "SELECT outcome, reason, variant, platform, COUNT(*), "
        "SUM(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END) "
        "FROM devices WHERE campaign_id = ? AND outcome IS NOT NULL "
        "GROUP BY outcome, reason, variant, platform "
        "UNION ALL "
        "SELECT outcome, reason, variant, platform, devices, retries "
        "FROM run_tallies WHERE campaign_id = ? AND outcome != ''",
        (campaign_id, campaign_id),
    )
    if info.runs_count > 1:
        (result.session_total,) = conn.execute(
            "SELECT COUNT(*) FROM devices WHERE campaign_id = ? AND outcome IS NOT NULL AND settled_at >= ?",
            (campaign_id, info.started_at),
        ).fetchone()
    for outcome, reason, variant, platform, count, retries in rows:
        result.total += count
        result.retries += retries or 0
        result.counts[outcome] += count
        result.reasons[(outcome, reason or "")] += count
        if variant:
            result.by_variant.setdefault(variant, Counter())[outcome] += count
        result.by_platform.setdefault(platform, Counter())[outcome] += count
    return result


def delivered_counts_since(conn: sqlite3.Connection, tokens: Sequence[str], since: float) -> dict[str, int]:
    """Deliveries per token since ``since`` across all campaigns (tokens with none are absent)."""
    counts: dict[str, int] = {}
    for part in chunks(tokens):
        rows = conn.execute(
            "SELECT token, COUNT(*) FROM devices INDEXED BY devices_by_token "
            f"WHERE token IN ({_placeholders(len(part))}) AND outcome = 'delivered' AND settled_at >= ? "
            "GROUP BY token",
            (*part, since),
        )
        counts.update(dict(rows))
        # Trigger rules count too (a cap is the user's, whatever sent it); a send still in flight
        # counts, so two rules firing at once cannot both slip under the cap.
        rows = conn.execute(
            "SELECT token, COUNT(*) FROM trigger_sends INDEXED BY trigger_sends_by_token "
            f"WHERE token IN ({_placeholders(len(part))}) AND ((outcome = 'delivered' AND settled_at >= ?) "
            "OR (outcome IS NULL AND state = 'inflight' AND created_at >= ?)) GROUP BY token",
            (*part, since, since),
        )
        for token, n in rows:
            counts[token] = counts.get(token, 0) + n
    return counts


def known_invalid(conn: sqlite3.Connection, tokens: Sequence[str]) -> set[str]:
    """The given tokens that some earlier run found invalid."""
    found: set[str] = set()
    for part in chunks(tokens):
        rows = conn.execute(
            "SELECT DISTINCT token FROM devices INDEXED BY devices_by_token "
            f"WHERE token IN ({_placeholders(len(part))}) AND outcome = 'invalid_token'",
            tuple(part),
        )
        found.update(token for (token,) in rows)
        rows = conn.execute(
            f"SELECT token FROM invalid_tokens WHERE token IN ({_placeholders(len(part))})", tuple(part)
        )
        found.update(token for (token,) in rows)
    return found
