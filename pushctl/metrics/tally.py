"""What a run counts for its metrics: plain numbers, cheap to add to, picklable, and summable.

One :class:`Tally` per process: a ``send --workers N`` worker keeps its own and sends copies to
the parent (:meth:`Tally.snapshot`), which sums the latest copy of each (:meth:`Tally.total`).
Nothing here knows Prometheus; :mod:`pushctl.metrics.families` turns a tally into metric families.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pushctl.outcome import Outcome, Result

__all__ = ["LATENCY_BUCKETS", "Tally", "reason_label"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the latency histogram: a device's first attempt to its final answer."""

_SUCCESS = (Outcome.DELIVERED,)


def reason_label(reason: str) -> str:
    """A bounded label value for a reason: provider codes stay (``BadDeviceToken``,
    ``UNREGISTERED``); free text keeps its first word (``template field 'x': ...`` -> ``template``)."""
    return reason.split(" ", 1)[0][:64] if reason else ""


class Tally:
    """Counts of one run, by provider / platform / outcome / reason, with retries and latencies."""

    def __init__(self) -> None:
        self.notifications: Counter[tuple[str, str, str, str]] = Counter()
        """Devices per ``(provider, platform, outcome, reason)``."""
        self.retries: Counter[str] = Counter()
        """Attempts beyond the first, per provider."""
        self.latency: dict[str, list[int]] = {}
        """Per provider: devices per latency bucket (the last one is +Inf), not cumulative."""
        self.latency_sum: dict[str, float] = {}
        self.last_success: float = 0.0
        """Epoch seconds of the latest delivered notification (0: none yet)."""
        self.in_flight_value: int = 0
        self.in_flight_probe: Callable[[], int] | None = None
        """Where the live in-flight count comes from (the sender's), in the process that sends."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(vars(self))
        state["in_flight_value"] = self.in_flight
        state["in_flight_probe"] = None  # a live sender does not cross processes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def in_flight(self) -> int:
        """Requests on the wire now."""
        return self.in_flight_probe() if self.in_flight_probe is not None else self.in_flight_value

    def add(self, result: Result) -> None:
        """Count one device's result."""
        provider = result.platform.provider
        self.notifications[
            (provider, str(result.platform), str(result.outcome), reason_label(result.reason))
        ] += 1
        if result.attempts > 1:
            self.retries[provider] += result.attempts - 1
        if result.attempts:
            seconds = result.latency_ms / 1000.0
            buckets = self.latency.get(provider)
            if buckets is None:
                buckets = self.latency[provider] = [0] * (len(LATENCY_BUCKETS) + 1)
            buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            self.latency_sum[provider] = self.latency_sum.get(provider, 0.0) + seconds
        if result.outcome in _SUCCESS:
            self.last_success = time.time()

    def count(self, provider: str, platform: str, outcome: str, reason: str) -> None:
        """Count one device that never became a request (a token found invalid offline, a token
        with no way to check it online)."""
        self.notifications[(provider, platform, outcome, reason_label(reason))] += 1

    def outcomes(self) -> Counter[str]:
        """Devices per outcome (what a run's summary counts)."""
        counts: Counter[str] = Counter()
        for (_provider, _platform, outcome, _reason), n in self.notifications.items():
            counts[outcome] += n
        return counts

    def snapshot(self) -> Tally:
        """A copy to send to another process (in flight frozen at its current value)."""
        copy = Tally()
        copy.merge(self)
        return copy

    def merge(self, other: Tally) -> None:
        """Add ``other``'s counts to these."""
        self.notifications.update(other.notifications)
        self.retries.update(other.retries)
        for provider, buckets in other.latency.items():
            mine = self.latency.setdefault(provider, [0] * len(buckets))
            for i, n in enumerate(buckets):
                mine[i] += n
        for provider, total in other.latency_sum.items():
            self.latency_sum[provider] = self.latency_sum.get(provider, 0.0) + total
        self.last_success = max(self.last_success, other.last_success)
        self.in_flight_value += other.in_flight

    def replace(self, parts: Iterable[Tally]) -> None:
        """Become the sum of ``parts`` (the parent of workers: the latest copy of each)."""
        self.__init__()  # type: ignore[misc]
        for part in parts:
            self.merge(part)
