"""Read-side view of the trigger tables, for ``pushctl trigger status``."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConsumerInfo", "RuleStatus", "TriggerStatus", "trigger_status"]


@dataclass(slots=True)
class RuleStatus:
    """One rule's numbers: pending delayed / digest sends and counters by what and reason."""

    ruleset: str
    rule: str
    pending: int = 0
    next_due: float | None = None
    deferred: int = 0
    """Device sends waiting for quiet hours to end."""
    inflight: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    """``fired``, ``cancelled``, ``sent:delivered``, ``skipped:throttled``... -> how many."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "rule",
            "ruleset": self.ruleset,
            "rule": self.rule,
            "pending": self.pending,
            "next_due": self.next_due,
            "deferred": self.deferred,
            "inflight": self.inflight,
            "counts": dict(sorted(self.counts.items())),
        }


@dataclass(slots=True)
class ConsumerInfo:
    """A ``trigger run`` process as it last reported itself."""

    ruleset: str
    source: str
    consumer: str
    pid: int
    host: str
    started_at: float
    seen_at: float
    events: int
    lag: int | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": "consumer", **{k: getattr(self, k) for k in self.__slots__}}


@dataclass(slots=True)
class TriggerStatus:
    rules: list[RuleStatus] = field(default_factory=list)
    consumers: list[ConsumerInfo] = field(default_factory=list)


def trigger_status(conn: sqlite3.Connection, ruleset: str | None = None) -> TriggerStatus:
    """Everything ``trigger status`` shows, for one rule set or all of them."""
    where, params = ("WHERE ruleset = ?", (ruleset,)) if ruleset else ("", ())
    rules: dict[tuple[str, str], RuleStatus] = {}

    def entry(rs: str, rule: str) -> RuleStatus:
        return rules.setdefault((rs, rule), RuleStatus(rs, rule))

    pending = (
        f"SELECT ruleset, rule, COUNT(*), MIN(due_at) FROM trigger_jobs {where or 'WHERE 1'} AND state = "
    )
    for rs, rule, count, due in conn.execute(pending + "'pending' GROUP BY ruleset, rule", params):
        status = entry(rs, rule)
        status.pending, status.next_due = count, due
    sends = (
        f"SELECT ruleset, rule, state, COUNT(*) FROM trigger_sends {where or 'WHERE 1'} "
        "AND state != 'settled' "
    )
    for rs, rule, state, count in conn.execute(sends + "GROUP BY ruleset, rule, state", params):
        if state == "deferred":
            entry(rs, rule).deferred = count
        else:
            entry(rs, rule).inflight = count
    for rs, rule, what, reason, count in conn.execute(
        f"SELECT ruleset, rule, what, reason, count FROM trigger_counts {where}", params
    ):
        key = f"{what}:{reason}" if reason else what
        counts = entry(rs, rule).counts
        counts[key] = counts.get(key, 0) + count
    consumers = [
        ConsumerInfo(*row)
        for row in conn.execute(
            "SELECT ruleset, source, consumer, pid, host, started_at, seen_at, events, lag, status "
            f"FROM trigger_consumers {where} ORDER BY ruleset, source, consumer",
            params,
        )
    ]
    return TriggerStatus(sorted(rules.values(), key=lambda r: (r.ruleset, r.rule)), consumers)
