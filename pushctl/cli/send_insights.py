"""What `pushctl send` takes from insights: the A/B test and its winner, and the explanations that
`send` and `runs show` print about them (and about ``--local-time best`` slots)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pushctl.campaign import AbPlan, BestTime, QuietHours, parse_clock, parse_share
from pushctl.cli.console import Terminal
from pushctl.errors import InputError
from pushctl.journal import Journal, validate_campaign_id


@dataclass
class AbSetup:
    """What ``--ab-test`` / ``--winner-of`` make of a send."""

    plan: AbPlan | None = None
    campaign_id: str | None = None
    hold: str | None = None
    """Set when ``--if-no-winner wait`` holds the rest back: the reason, and nothing is sent."""


def ab_setup(
    terminal: Terminal,
    template: Path,
    journal_path: Path,
    *,
    ab_test: str | None,
    winner_of: str | None,
    campaign: str | None,
    metric: str,
    if_no_winner: str,
) -> AbSetup:
    """Check the options; for ``--winner-of``, choose (or find) the winner and record it."""
    if ab_test is None and winner_of is None:
        return AbSetup(campaign_id=campaign)
    if ab_test is not None and winner_of is not None:
        what = "--ab-test starts a test and --winner-of ends one: give one of them"
        raise InputError(what, field="--winner-of")
    from pushctl.message import Template

    variants = list(Template.load(template).variants)
    if len(variants) < 2:
        raise InputError(
            "an A/B test needs a template with at least two variants",
            file=template,
            field="variants",
            hint="see samples/templates/spring-sale.yaml",
        )
    if ab_test is not None:
        return AbSetup(AbPlan(parse_share(ab_test)), campaign)
    assert winner_of is not None
    validate_campaign_id(winner_of)
    if campaign is not None and campaign != winner_of:
        raise InputError(
            f"--winner-of {winner_of} continues that campaign: --campaign {campaign} names another",
            field="--campaign",
            hint="leave out --campaign",
        )
    if not journal_path.exists():
        raise InputError(
            f"no journal at {journal_path}: the A/B test {winner_of} was sent into another one",
            field="--journal",
            hint="give the --journal the --ab-test send used",
        )
    from pushctl.insights import choose_winner

    with Journal(journal_path) as journal:
        data = journal.engagement_data(winner_of)
        choice = choose_winner(data, variants, metric=metric, if_no_winner=if_no_winner)
        if choice.variant is None:
            return AbSetup(campaign_id=winner_of, hold=choice.sentence)
        if choice.how != "recorded":
            journal.ab_tests().decide(winner_of, choice.variant, metric, choice.decision(metric))
        recorded = journal.ab_tests().get(winner_of)
    assert recorded is not None and recorded.winner is not None
    terminal.info(f"winner of {winner_of}: `{recorded.winner}` — {choice.sentence}")
    return AbSetup(AbPlan(recorded.fraction, recorded.winner), winner_of)


def best_time(o: dict[str, Any], window: timedelta) -> BestTime | None:
    """``--local-time best`` and its options, or None."""
    if o["local_time"] != "best":
        return None
    return BestTime(parse_clock(o["best_fallback"], field="--best-fallback"), window, o["best_min_opens"])


def check_best_fallback(best: BestTime | None, quiet: QuietHours | None) -> None:
    """A fallback slot inside the quiet hours would never be sent: refuse it."""
    if best is not None and quiet is not None and best.slot_at(best.fallback).blocked_by(quiet):
        raise InputError(
            f"--best-fallback {best.fallback:%H:%M} lies entirely inside the quiet hours",
            field="--best-fallback",
            hint="pick a fallback outside the quiet hours",
        )


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _counts(parts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(parts.items()))


def _at(slots: dict[str, int]) -> str:
    return ", ".join(f"{n:,} at {slot}" for slot, n in sorted(slots.items()))


def explanation(journal: Journal, campaign_id: str) -> list[dict[str, Any]]:
    """What an A/B test and ``--local-time best`` did in this campaign, as records with a sentence."""
    data = journal.engagement_data(campaign_id)
    records: list[dict[str, Any]] = []
    ab = data.ab_test
    if ab is not None:
        test: dict[str, int] = {}
        rollout: dict[str, int] = {}
        held = 0
        for row in data.rows:
            if row.phase == "test" and row.variant:
                test[row.variant] = test.get(row.variant, 0) + row.targeted
            elif row.phase == "rollout":
                if row.variant:
                    rollout[row.variant] = rollout.get(row.variant, 0) + row.delivered
                held += row.targeted
        share = f"{100 * ab.fraction:g}%"
        sentence = (
            f"A/B test (--ab-test {share}): {sum(test.values()):,} devices in the test slice got the "
            f"variants ({_counts(test)}); {held:,} were held back for the winner"
        )
        if ab.winner is None:
            sentence += ". Next: import opens (pushctl engage import), then send again with "
            sentence += f"--winner-of {campaign_id}"
        else:
            why = ab.decision.get("sentence", "")
            sentence += (
                f". Winner `{ab.winner}` (--winner-of, on {ab.metric}, {_when(ab.decided_at)}): {why}. "
                f"Delivered to the held-back devices: {_counts(rollout) or 'none yet'}"
            )
        records.append({"type": "ab_test", "campaign": campaign_id, "fraction": ab.fraction,
                        "test": test, "held_back": held, "winner": ab.winner, "rollout_delivered": rollout,
                        "decided_at": ab.decided_at, "sentence": sentence})  # fmt: skip
    if data.slots:
        history = {s: n for s, b, n in data.slots if b == "history"}
        fallback = {s: n for s, b, n in data.slots if b != "history"}
        sentence = (
            f"--local-time best: {sum(history.values()):,} devices at their user's best hour "
            f"({_at(history) or 'none'}); {sum(fallback.values()):,} at the fallback "
            f"({_at(fallback) or 'none'}) for lack of open history"
        )
        records.append({"type": "slots", "campaign": campaign_id,
                        "best_hour": history, "fallback": fallback, "sentence": sentence})  # fmt: skip
    return records


def explain(terminal: Terminal, journal: Journal, campaign_id: str) -> None:
    """Print :func:`explanation`: JSON lines, or sentences (stdout: part of the results)."""
    for record in explanation(journal, campaign_id):
        if terminal.json:
            terminal.json_line(record)
        else:
            terminal.print(record["sentence"])
