"""``--winner-of CAMPAIGN``: which variant the devices held back by ``--ab-test`` get.

The verdict over the test slice decides (see :mod:`pushctl.insights.verdict`). Without a
significant winner, ``--if-no-winner`` says what to do: ``best`` (the default) sends the variant
with the highest rate so far (as Braze's and OneSignal's "send the best performer" does), ``wait``
sends nothing (run again once more opens are in), and a variant name sends that one. A winner once
recorded stays: a resumed or repeated rollout never switches variants half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pushctl.errors import InputError
from pushctl.insights.report import build_report
from pushctl.insights.verdict import Verdict
from pushctl.journal import EngagementData

__all__ = ["WinnerChoice", "choose_winner"]


@dataclass
class WinnerChoice:
    """The variant for the rest (None: wait), and why."""

    variant: str | None
    how: str
    """``recorded``, ``significant``, ``best``, ``given`` or ``wait``."""
    sentence: str
    verdict: Verdict | None = None

    def decision(self, metric: str) -> dict[str, Any]:
        """What the journal keeps about the choice (``runs show`` prints the sentence)."""
        return {
            "how": self.how,
            "metric": metric,
            "sentence": self.sentence,
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
        }


def choose_winner(
    data: EngagementData, variants: list[str], *, metric: str = "opens", if_no_winner: str = "best"
) -> WinnerChoice:
    """Pick the variant for the held-back devices of ``data``'s campaign."""
    ab = data.ab_test
    if ab is None:
        raise InputError(
            f"campaign {data.campaign_id} was not sent with --ab-test: it has no held-back devices",
            field="--winner-of",
            hint="start the test with: pushctl send TEMPLATE --audience FILE --ab-test 10%",
        )
    if ab.winner is not None:
        said = ab.decision.get("sentence", "")
        return WinnerChoice(ab.winner, "recorded", f"chosen earlier: {said}".rstrip(": "))
    if if_no_winner not in ("best", "wait") and if_no_winner not in variants:
        known = ", ".join(variants)
        message = f"no variant '{if_no_winner}' in the template (variants: {known})"
        raise InputError(message, field="--if-no-winner", hint="or best, or wait")
    verdict = build_report(data, metric).verdict
    if verdict is not None and verdict.winner is not None:
        return WinnerChoice(verdict.winner, "significant", verdict.sentence, verdict)
    why = verdict.sentence if verdict is not None else "fewer than two variants were delivered in the slice"
    if if_no_winner == "wait":
        return WinnerChoice(None, "wait", f"{why}; holding the rest back (--if-no-winner wait)", verdict)
    if if_no_winner == "best":
        leader = verdict.leader if verdict is not None else _first_delivered(data, variants)
        sentence = f"{why}; sending the leader `{leader}` (--if-no-winner best)"
        return WinnerChoice(leader, "best", sentence, verdict)
    return WinnerChoice(if_no_winner, "given", f"{why}; sending `{if_no_winner}` (--if-no-winner)", verdict)


def _first_delivered(data: EngagementData, variants: list[str]) -> str:
    delivered = {row.variant for row in data.rows if row.phase == "test" and row.delivered}
    return next((v for v in variants if v in delivered), variants[0])
