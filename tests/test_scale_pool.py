"""The worker pool: big messages both ways, errors come back whole, a dead worker is named,
stop requests arrive, and the pipes stay blocking whatever the event loop does to them."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
import scale_jobs

from pushctl.errors import InputError
from pushctl.scale import WorkerDied, WorkerPool
from pushctl.scale.pool import _watch


def test_messages_bigger_than_a_pipe_and_results_in_order() -> None:
    got: list[tuple[int, int]] = []
    pool = WorkerPool(scale_jobs.echo, [3 << 20, 1 << 20], on_message=lambda i, m: got.append((i, len(m))))
    assert asyncio.run(pool.run()) == [0, 1]
    assert sorted(got) == [(0, 3 << 20), (1, 1 << 20)]


def test_a_workers_error_reaches_the_parent_with_its_location() -> None:
    pool = WorkerPool(scale_jobs.fail, [None], on_message=lambda i, m: None)
    with pytest.raises(InputError) as err:
        asyncio.run(pool.run())
    assert str(err.value) == "a.csv:7: field 'token': bad row (fix it)"


def test_a_worker_that_dies_is_named() -> None:
    pool = WorkerPool(scale_jobs.die, [None], on_message=lambda i, m: None)
    with pytest.raises(WorkerDied, match="worker 0 ended unexpectedly \\(exit code 3\\)"):
        asyncio.run(pool.run())


def test_stop_and_abort_reach_the_workers() -> None:
    pool: WorkerPool[None, int]
    ready: list[int] = []

    def on_message(index: int, message: object) -> None:
        ready.append(index)
        if len(ready) == 2:
            pool.stop(2)  # a second Ctrl-C: abort, to every worker

    pool = WorkerPool(scale_jobs.wait_for_stop, [None, None], on_message=on_message)
    assert asyncio.run(pool.run()) == [2, 2]
    assert len(set(pool.pids)) == 2
    pool = WorkerPool(scale_jobs.wait_for_stop, [None], on_message=lambda i, m: pool.stop(1))
    assert asyncio.run(pool.run()) == [1]


def test_a_watched_pipe_stays_blocking() -> None:
    # uvloop makes a watched descriptor non-blocking; _watch puts it back (see its doc).
    left, right = socket.socketpair()
    os.set_blocking(left.fileno(), False)

    class Conn:
        def fileno(self) -> int:
            return left.fileno()

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        _watch(loop, Conn(), lambda: None)  # type: ignore[arg-type]
        blocking = os.get_blocking(left.fileno())
        loop.remove_reader(left.fileno())
        return blocking

    try:
        assert asyncio.run(main())
    finally:
        left.close()
        right.close()
