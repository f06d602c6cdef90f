"""The run summary: counts per outcome, reason, variant and platform, and the exit code.

Built live by the sender (``Summary.add`` per result) and rebuilt from the journal by
``Journal.summary``; both must agree, so ``pushctl runs show`` reproduces the end of a send.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pushctl.errors import ExitCode
from pushctl.outcome import Outcome, Result

AUTH_STOP = "auth_failed"
"""``stopped_reason`` when the provider refused the credentials."""
INTERRUPTED_STOP = "interrupted"
"""``stopped_reason`` after Ctrl-C / SIGTERM."""


@dataclass
class Summary:
    """Aggregate of a run's results (memory is O(outcomes × reasons), not O(devices))."""

    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    counts: Counter[str] = field(default_factory=Counter)
    """Devices per outcome value."""
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Devices per ``(outcome, reason)``; the reason is ``""`` when there is none."""
    by_variant: dict[str, Counter[str]] = field(default_factory=dict)
    """Outcome counts per template variant (only devices that have a variant)."""
    by_platform: dict[str, Counter[str]] = field(default_factory=dict)
    total: int = 0
    retries: int = 0
    """Sum over devices of ``attempts - 1``."""
    stopped_reason: str | None = None
    """Why the run stopped early (``interrupted``, ``auth_failed``...), or None."""
    campaign: str | None = None
    session_total: int | None = None
    """Devices settled by the latest run of a resumed campaign (None: every device is this run's).
    :meth:`throughput` divides this, not :attr:`total`, by the run's duration."""

    def add(self, result: Result) -> None:
        """Count one device's result."""
        outcome = str(result.outcome)
        self.total += 1
        self.counts[outcome] += 1
        self.reasons[(outcome, result.reason)] += 1
        if result.variant:
            self.by_variant.setdefault(result.variant, Counter())[outcome] += 1
        platform = str(result.platform)
        per_platform = self.by_platform.get(platform)
        if per_platform is None:  # not setdefault(..., Counter()): that built a Counter per device
            per_platform = self.by_platform[platform] = Counter()
        per_platform[outcome] += 1
        if result.attempts > 1:
            self.retries += result.attempts - 1

    def finish(self, *, stopped_reason: str | None = None, at: float | None = None) -> None:
        """Mark the run as ended (now, unless ``at`` is given)."""
        self.finished_at = time.time() if at is None else at
        if stopped_reason is not None:
            self.stopped_reason = stopped_reason

    def duration(self) -> float:
        """Seconds from start to finish (to now while the run goes on)."""
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    def throughput(self) -> float:
        """Devices per second of the latest run over :meth:`duration` (0 for an instant run)."""
        duration = self.duration()
        sent = self.total if self.session_total is None else self.session_total
        return sent / duration if duration > 0 else 0.0

    @property
    def failures(self) -> int:
        """Devices whose outcome is not a success (see :attr:`Outcome.is_success`)."""
        return sum(n for outcome, n in self.counts.items() if not Outcome(outcome).is_success)

    def exit_code(self) -> ExitCode:
        """OK when every device succeeded; AUTH, INTERRUPTED or PARTIAL otherwise (in that order)."""
        if self.stopped_reason == AUTH_STOP or self.counts[Outcome.AUTH_FAILED] > 0:
            return ExitCode.AUTH
        if self.stopped_reason == INTERRUPTED_STOP:
            return ExitCode.INTERRUPTED
        if self.failures:
            return ExitCode.PARTIAL
        return ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """The final ``{"type": "summary", ...}`` JSON object of a send or ``runs show``."""
        reasons = [
            {"outcome": outcome, "reason": reason, "count": count}
            for (outcome, reason), count in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return {
            "type": "summary",
            "campaign": self.campaign,
            "total": self.total,
            # Every outcome is present (0 when none) so scripts can index without .get().
            "outcomes": {str(o): self.counts[str(o)] for o in Outcome},
            "reasons": reasons,
            "variants": {name: dict(counts) for name, counts in sorted(self.by_variant.items())},
            "platforms": {name: dict(counts) for name, counts in sorted(self.by_platform.items())},
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration(), 3),
            "throughput_per_s": round(self.throughput(), 1),
            "last_run_total": self.total if self.session_total is None else self.session_total,
            "retries": self.retries,
            "stopped": self.stopped_reason,
            "exit_code": int(self.exit_code()),
        }
