"""One provider's share of the send engine: its queues, its gate and its pace on a bad day.

What the sender learns about one push service lives here:

- **The burst window.** One device's 429 or 503 is that device's business: it is retried after its
  ``Retry-After`` and nothing else waits. When half of the provider's last
  :attr:`SendOptions.burst_window` (40) answers are throttling (429) or unavailability (503) answers from
  *different* devices, the provider as a whole is refusing: that is a burst.
- **The gate.** A burst closes the gate for every device of the provider, for the ``Retry-After``
  of the answer that completed the burst, else for a provider-level backoff that doubles with each
  burst and resets on the next delivery. Answers to requests sent before the gate closed belong to
  the burst that closed it and never close it again: one burst, one pause.
- **The pace (AIMD).** A burst of 429s also lowers the provider's rate to a fraction
  (:attr:`SendOptions.rate_decrease`) of what it accepted over the last second, then raises it by
  :attr:`SendOptions.rate_increase` of that per second while no burst comes: the sawtooth TCP
  draws with its window, settling just under what the service allows instead of hammering it and
  pausing.
"""

from __future__ import annotations

import asyncio
from collections import deque

from pushctl.delivery.retry import Clock, SendOptions, Sleep, TokenBucket
from pushctl.providers import Attempt, AttemptKind, Provider, WorkItem


class Retry:
    """An item between attempts (only retried items get one of these).

    ``attempts`` counts answers; ``losses`` counts requests lost with their connection (no
    answer), which do not spend an attempt and have their own bound.
    """

    __slots__ = ("attempts", "item", "losses", "started")

    def __init__(self, item: WorkItem, attempts: int, started: float, losses: int = 0) -> None:
        self.item = item
        self.attempts = attempts
        self.started = started
        self.losses = losses


class BurstWindow:
    """The last ``size`` answers of a provider: is half of them throttling from different devices?"""

    __slots__ = ("_entries", "_hits", "_needed", "_size")

    def __init__(self, size: int, share: float) -> None:
        self._size = size
        self._needed = max(1, round(size * share))
        self._entries: deque[int] = deque()
        self._hits = 0

    def observe(self, device: int) -> bool:
        """Record one answer: ``device`` (non-zero) for a throttling answer, 0 for any other.
        True when the window now holds a burst. A device already in the window counts once."""
        entries = self._entries
        if device and device in entries:
            device = 0
        if len(entries) == self._size and entries.popleft():
            self._hits -= 1
        entries.append(device)
        if device:
            self._hits += 1
        return self._hits >= self._needed

    def clear(self) -> None:
        self._entries.clear()
        self._hits = 0


class RateMeter:
    """Events per second over the last second (two one-second buckets, the older one pro rata)."""

    __slots__ = ("_clock", "_current", "_previous", "_start")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._start = clock()
        self._current = 0
        self._previous = 0

    def _roll(self, now: float) -> None:
        elapsed = now - self._start
        if elapsed >= 1.0:
            self._previous = self._current if elapsed < 2.0 else 0
            self._current = 0
            self._start = now - (elapsed % 1.0)

    def add(self) -> None:
        self._roll(self._clock())
        self._current += 1

    def per_second(self) -> float:
        now = self._clock()
        self._roll(now)
        return self._current + self._previous * (1.0 - (now - self._start))


class Pace:
    """The provider's adaptive rate (AIMD); ``bucket`` is None until a quota burst sets a rate."""

    __slots__ = ("_clock", "_decrease", "_increase", "_sleep", "_step", "_updated", "bucket", "rate")

    MIN_RATE = 1.0

    def __init__(self, clock: Clock, sleep: Sleep, *, decrease: float, increase: float) -> None:
        self._clock = clock
        self._sleep = sleep
        self._decrease = decrease
        self._increase = increase
        self._step = 0.0
        self._updated = 0.0
        self.rate: float | None = None
        self.bucket: TokenBucket | None = None

    def slow_down(self, accepted: float, answered: float) -> float:
        """A quota burst: the new rate, a fraction of the current one; the first time, of what the
        service accepted over the last second (of what it answered, if it accepted nothing)."""
        first = accepted if accepted >= self.MIN_RATE else answered
        basis = max(self.rate if self.rate is not None else first, self.MIN_RATE)
        self.rate = max(self.MIN_RATE, basis * self._decrease)
        self._step = basis * self._increase
        self._updated = self._clock()
        if self.bucket is None:
            self.bucket = TokenBucket(self.rate, clock=self._clock, sleep=self._sleep)
        else:
            self.bucket.set_rate(self.rate)
        return self.rate

    def speed_up(self) -> None:
        """A delivery: add the additive increase for the time since the last one (10 times a second
        at most, so the hot path stays cheap)."""
        if self.rate is None:
            return
        now = self._clock()
        elapsed = now - self._updated
        if elapsed >= 0.1:
            self.rate += self._step * elapsed
            self._updated = now
            assert self.bucket is not None
            self.bucket.set_rate(self.rate)


