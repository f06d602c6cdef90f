"""The send engine's own cost per item, with no network at all.

Feeds N items (default 200,000, half APNs half FCM) through providers whose ``send`` answers
DELIVERED at once, and prints items/s and CPU µs per item. Everything measured is pushctl's
engine: lanes, workers, result records, counters. Target: < 30 µs/item.

    .venv/bin/python benchmarks/sender_overhead.py [-n 200000] [--concurrency 500] [--rate 0]
                                                   [--suspend] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from typing import Any

from pushctl.delivery import Sender, SendOptions, WorkItem
from pushctl.model import Device, Platform
from pushctl.outcome import Result
from pushctl.providers.base import Attempt, AttemptKind

DELIVERED = Attempt(AttemptKind.DELIVERED, 200, "", provider_id="bench")


class InstantProvider:
    """Answers every request at once, like a sink with zero latency."""

    platforms = frozenset({Platform.IOS, Platform.ANDROID})
    payload_limit = 4096

    def __init__(self, name: str, concurrency: int, suspend: bool) -> None:
        self.name = name
        self.default_concurrency = concurrency
        self.suspend = suspend

    async def start(self) -> None:
        pass

    def prepare(self, device: Device, notification: Any, *, collapse_id: str | None) -> Any:
        return device.token

    async def send(self, request: Any) -> Attempt:
        if self.suspend:  # a real request always waits for its answer: one trip through the loop
            await asyncio.sleep(0)
        return DELIVERED

    async def close(self) -> None:
        pass


def audience(n: int) -> Iterator[WorkItem]:
    for i in range(n):
        if i % 2:
            yield WorkItem(Device(f"fcm-token-{i}", Platform.ANDROID, line=i + 1), "fcm", i)
        else:
            yield WorkItem(Device(f"{i:064x}", Platform.IOS, line=i + 1), "apns", i)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s; 0 = unlimited")
    parser.add_argument("--suspend", action="store_true", help="send() yields to the loop once, like I/O")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (when installed)")
    args = parser.parse_args()

    count = 0

    def on_result(result: Result) -> None:
        nonlocal count
        count += 1

    providers = {name: InstantProvider(name, args.concurrency, args.suspend) for name in ("apns", "fcm")}
    sender = Sender(providers, SendOptions(rate=args.rate or None), on_result=on_result)
    runner: Any = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run

    wall, cpu = time.perf_counter(), time.process_time()
    runner(sender.run(audience(args.n)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert count == args.n, (count, args.n)
    # The audience generator's own cost (building Device/WorkItem) is included: it is small
    # and it is what a real run pays too, minus rendering.
    print(f"items:        {args.n:,}")
    print(f"items/s:      {args.n / wall:,.0f}")
    print(f"CPU µs/item:  {cpu / args.n * 1e6:.2f}")
    suspends = ", send suspends" if args.suspend else ""
    print(f"loop:         {'uvloop' if args.uvloop else 'asyncio'}{suspends}")


if __name__ == "__main__":
    main()
