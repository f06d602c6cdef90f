"""How pushctl runs its asyncio loop (a shared base: the CLI and every
command that sends use it): on uvloop when it is installed — a default dependency on every
platform that has it (CPython, not Windows); elsewhere, or without it, asyncio's own loop.

uvloop's transports cut the event loop's share of each request (the fact sheet measured
~0.19 ms vs ~0.23 ms CPU per request on one ``h2`` connection). ``PUSHCTL_NO_UVLOOP=1`` keeps
the standard loop, e.g. to rule uvloop out when debugging.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import signal
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """``uvloop.new_event_loop`` when uvloop is importable and not disabled, else None."""
    if os.environ.get("PUSHCTL_NO_UVLOOP"):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


_owns_process = False


def own_process() -> None:
    """Called by the console-script entry point: pushctl is the whole process, so :func:`run`
    may tune process-wide settings (the garbage collector). In-process callers (tests, a Python
    program embedding pushctl) keep their own settings."""
    global _owns_process
    _owns_process = True


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Like :func:`asyncio.run`, on uvloop when available (and with the garbage collector tuned
    when pushctl owns the process)."""
    import asyncio  # here, not at the top: `pushctl --help` has no loop to run

    if _owns_process:
        tune_gc()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)


def tune_gc() -> None:
    """Keep the cyclic garbage collector from re-scanning the start-up heap during a send.

    Every request allocates many short-lived objects (h2 events, header tuples), so the default
    gen-0 threshold of 700 triggers collections constantly, and the older generations hold the
    tens of thousands of objects that imports made (Jinja, Rich, Typer...). Freezing those and
    collecting gen 0 every 50,000 allocations cut ~7 % of the CPU per notification in
    ``benchmarks/send_bench.py`` (alternating runs); reference counting still frees almost
    everything at once, so memory does not grow.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[int], None]) -> Iterator[None]:
    """While the body runs, call ``callback(n)`` on the n-th SIGINT / SIGTERM (n = 1, 2, ...)
    instead of letting the signal kill the process; needs a running loop in the main thread
    (elsewhere the handlers are simply not installed)."""
    import asyncio

    loop = asyncio.get_running_loop()
    presses = 0

    def interrupt() -> None:
        nonlocal presses
        presses += 1
        callback(presses)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, interrupt)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def dumps_compact(obj: Any) -> bytes:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()``, through orjson
    where it is installed (a default dependency on CPython): ~5x less CPU for a payload or a
    result line, which are encoded once per device. What orjson refuses (integers beyond 64
    bits, lone surrogates, non-string keys) goes through the standard library as before.
    """
    encode = _orjson_dumps()
    if encode is not None:
        try:
            return encode(obj)
        except TypeError:  # orjson.JSONEncodeError
            pass
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def _orjson_dumps() -> Callable[[Any], bytes] | None:
    if os.environ.get("PUSHCTL_NO_ORJSON"):
        return None
    try:
        import orjson
    except ImportError:
        return None
    dumps: Callable[[Any], bytes] = orjson.dumps
    return dumps
