"""Jobs for the worker-pool tests (no tests here): module-level, so worker processes import them."""

from __future__ import annotations

import asyncio
import os

from pushctl.errors import InputError
from pushctl.scale import WorkerContext


async def echo(context: WorkerContext, size: int) -> int:
    """Send one message of ``size`` bytes (more than a pipe holds), then return the index."""
    context.send(b"x" * size)
    return context.index


async def fail(context: WorkerContext, _arg: object) -> None:
    raise InputError("bad row", file="a.csv", line=7, field="token", hint="fix it")


async def die(context: WorkerContext, _arg: object) -> None:
    os._exit(3)


async def wait_for_stop(context: WorkerContext, _arg: object) -> int:
    """Tell the parent it runs, then wait for a stop; return the number of presses heard."""
    heard = asyncio.Event()
    presses: list[int] = []

    def stop(n: int) -> None:
        presses.append(n)
        heard.set()

    context.on_stop(stop)
    context.send("ready")
    await heard.wait()
    return presses[0]
