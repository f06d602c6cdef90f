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
    """Answers a device may get before it fails (429, 5xx...). A request lost with its
    connection got no answer: it does not count, see :attr:`max_losses`."""
    max_losses: int = 10
    """Times a device's request may be lost with its connection (GOAWAY, a dropped connection, no
    answer in time) and re-sent: bounded on its own, so a service that drops every connection still
    ends the run."""
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    burst_window: int = 40
    """How many of a provider's latest answers are looked at for a burst."""
    burst_share: float = 0.5
    """A burst: at least this share of :attr:`burst_window` answers are 429 / 503 from different
    devices. It pauses the whole provider (see :mod:`pushctl.delivery.lane`)."""
    rate_decrease: float = 0.75
    """After a burst of quota answers, the provider's rate becomes this share of what it accepted
    over the last second (the multiplicative decrease)."""
    rate_increase: float = 0.02
    """... and grows by this share of that per second until the next burst (the additive increase)."""
    env_check_window: int = 20
    """After the first N APNs answers, ≥ 50% ``BadDeviceToken`` warns of a sandbox/production
    mix-up. Runs with fewer APNs answers are not judged (small tests are often all bad). 0 = off."""
    read_ahead: int = 1024
    """Items buffered beyond the in-flight ones; bounds memory and how far one provider can
    run ahead of a stalled one."""
    retry_backlog: int = 10_000
    """Items that may wait for a retry at once (a few KB each) before the reader stops taking new
    devices: on a bad day they do not starve the in-flight slots, in an outage memory stays flat."""

    def __post_init__(self) -> None:
        for name, value in self.concurrency.items():
            if value < 1:
                raise ConfigError(f"concurrency for {name} must be at least 1", field="concurrency")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts must be at least 1", field="max_attempts")
        if self.max_losses < 0 or self.burst_window < 1 or not 0 < self.burst_share <= 1:
            raise ConfigError("max_losses, burst_window and burst_share are out of range")
        if not 0 < self.rate_decrease < 1 or self.rate_increase <= 0:
            raise ConfigError("rate_decrease must be between 0 and 1, rate_increase above 0")
        if self.rate is not None and self.rate < 0:
            raise ConfigError("rate must not be negative", field="rate")
        if self.read_ahead < 0 or self.retry_backlog < 1 or self.backoff_base < 0 or self.backoff_max < 0:
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
    """How long to wait before the next attempt of one device.

    With a ``Retry-After`` the service said when: that, plus up to 5% jitter so the devices it
    refused together do not all come back in the same instant (capped at ``retry_after_max`` so
    one odd header cannot park a campaign for hours). Without one, exponential backoff with full
    jitter. A device's answers are its own: an overloaded *service* is the provider-wide gate's
    and the adaptive rate's business (:mod:`pushctl.delivery.lane`), so a device's wait does not
    grow on top of the ``Retry-After`` it was given.
    """
    if retry_after is not None:
        wait = min(retry_after, retry_after_max)
        return wait + rng.uniform(0.0, 0.05 * wait)
    return backoff_delay(attempt, base=base, cap=cap, rng=rng)


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

    def set_rate(self, rate: float) -> None:
        """Change the rate from the next reservation on (slots already taken stay)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._interval = 1.0 / rate

    def restart(self) -> None:
        """Forget the slots handed out so far: the next reservation goes now."""
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
