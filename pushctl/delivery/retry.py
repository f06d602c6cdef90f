"""Send policy for :mod:`pushctl.delivery.sender`: its options, backoff, Retry-After and the rate limiter."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pushctl.errors import ConfigError

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# Below this a pacing sleep costs more than it buys (timer resolution, a loop iteration);
# the schedule still advances, so the average rate stays exact and bursts stay tiny.
_MIN_SLEEP = 0.001


@dataclass
class SendOptions:
    """How hard and how patiently to send."""

    concurrency: Mapping[str, int] = field(default_factory=dict)
    """Requests in flight per provider; a missing provider uses its ``default_concurrency``."""
    rate: float | None = None
    """Total requests per second across providers (retries included); None or 0 = unlimited."""
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    env_check_window: int = 20
    """After the first N APNs answers, ≥ 50% ``BadDeviceToken`` warns of a sandbox/production
    mix-up. Runs with fewer APNs answers are not judged (small tests are often all bad). 0 = off."""
    read_ahead: int = 1024
    """Items buffered beyond the in-flight ones; bounds memory and how far one provider can
    run ahead of a stalled one."""

    def __post_init__(self) -> None:
        for name, value in self.concurrency.items():
            if value < 1:
                raise ConfigError(f"concurrency for {name} must be at least 1", field="concurrency")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1", field="max_attempts")
        if self.rate is not None and self.rate < 0:
            raise ConfigError("rate must not be negative", field="rate")
        if self.read_ahead < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ConfigError("read_ahead and backoff values must not be negative")


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter after failed attempt number ``attempt`` (1-based).

    Full jitter (uniform between 0 and the exponential ceiling) spreads the retries of a
    burst of 503s instead of sending them all back at the same instant.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 60))
    return rng.uniform(0.0, ceiling)


def retry_delay(
    attempt: int,
    retry_after: float | None,
    *,
    base: float,
    cap: float,
    retry_after_max: float,
    rng: random.Random,
) -> float:
    """How long to wait before the next attempt: the backoff, or ``Retry-After`` if longer.

    ``Retry-After`` is capped at ``retry_after_max`` so one odd header cannot park a
    campaign for hours.
    """
    delay = backoff_delay(attempt, base=base, cap=cap, rng=rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


class TokenBucket:
    """A smooth limiter of ``rate`` acquisitions per second, shared by every worker.

    Each caller reserves the next free slot on a schedule (GCRA / virtual scheduling) and
    sleeps until it: no lock, FIFO by arrival, no catch-up burst after an idle spell, and
    at most ``burst`` acquisitions at once.
    """

    __slots__ = ("_clock", "_interval", "_next", "_sleep", "_tolerance")

    def __init__(self, rate: float, *, clock: Clock, sleep: Sleep, burst: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate
        self._tolerance = max(0.0, burst - 1.0) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")

    def reserve(self) -> float:
        """Take the next slot; return how many seconds to wait for it (0 = go now)."""
        now = self._clock()
        slot = max(self._next, now - self._tolerance)
        self._next = slot + self._interval
        return slot - now

    async def acquire(self) -> None:
        """Wait for the next slot."""
        wait = self.reserve()
        if wait > _MIN_SLEEP:
            await self._sleep(wait)
