"""The A/B verdict: which variant wins on a metric, how sure we are, and what to do otherwise.

Two variants: the pooled two-proportion z-test. More: Pearson's chi-squared test over all of them,
and a winner only when the best also beats the runner-up on its own (a chi-squared test says the
variants differ, not which one is best). The denominator is each variant's delivered devices; the
numerator the devices that opened (or converted, with ``metric="conversions"``).

With no significant difference the verdict says how many more deliveries per variant a test
would need to detect a 10% relative lift at the pooled rate (alpha 0.05, power 80%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pushctl.insights.stats import (
    chi_squared_test,
    relative_lift,
    sample_size,
    two_proportion_test,
    wilson,
)

__all__ = ["ALPHA", "METRICS", "VariantStat", "Verdict", "decide_verdict", "format_p", "percent"]

ALPHA = 0.05
DETECTABLE_LIFT = 0.10
METRICS = {"opens": "open rate", "conversions": "conversion rate"}


@dataclass(frozen=True, slots=True)
class VariantStat:
    """One variant's delivered devices and how many of them engaged on the metric."""

    name: str
    delivered: int
    engaged: int

    @property
    def rate(self) -> float:
        return self.engaged / self.delivered if self.delivered else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.engaged, self.delivered)


@dataclass
class Verdict:
    """The outcome of an A/B comparison, as figures and as a sentence."""

    metric: str
    test: str
    statistic: float
    p_value: float
    df: int
    significant: bool
    winner: str | None
    leader: str
    """The variant with the highest rate (the winner when significant)."""
    runner_up: str
    lift: float | None
    """Relative lift of the leader over the runner-up (``p1/p2 - 1``)."""
    lift_low: float | None
    lift_high: float | None
    more_per_variant: int | None
    """Deliveries still needed per variant to detect a 10% lift (None: significant, or no data)."""
    sentence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "test": self.test,
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "alpha": ALPHA,
            "significant": self.significant,
            "winner": self.winner,
            "leader": self.leader,
            "runner_up": self.runner_up,
            "lift": self.lift,
            "lift_low": self.lift_low,
            "lift_high": self.lift_high,
            "more_per_variant": self.more_per_variant,
            "sentence": self.sentence,
        }


def percent(value: float) -> str:
    """``6.1%`` (one decimal; two below 1%)."""
    return f"{100 * value:.2f}%" if 0 < value < 0.01 else f"{100 * value:.1f}%"


def format_p(p: float) -> str:
    """``0.0104``, ``0.002``, ``< 0.0001``: three significant figures."""
    return "< 0.0001" if p < 0.0001 else f"{p:.3g}"


def _signed(value: float) -> str:
    return f"{'+' if value >= 0 else '−'}{abs(100 * value):.1f}%"


def decide_verdict(variants: list[VariantStat], metric: str = "opens") -> Verdict | None:
    """The verdict over ``variants`` (None with fewer than two that were delivered)."""
    present = [v for v in variants if v.delivered > 0]
    if len(present) < 2:
        return None
    ranked = sorted(present, key=lambda v: (-v.rate, v.name))
    leader, runner = ranked[0], ranked[1]
    pair = two_proportion_test(leader.engaged, leader.delivered, runner.engaged, runner.delivered)
    if len(present) == 2:
        result = pair
    else:
        result = chi_squared_test([(v.engaged, v.delivered - v.engaged) for v in present])
    significant = result.p_value < ALPHA and (len(present) == 2 or pair.p_value < ALPHA)
    lift = relative_lift(leader.engaged, leader.delivered, runner.engaged, runner.delivered)
    what = METRICS[metric]
    engaged_any = sum(v.engaged for v in present)
    delivered_all = sum(v.delivered for v in present)
    more: int | None = None
    test_name = "two-proportion z-test" if len(present) == 2 else "chi-squared test"
    if engaged_any == 0:
        noun = "opens" if metric == "opens" else "conversions"
        sentence = f"no {noun} recorded yet: import them with `pushctl engage import`"
    elif significant:
        rates = f"{percent(leader.rate)} vs {percent(runner.rate)}"
        if len(present) == 2:
            p_text = format_p(pair.p_value)
            sentence = f"variant `{leader.name}` beats `{runner.name}` on {what}: {rates}, p = {p_text}"
        else:
            others = ", ".join(f"`{v.name}` {percent(v.rate)}" for v in ranked[1:])
            sentence = (
                f"variant `{leader.name}` has the best {what}: {percent(leader.rate)} ({others}); "
                f"chi-squared p = {format_p(result.p_value)}, "
                f"against `{runner.name}` p = {format_p(pair.p_value)}"
            )
        if lift is not None:
            sentence += f" (lift {_signed(lift[0])}, 95% CI {_signed(lift[1])} to {_signed(lift[2])})"
    else:
        needed = sample_size(engaged_any / delivered_all, DETECTABLE_LIFT)
        smallest = min(v.delivered for v in present)
        more = max(0, needed - smallest) if needed is not None else None
        rates = ", ".join(f"`{v.name}` {percent(v.rate)}" for v in ranked)
        if len(present) > 2 and result.p_value < ALPHA:
            sentence = (
                f"the variants differ on {what} ({rates}; chi-squared p = {format_p(result.p_value)}), but "
                f"`{leader.name}` and `{runner.name}` are not told apart yet (p = {format_p(pair.p_value)})"
            )
        else:
            sentence = f"no significant difference yet on {what} ({rates}; p = {format_p(result.p_value)})"
        if more:
            sentence += f"; about {more:,} more deliveries per variant would detect a 10% lift"
        elif more == 0:
            sentence += "; a 10% lift would most likely have shown by now: the variants perform alike"
    return Verdict(
        metric=metric,
        test=test_name,
        statistic=result.statistic,
        p_value=result.p_value,
        df=result.df,
        significant=significant,
        winner=leader.name if significant else None,
        leader=leader.name,
        runner_up=runner.name,
        lift=lift[0] if lift else None,
        lift_low=lift[1] if lift else None,
        lift_high=lift[2] if lift else None,
        more_per_variant=more,
        sentence=sentence,
    )
