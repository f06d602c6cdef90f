"""``--ab-test 10%`` and ``--winner-of``: a test slice gets the variants, the rest gets the winner.

The slice is a stable random share of the devices (a hash of campaign id and token, see
:func:`pushctl.journal.in_ab_slice`), so every run of the campaign agrees on it: a device in the
slice gets its variant (the template's usual hash), a device outside it is held back (``deferred``,
reason ``ab_holdout``) until a winner is recorded, then gets exactly the winner. Held-back devices
are not settled, so ``--winner-of`` is a later run of the *same* campaign: a device is never sent
twice, nor two variants, and resume works as for any send.
"""

from __future__ import annotations

from dataclasses import dataclass

from pushctl.errors import InputError
from pushctl.journal import AbTests, in_ab_slice

__all__ = ["AB_HOLDOUT", "AbPlan", "parse_share"]

AB_HOLDOUT = "ab_holdout"
"""The deferral reason of a device held back for the winner."""


def parse_share(text: str, *, field: str = "--ab-test") -> float:
    """``10%`` (or ``10``) as 0.10; more than 0 and less than 100%."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"not a percentage: {text!r}", field=field, hint="e.g. 10%") from None
    if not 0 < value < 100:
        raise InputError(f"must be more than 0% and less than 100%: {text!r}", field=field, hint="e.g. 10%")
    return value / 100


@dataclass
class AbPlan:
    """Which devices of a campaign get the variants now, and what the others get."""

    fraction: float
    """The share of devices in the test slice."""
    winner: str | None = None
    """The variant for the devices outside the slice; None: hold them back."""

    def in_slice(self, campaign_id: str, token: str) -> bool:
        return in_ab_slice(campaign_id, token, self.fraction)

    def recorded(self, tests: AbTests, campaign_id: str, *, resumed: bool) -> AbPlan:
        """This plan as the journal knows it: the first run records the slice; later runs keep the
        recorded fraction (the slice must not move) and the recorded winner."""
        known = tests.get(campaign_id)
        if known is None:
            if resumed and self.winner is None:
                raise InputError(
                    f"campaign {campaign_id} was started without --ab-test: its devices were sent already",
                    field="--ab-test",
                    hint="use a new --campaign id for the A/B test",
                )
            known = tests.start(campaign_id, self.fraction)
        return AbPlan(known.fraction, known.winner or self.winner)
