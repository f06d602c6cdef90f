"""Per-device outcomes: values, not exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pushctl.model import Platform


class Outcome(StrEnum):
    """How one device's send ended. Every device ends with exactly one."""

    DELIVERED = "delivered"
    """Accepted by APNs / FCM (or, with validate-only, accepted as valid)."""
    INVALID_TOKEN = "invalid_token"
    """The token is dead or belongs elsewhere: prune it."""
    REJECTED = "rejected"
    """The message itself is wrong (too large, bad topic...): fix the template or profile."""
    FAILED = "failed"
    """Transient failures until retries ran out."""
    AUTH_FAILED = "auth_failed"
    """Credentials refused; the campaign stopped."""
    SKIPPED = "skipped"
    """Not sent on purpose: bad row, suppressed, frequency cap..."""
    DEFERRED = "deferred"
    """Not sent yet: its time slot has not come (quiet hours, local-time delivery)."""

    @property
    def is_final(self) -> bool:
        """False for outcomes that a later run of the campaign revisits: ``deferred`` (its time
        had not come) and ``auth_failed`` (sent again once the credentials are fixed)."""
        return self not in (Outcome.DEFERRED, Outcome.AUTH_FAILED)

    @property
    def is_success(self) -> bool:
        return self in (Outcome.DELIVERED, Outcome.SKIPPED, Outcome.DEFERRED)


@dataclass(slots=True)
class Result:
    """What happened to one device."""

    token: str
    platform: Platform
    outcome: Outcome
    reason: str = ""
    """The provider's reason string (``Unregistered``, ``UNAVAILABLE``...) or pushctl's own."""
    status: int | None = None
    """HTTP status of the last answer, if any request was made."""
    attempts: int = 0
    latency_ms: float = 0.0
    """Time from the first attempt to the final answer."""
    provider_id: str = ""
    """``apns-id`` or the FCM message name."""
    variant: str = ""
    line: int = 0
    """Audience line, for messages and reports."""
    ref: int = 0
    """The work item's ``ref``, echoed (not part of reports)."""

    def to_dict(self) -> dict[str, Any]:
        # Spelled out, not dataclasses.asdict(): this runs once per device on the send hot path
        # and asdict's recursive deep copy cost ~10 µs a call.
        return {
            "token": self.token,
            "platform": str(self.platform),
            "outcome": str(self.outcome),
            "reason": self.reason,
            "status": self.status,
            "attempts": self.attempts,
            "latency_ms": round(self.latency_ms, 2),
            "provider_id": self.provider_id,
            "variant": self.variant,
            "line": self.line,
        }
