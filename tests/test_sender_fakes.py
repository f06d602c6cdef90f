"""Fakes for the sender's unit tests: scripted providers and a virtual clock (no tests here).

Only pure engine logic is tested with these; real HTTP/2 runs against the emulator elsewhere.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from pushctl.delivery import Event, WorkItem
from pushctl.model import Device, Platform
from pushctl.outcome import Result
from pushctl.providers.base import Attempt, AttemptKind

OK = Attempt(AttemptKind.DELIVERED, 200, "", provider_id="id")
RETRY = Attempt(AttemptKind.RETRYABLE, 503, "ServiceUnavailable")


class FakeProvider:
    """A provider whose answers come from ``script(request, attempt_number)``.

    Tracks calls, the current and maximum number of concurrent sends, and can be held
    (every send waits on ``gate``) to simulate a stalled service.
    """

    platforms = frozenset({Platform.IOS, Platform.ANDROID})
    payload_limit = 4096

    def __init__(
        self,
        name: str,
        script: Callable[[Any, int], Attempt] | None = None,
        *,
        concurrency: int = 4,
        yields: int = 1,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = name
        self.default_concurrency = concurrency
        self.script = script or (lambda request, n: OK)
        self.yields = yields
        self.clock = clock
        self.calls: list[Any] = []
        self.call_times: list[float] = []
        self.attempts: dict[Any, int] = {}
        self.current = 0
        self.max_current = 0
        self.gate: asyncio.Event | None = None
        self.rng = random.Random(7)

    async def start(self) -> None:
        pass

    def prepare(self, device: Device, notification: Any, *, collapse_id: str | None) -> Any:
        return device.token

    async def send(self, request: Any) -> Attempt:
        self.calls.append(request)
        if self.clock is not None:
            self.call_times.append(self.clock())
        n = self.attempts[request] = self.attempts.get(request, 0) + 1
        self.current += 1
        self.max_current = max(self.max_current, self.current)
        try:
            if self.gate is not None:
                await self.gate.wait()
            # Vary how long requests stay in flight so they finish out of order.
            for _ in range(self.rng.randint(0, self.yields)):
                await asyncio.sleep(0)
            return self.script(request, n)
        finally:
            self.current -= 1

    async def close(self) -> None:
        pass


def item(i: int, provider: str = "apns") -> WorkItem:
    platform = Platform.IOS if provider == "apns" else Platform.ANDROID
    return WorkItem(Device(f"tok{i}", platform, line=i + 1), provider, f"{provider}-{i}")


def mixed(n: int) -> Iterator[WorkItem]:
    """Alternating APNs / FCM items."""
    for i in range(n):
        yield item(i, "apns" if i % 2 == 0 else "fcm")


class Recorder:
    """Collects results and events."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.events: list[Event] = []

    def result(self, r: Result) -> None:
        self.results.append(r)

    def event(self, e: Event) -> None:
        self.events.append(e)

    def by_line(self) -> dict[int, Result]:
        return {r.line: r for r in self.results}


class VirtualTime:
    """A virtual clock: ``sleep`` parks the caller until ``run`` advances time to its wake-up.

    ``run`` lets every runnable coroutine go, then jumps to the earliest sleeper, so tests
    of backoff, Retry-After, gates and rate limits take no real time and are exact.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + max(0.0, delay), self._seq, fut))
        self._seq += 1
        await fut

    async def run(self, coro: Coroutine[Any, Any, Any], *, spins: int = 30) -> Any:
        task = asyncio.ensure_future(coro)
        idle_rounds = 0
        while not task.done():
            for _ in range(spins):
                await asyncio.sleep(0)
                if task.done():
                    break
            if task.done():
                break
            while self._heap and self._heap[0][2].done():  # cancelled sleepers
                heapq.heappop(self._heap)
            if not self._heap:
                idle_rounds += 1
                if idle_rounds > 1000:
                    task.cancel()
                    raise AssertionError("deadlock: nothing runnable and nobody sleeping")
                await asyncio.sleep(0.001)
                continue
            idle_rounds = 0
            when, _, fut = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            fut.set_result(None)
        return task.result()
