"""A campaign's report: funnels (all devices, per platform, per variant), rates with Wilson 95%
intervals, and the A/B verdict; the same figures for the table, ``--output json`` and the HTML page.

The funnel: **targeted** (every device the campaign considered) → **sent** (handed to the push
service: not skipped or held back) → **delivered** (accepted by it) → **opened** (an open or a
conversion attributed within the window) → **converted**. Rates: delivered of sent, opened and
converted of delivered.

An A/B campaign sent with ``--ab-test`` compares its test slice only; the devices held back (and
sent the winner later) are the **rollout**.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pushctl.insights.stats import wilson
from pushctl.insights.verdict import METRICS, VariantStat, Verdict, decide_verdict
from pushctl.journal import EngagementData, FunnelCounts

__all__ = ["CampaignReport", "Funnel", "Rate", "build_report"]


@dataclass(frozen=True, slots=True)
class Rate:
    """A proportion with its Wilson 95% interval."""

    successes: int
    trials: int

    @property
    def value(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.successes, self.trials)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {"value": self.value, "low": low, "high": high, "successes": self.successes, "of": self.trials}


@dataclass(kw_only=True)
class Funnel(FunnelCounts):
    """The funnel counts of one group of devices."""

    label: str

    @property
    def delivery_rate(self) -> Rate:
        return Rate(self.delivered, self.sent)

    @property
    def open_rate(self) -> Rate:
        return Rate(min(self.opened, self.delivered), self.delivered)

    @property
    def conversion_rate(self) -> Rate:
        return Rate(min(self.converted, self.delivered), self.delivered)

    def engaged(self, metric: str) -> int:
        return self.opened if metric == "opens" else self.converted

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "targeted": self.targeted,
            "sent": self.sent,
            "delivered": self.delivered,
            "opened": self.opened,
            "converted": self.converted,
            "dismissed": self.dismissed,
            "value": round(self.value, 2),
            "delivery_rate": self.delivery_rate.to_dict(),
            "open_rate": self.open_rate.to_dict(),
            "conversion_rate": self.conversion_rate.to_dict(),
        }


@dataclass
class CampaignReport:
    """Everything ``pushctl runs report`` shows about one campaign."""

    campaign_id: str
    metric: str
    total: Funnel
    platforms: list[Funnel] = field(default_factory=list)
    variants: list[Funnel] = field(default_factory=list)
    rollout: Funnel | None = None
    """The devices held back by ``--ab-test`` (sent the winner by ``--winner-of``)."""
    verdict: Verdict | None = None
    ab_test: dict[str, Any] | None = None
    data: EngagementData | None = None
    """The raw material of the HTML charts (timelines, latencies, reasons)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "report",
            "campaign": self.campaign_id,
            "metric": self.metric,
            "funnel": self.total.to_dict(),
            "platforms": [f.to_dict() for f in self.platforms],
            "variants": [f.to_dict() for f in self.variants],
            "rollout": self.rollout.to_dict() if self.rollout is not None else None,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
            "ab_test": self.ab_test,
            "slots": [
                {"slot": s, "basis": b, "devices": n} for s, b, n in (self.data.slots if self.data else [])
            ],
        }


def build_report(data: EngagementData, metric: str = "opens") -> CampaignReport:
    """Group the journal's counts into funnels and judge the variants on ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    total = Funnel(label="all devices")
    platforms: dict[str, Funnel] = {}
    variants: dict[str, Funnel] = {}
    rollout: Funnel | None = None
    ab = data.ab_test
    for row in data.rows:
        total.add(row)
        if row.platform:
            platforms.setdefault(row.platform, Funnel(label=row.platform)).add(row)
        if ab is not None and row.phase != "test":
            if row.phase == "rollout":
                label = f"rollout ({ab.winner})" if ab.winner else "held back"
                rollout = rollout or Funnel(label=label)
                rollout.add(row)
            continue  # tallied rows of an A/B campaign belong to neither side for sure
        if row.variant:
            variants.setdefault(row.variant, Funnel(label=row.variant)).add(row)
    ordered = [variants[name] for name in sorted(variants)]
    verdict = decide_verdict([VariantStat(f.label, f.delivered, f.engaged(metric)) for f in ordered], metric)
    ab_info = None
    if ab is not None:
        ab_info = {
            "fraction": ab.fraction,
            "winner": ab.winner,
            "metric": ab.metric,
            "decided_at": ab.decided_at,
            "decision": ab.decision.get("sentence"),
        }
    return CampaignReport(
        campaign_id=data.campaign_id,
        metric=metric,
        total=total,
        platforms=[platforms[p] for p in sorted(platforms)],
        variants=ordered,
        rollout=rollout,
        verdict=verdict,
        ab_test=ab_info,
        data=data,
    )
