"""The concurrent send engine: in-flight bound, rate, retries, stopping. Provider-independent.

Shape: one *reader* pulls :class:`WorkItem` values lazily from the audience pipeline and
appends each to its provider's *lane*; every lane has ``concurrency`` long-lived worker
coroutines that take items, make one attempt each and either finish the item (one
:class:`~pushctl.outcome.Result` through ``on_result``) or park it for a retry. No task is
created per item; a task is created per *retry* only.

Memory stays flat: the reader stops pulling while ``read_ahead + sum(concurrency)`` items
are admitted and unfinished (buffered or in flight), or while ``retry_backlog`` items wait for a
retry. Lanes are independent, so a slow FCM does not hold APNs up -- until FCM's backlog fills
that bound, because the audience is one ordered stream and reading past it without limit would
make memory grow with the audience.

On a bad day (see :mod:`pushctl.delivery.lane`): one device's 429 or 5xx backs off that device
alone; a burst of 429 / 503 answers from many devices pauses the whole provider once, for the
answer's ``Retry-After`` (else a provider-level backoff), and a burst of 429s lowers the
provider's rate (AIMD); a request lost with its connection is re-sent without spending an attempt.

Unfinished items: after :meth:`Sender.stop`, :meth:`Sender.abort` or a credential failure,
items that were pulled but have no final answer (buffered, waiting for a retry, or
cancelled mid-request by ``abort``) get **no** result. The journal keeps them in flight and
a resume sends them again; the collapse id makes a duplicate invisible on the device.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pushctl.delivery.lane import Lane, Retry
from pushctl.delivery.retry import Clock, SendOptions, Sleep, TokenBucket, backoff_delay, retry_delay
from pushctl.errors import AuthRefused, ConfigError, ProviderUnavailable
from pushctl.outcome import Outcome, Result
from pushctl.providers import Attempt, AttemptKind, Provider, WorkItem, prepare_item, take_batch

__all__ = ["Event", "SendOptions", "Sender", "WorkItem", "prepare_item"]

_OUTCOME = {
    AttemptKind.DELIVERED: Outcome.DELIVERED,
    AttemptKind.INVALID_TOKEN: Outcome.INVALID_TOKEN,
    AttemptKind.REJECTED: Outcome.REJECTED,
    AttemptKind.AUTH_FAILED: Outcome.AUTH_FAILED,
}


_LOSSES_AT_ONCE = 3
"""Requests lost with their connection this many times are re-sent without waiting."""


@dataclass(slots=True)
class Event:
    """Something the user should hear about during a run: ``warning``, ``auth_stop``, ``info``."""

    kind: str
    message: str


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # stop() called with no loop running (before run())
        return None


class Sender:
    """Sends work items through their providers; one result per finished item.

    ``counts`` (per outcome value), ``in_flight``, ``sent`` (results so far), ``retries``,
    ``pulled`` (items taken from the source) and ``stopped_reason`` (``"interrupted"``,
    ``"auth_failed"`` or None) are live, for the progress bar; so are ``pauses`` (provider-wide
    pauses) and ``resent`` (requests re-sent after their connection was lost). ``sleep``, ``clock``
    and ``rng`` are injectable so tests run in virtual time.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        options: SendOptions,
        *,
        on_result: Callable[[Result], None],
        on_event: Callable[[Event], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._options = options
        self._on_result = on_result
        self._on_event = on_event
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._lanes = {
            name: Lane(name, p, options.concurrency.get(name, p.default_concurrency),
                       env_check=name == "apns" and options.env_check_window > 0,
                       options=options, clock=clock, sleep=sleep)
            for name, p in providers.items()
        }
        for lane in self._lanes.values():
            if lane.concurrency < 1:
                raise ConfigError(f"concurrency for {lane.name} must be at least 1", field="concurrency")
        self._bucket = TokenBucket(options.rate, clock=clock, sleep=sleep) if options.rate else None
        lanes = self._lanes.values()
        self._limit = options.read_ahead + sum(lane.concurrency * lane.batch_limit for lane in lanes)
        # Hysteresis: wake the reader once a chunk has drained, not for every finished item.
        self._resume_at = self._limit - max(1, options.read_ahead // 2)
        self._admitted = 0
        self._waiting = 0  # admitted items asleep until their retry: bounded apart (see _full)
        self._reader_waiter: asyncio.Future[None] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reader_done = False
        self._stopping = False
        self._aborting = False
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._waiting_workers: set[asyncio.Task[Any]] = set()
        self._source_error: BaseException | None = None
        self._env_answers = 0
        self._env_bad = 0
        self._ran = False

        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.sent = 0
        self.retries = 0
        self.pauses = 0
        self.resent = 0
        self.pulled = 0
        self.stopped_reason: str | None = None

    # --- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """Graceful stop (first Ctrl-C): take no new items; requests in flight finish their
        current attempt. Items buffered or waiting for a retry end without a result."""
        if self.stopped_reason is None:
            self.stopped_reason = "interrupted"
        self._begin_stop()

    def abort(self) -> None:
        """Hard stop (second Ctrl-C): cancel in-flight requests now; they get no result."""
        if self.stopped_reason is None:
            self.stopped_reason = "interrupted"
        self._aborting = True
        self._begin_stop()
        for task in self._tasks:
            task.cancel()

    def _begin_stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        current = _current_task()
        if self._reader_task is not None and self._reader_task is not current:
            self._reader_task.cancel()
        for task in list(self._retry_tasks):
            task.cancel()
        for task in list(self._waiting_workers):
            if task is not current:
                task.cancel()
        for lane in self._lanes.values():
            self._admitted -= len(lane.pending) + sum(job.item.size for job in lane.retry)
            lane.pending.clear()
            lane.retry.clear()
            lane.wake_all()

    # --- running -----------------------------------------------------------------------

    async def run(self, items: AsyncIterable[WorkItem] | Iterable[WorkItem]) -> None:
        """Send every item; return when all are finished or the run was stopped.

        Re-raises an error from the item source (after in-flight requests finish) and any
        unexpected error from a provider or ``on_result`` (after cancelling the rest).
        """
        if self._ran:
            raise RuntimeError("a Sender runs once")
        self._ran = True
        self._reader_task = asyncio.create_task(self._read(items))
        self._tasks = [self._reader_task]
        for lane in self._lanes.values():
            self._tasks.extend(asyncio.create_task(self._work(lane)) for _ in range(lane.concurrency))
        fatal: BaseException | None = None
        pending = set(self._tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if fatal is None and not task.cancelled() and task.exception() is not None:
                        fatal = task.exception()
                        self._aborting = True
                        self._begin_stop()
                        for other in pending:
                            other.cancel()
        except asyncio.CancelledError:
            self.abort()
            await asyncio.wait(self._tasks)
            raise
        finally:
            for task in list(self._retry_tasks):
                task.cancel()
            if self._retry_tasks:
                await asyncio.wait(self._retry_tasks)
        if fatal is not None:
            raise fatal
        if self._source_error is not None:
            raise self._source_error

    async def _read(self, items: AsyncIterable[WorkItem] | Iterable[WorkItem]) -> None:
        try:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    if self._stopping or not await self._admit(item):
                        return
            else:
                for item in items:
                    if self._stopping or not await self._admit(item):
                        return
        except asyncio.CancelledError:
            if self._aborting or not self._stopping:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except Exception as exc:  # a bad source row: finish what is in flight, then report it
            self._source_error = exc
            self._begin_stop()
        finally:
            self._reader_done = True
            for lane in self._lanes.values():
                lane.wake_all()

    async def _admit(self, item: WorkItem) -> bool:
        """Hand one item to its lane; wait while the engine holds as many as it may."""
        self._dispatch(item)
        if self._full():
            await self._wait_for_room()
        return not self._stopping

    def _full(self) -> bool:
        # Items asleep until a retry do not keep new devices out (on a bad day a fifth of the
        # devices wait a second or more, and the in-flight slots would run dry), but their own
        # number is bounded: in an outage every device waits, and memory must stay flat.
        waiting = self._waiting
        return self._admitted - waiting >= self._limit or waiting >= self._options.retry_backlog

    def _dispatch(self, item: WorkItem) -> None:
        self.pulled += 1
        lane = self._lanes.get(item.provider)
        if lane is None:
            self._emit_result(item, Outcome.REJECTED, f"no provider configured for '{item.provider}'",
                              None, "", 0, 0.0)
            return
        self._admitted += 1
        lane.pending.append(item)
        if lane.idle:
            lane.wake_one()

    async def _wait_for_room(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader_waiter = fut
        try:
            await fut
        finally:
            self._reader_waiter = None

    def _release(self, count: int = 1) -> None:
        """One admitted item (``count`` devices of a batch) is done (finished or dropped)."""
        self._admitted -= count
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiter = self._reader_waiter
        if (
            waiter is not None
            and self._admitted - self._waiting <= self._resume_at
            and self._waiting < self._options.retry_backlog
            and not waiter.done()
        ):
            waiter.set_result(None)

    async def _pause(self, wait: float) -> bool:
        """Sleep outside a request; False when stop() cut it short (the worker should leave)."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting_workers.add(task)
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            if self._aborting or not self._stopping:
                raise
            task.uncancel()
            return False
        finally:
            self._waiting_workers.discard(task)
        return not self._stopping

    async def _wait_gate(self, lane: Lane) -> bool:
        """Wait while the provider's gate is closed; False when stop() cut the wait short."""
        while lane.paused_until:
            wait = lane.paused_until - self._clock()
            if wait <= 0:
                lane.paused_until = 0.0
                break
            if not await self._pause(wait):
                return False
        return True

    async def _pace(self, lane: Lane) -> bool:
        """Wait for this request's slot (the user's --rate, then the provider's adaptive rate).

        A slot taken before the gate closed is void: the request waits for the gate and takes a
        new one, so the requests held at the gate do not all go out the moment it opens (that
        burst would close it again). False when stop() cut a wait short.
        """
        while True:
            for bucket in (self._bucket, lane.pace.bucket):
                if bucket is not None:
                    wait = bucket.reserve()
                    if wait > 0.001 and not await self._pause(wait):
                        return False
            if lane.paused_until <= self._clock():
                return True
            if not await self._wait_gate(lane):
                return False

    async def _work(self, lane: Lane) -> None:
        send = lane.provider.send
        clock = self._clock
        options = self._options
        loop = asyncio.get_running_loop()
        while True:
            if self._stopping or not await self._wait_gate(lane):
                return
            if lane.retry:
                job = lane.retry.popleft()
                item, attempts, started, losses = job.item, job.attempts, job.started, job.losses
            elif lane.pending:
                item, attempts, started, losses = lane.pending.popleft(), 0, -1.0, 0
                if lane.batch_limit > 1:
                    item = take_batch(lane.provider, item, lane.pending, lane.batch_limit)
            elif self._reader_done and not lane.waiting_retry:
                lane.wake_all()  # the lane is drained: let the other idle workers leave too
                return
            else:
                fut: asyncio.Future[None] = loop.create_future()
                lane.idle.append(fut)
                await fut
                continue

            if not await self._pace(lane):
                self._release(item.size)
                return
            if started < 0:
                started = clock()
            epoch = lane.epoch
            self.in_flight += 1
            try:
                attempt = await send(item.request)
            except AuthRefused as exc:
                attempt = Attempt(AttemptKind.AUTH_FAILED, None, exc.message)
            except (ProviderUnavailable, OSError) as exc:  # adapters should not raise these; be safe
                attempt = Attempt(AttemptKind.RETRYABLE, None, type(exc).__name__)
            finally:
                self.in_flight -= 1
            kind = attempt.kind
            if kind is AttemptKind.RETRYABLE and attempt.status is None:
                # No answer: the request was lost with its connection. Not the device's attempt.
                losses += 1
                if losses <= options.max_losses and not self._stopping:
                    self.resent += 1
                    # At once on a fresh connection: with many requests in flight, a busy one may
                    # well be lost twice or three times. Only a run of losses backs off.
                    delay = 0.0 if losses <= _LOSSES_AT_ONCE else backoff_delay(
                        losses - _LOSSES_AT_ONCE, base=options.backoff_base, cap=options.backoff_max,
                        rng=self._rng)
                    self._schedule_retry(lane, Retry(item, attempts, started, losses), delay)
                    continue
                if self._stopping:
                    self._release(item.size)
                    continue
                attempts = max(attempts, 1)
                outcome = Outcome.FAILED
            else:
                attempts += 1
                self._answered(lane, item, attempt, epoch)
                if kind is AttemptKind.RETRYABLE:
                    if attempts < options.max_attempts:
                        if self._stopping:  # a stopped run does not start new attempts
                            self._release(item.size)
                            continue
                        delay = self._delay(attempts, attempt.retry_after)
                        self._schedule_retry(lane, Retry(item, attempts, started, losses), delay)
                        continue
                    outcome = Outcome.FAILED
                else:
                    outcome = _OUTCOME[kind]
            self._release(item.size)
            self._emit_result(item, outcome, attempt.reason, attempt.status, attempt.provider_id,
                              attempts, (clock() - started) * 1000.0, attempt.per_device)
            if kind is AttemptKind.AUTH_FAILED:
                self._auth_stop(lane, attempt)

    def _answered(self, lane: Lane, item: WorkItem, attempt: Attempt, epoch: int) -> None:
        if lane.env_check and attempt.status is not None:
            self._check_environment(lane, attempt)
        pause = lane.learn(id(item), attempt, epoch)
        if pause is not None:
            self.pauses += 1
            self._event("info", pause)

    def _emit_result(self, item: WorkItem, outcome: Outcome, reason: str, status: int | None,
                     provider_id: str, attempts: int, latency_ms: float,
                     per_device: Mapping[str, Attempt] | None = None) -> None:
        if item.members is not None:  # a batch: one result per device, its own answer where it has one
            for member in item.members:
                own = per_device.get(member.device.token) if per_device else None
                if own is None:
                    self._emit_result(member, outcome, reason, status, provider_id, attempts, latency_ms)
                else:
                    self._emit_result(member, _OUTCOME.get(own.kind, outcome), own.reason, own.status,
                                      own.provider_id or provider_id, attempts, latency_ms)
            return
        device = item.device
        self.sent += 1
        self.counts[outcome.value] += 1
        self._on_result(Result(device.token, device.platform, outcome, reason, status, attempts,
                               latency_ms, provider_id, item.variant, device.line, item.ref))

    # --- retries, gate, auth, environment ------------------------------------------------

    def _delay(self, attempts: int, retry_after: float | None) -> float:
        o = self._options
        return retry_delay(attempts, retry_after, base=o.backoff_base, cap=o.backoff_max,
                           retry_after_max=o.retry_after_max, rng=self._rng)

    def _schedule_retry(self, lane: Lane, job: Retry, delay: float) -> None:
        self.retries += 1
        lane.waiting_retry += 1
        self._waiting += job.item.size
        self._wake_reader()
        task = asyncio.create_task(self._retry_later(lane, job, delay))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _retry_later(self, lane: Lane, job: Retry, delay: float) -> None:
        try:
            await self._sleep(delay)
        except asyncio.CancelledError:
            lane.waiting_retry -= 1
            self._waiting -= job.item.size
            self._release(job.item.size)  # stopped: the item stays unfinished (no result)
            raise
        lane.waiting_retry -= 1
        self._waiting -= job.item.size
        if self._stopping:
            self._release(job.item.size)
            return
        lane.retry.append(job)
        lane.wake_one()

    def _auth_stop(self, lane: Lane, attempt: Attempt) -> None:
        if self.stopped_reason == "auth_failed":
            return
        self.stopped_reason = "auth_failed"  # outranks "interrupted": the exit code is 3, not 130
        self._event("auth_stop", f"{lane.name} refused the credentials ({attempt.reason}); "
                                 "stopping the campaign: no further devices will be sent")
        # Requests still queued for a stream (APNs allows one until a token is accepted) would
        # each be refused in turn: cancel them. They get no result, so the journal keeps them in
        # flight and the run after the fix sends them (with the campaign's collapse id).
        self._aborting = True
        self._begin_stop()
        current = _current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    def _check_environment(self, lane: Lane, attempt: Attempt) -> None:
        self._env_answers += 1
        if attempt.reason == "BadDeviceToken":
            self._env_bad += 1
        window = self._options.env_check_window
        if self._env_answers < window:
            return
        lane.env_check = False
        if self._env_bad * 2 >= window:
            self._event("warning", f"{self._env_bad} of the first {window} APNs answers were BadDeviceToken: "
                                   "sandbox/production mix-up? (check the profile's apns.environment)")

    def _event(self, kind: str, message: str) -> None:
        if self._on_event is not None:
            self._on_event(Event(kind, message))