class Lane:
    """One provider's buffer, retries, idle workers, gate and pace."""

    __slots__ = ("_clock", "_options", "accepted", "answered", "batch_limit", "burst", "concurrency",
                 "env_check", "epoch", "gate_level", "idle", "name", "pace", "paused_until", "pending",
                 "provider", "retry", "waiting_retry")

    def __init__(self, name: str, provider: Provider, concurrency: int, env_check: bool,
                 options: SendOptions, clock: Clock, sleep: Sleep) -> None:
        self._options = options
        self._clock = clock
        self.name = name
        self.provider = provider
        self.concurrency = concurrency
        self.pending: deque[WorkItem] = deque()
        self.retry: deque[Retry] = deque()
        self.idle: deque[asyncio.Future[None]] = deque()
        self.waiting_retry = 0
        self.env_check = env_check
        # Devices per request for providers that send many at once (HMS); see take_batch.
        self.batch_limit = max(1, int(getattr(provider, "batch_limit", 1)))
        self.paused_until = 0.0
        self.epoch = 0
        """Bumped when a burst closes the gate; answers from an older epoch belong to that burst."""
        self.gate_level = 0
        """Bursts since the last delivery: the provider-level backoff's exponent."""
        self.burst = BurstWindow(options.burst_window, options.burst_share)
        self.accepted = RateMeter(clock)
        self.answered = RateMeter(clock)
        self.pace = Pace(clock, sleep, decrease=options.rate_decrease, increase=options.rate_increase)

    def wake_one(self) -> None:
        while self.idle:
            fut = self.idle.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def wake_all(self) -> None:
        for fut in self.idle:
            if not fut.done():
                fut.set_result(None)
        self.idle.clear()

    def learn(self, device: int, attempt: Attempt, epoch: int) -> str | None:
        """Learn from one answer to a request sent in ``epoch`` (``device`` identifies the device):
        the meters, the pace, and whether a burst is under way. Returns the message to show when
        the answer completed a burst and closed the gate."""
        self.answered.add()
        if attempt.kind is AttemptKind.DELIVERED:
            self.accepted.add()
            self.pace.speed_up()
            if epoch == self.epoch:
                self.gate_level = 0  # the provider-level backoff starts over on success
        if epoch != self.epoch:
            return None  # sent before the gate closed: part of the burst that closed it
        throttled = attempt.kind is AttemptKind.RETRYABLE and attempt.provider_wide
        if not self.burst.observe(device if throttled else 0):
            return None
        o = self._options
        if attempt.retry_after is not None:
            delay = min(attempt.retry_after, o.retry_after_max)
        else:
            delay = min(o.backoff_max, o.backoff_base * 2.0 ** self.gate_level)
        self.close_gate(self._clock(), delay)
        note = ""
        if attempt.status == 429:
            rate = self.pace.slow_down(self.accepted.per_second(), self.answered.per_second())
            note = f"; sending to it at {rate:,.0f}/s from now on, then faster while it accepts"
        return (f"{self.name}: {attempt.reason} answers from many devices at once: "
                f"pausing all sends to it for {delay:.1f}s{note}")

    def close_gate(self, now: float, delay: float) -> None:
        """Pause every send to this provider until ``now + delay``; a new epoch begins, and the
        pace's schedule starts again when the gate opens (slots taken before are void)."""
        self.epoch += 1
        self.gate_level += 1
        self.burst.clear()
        self.paused_until = max(self.paused_until, now + delay)
        if self.pace.bucket is not None:
            self.pace.bucket.restart()

