"""Worker processes for one job on every core: start, talk, stop, and die with the parent.

:class:`WorkerPool` starts one process per argument (``spawn``: a fresh interpreter, no state
inherited from a parent that may run threads and an event loop) and runs ``job(context, arg)``
in each, on its own event loop. Workers talk to the parent through one pipe each:

* worker -> parent: :meth:`WorkerContext.send` (any picklable message, handed to ``on_message``;
  :meth:`WorkerContext.sync` waits until the parent has handled it), then the job's return
  value, or its exception;
* parent -> worker: ``stop`` (first Ctrl-C: finish what is in flight) and ``abort`` (second),
  delivered to the callback the job registered with :meth:`WorkerContext.on_stop`.

Workers ignore SIGINT and SIGTERM: a Ctrl-C reaches the whole process group, and the parent
alone decides (and forwards) what it means, so one press is one press.

**Workers die with the parent.** A worker asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``, Linux) and also exits at once when its pipe to the parent closes (any
OS): after a ``kill -9`` of the parent no worker goes on sending, exactly as if the one process
of a single-process run had been killed; the journal's in-flight marks make the resume exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, TypeVar

from pushctl.errors import PushctlError

__all__ = ["Job", "WorkerContext", "WorkerDied", "WorkerPool", "usable_cores"]

A = TypeVar("A")
R = TypeVar("R")

Job = Callable[["WorkerContext", A], Awaitable[R]]
"""A module-level async function (workers import it by name)."""

_PR_SET_PDEATHSIG = 1
_GRACE_SECONDS = 10.0


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Cores this process may use: its CPU affinity (a container's cpuset), capped by a cgroup v2
    CPU quota (a Kubernetes CPU limit: ``cpu.max`` = ``200000 100000`` is 2 cores), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity says it all
    return max(1, cores)


class WorkerDied(PushctlError):
    """A worker process ended without reporting (killed, out of memory, crashed)."""


class WorkerContext:
    """What a job sees of its process: its index, a way to talk to the parent, stop requests."""

    def __init__(self, conn: Connection, index: int, count: int) -> None:
        self.index = index
        self.count = count
        self._conn = conn
        self._on_stop: Callable[[int], None] = lambda _presses: None

    def send(self, message: Any) -> None:
        """Hand ``message`` to the parent's ``on_message`` (blocks while the pipe is full)."""
        self._conn.send(("msg", message))

    def sync(self, message: Any) -> None:
        """Like :meth:`send`, then wait until the parent has handled it and everything sent
        before it (a worker's outputs are never behind its journal). A stop request that
        arrives meanwhile is delivered once the loop runs again."""
        self._conn.send(("sync", message))
        try:
            while (command := self._conn.recv()) != "ack":
                presses = 2 if command == "abort" else 1
                asyncio.get_running_loop().call_soon(self._on_stop, presses)
        except (EOFError, OSError):
            os._exit(137)  # the parent is gone: stop now, as one process would have

    def on_stop(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(1)`` when the parent asks to stop, ``callback(2)`` to abort."""
        self._on_stop = callback

    def _control(self) -> None:
        try:
            while self._conn.poll():
                command = self._conn.recv()
                self._on_stop(2 if command == "abort" else 1)
        except (EOFError, OSError):
            # The parent is gone (kill -9, crash): stop now, as one process would have.
            os._exit(137)

    async def _main(self, job: Job[A, R], arg: A) -> R:
        loop = asyncio.get_running_loop()
        _watch(loop, self._conn, self._control)
        try:
            return await job(self, arg)
        finally:
            loop.remove_reader(self._conn.fileno())


def _watch(
    loop: asyncio.AbstractEventLoop, conn: Connection, callback: Callable[..., None], *args: Any
) -> None:
    """Call ``callback`` when ``conn`` has data. The pipe stays *blocking*: uvloop (libuv) makes a
    watched descriptor non-blocking, and ``Connection.send`` / ``recv`` would then fail halfway
    through a message (EAGAIN) instead of waiting for the other side; readiness is still polled."""
    loop.add_reader(conn.fileno(), callback, *args)
    os.set_blocking(conn.fileno(), True)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(137)


def _encode_error(exc: BaseException) -> tuple[Any, ...]:
    """An exception as picklable parts (pushctl's errors take keyword arguments that
    ``pickle`` alone would lose)."""
    if isinstance(exc, PushctlError):
        return ("pushctl", type(exc), exc.args, dict(vars(exc)))
    text = "".join(traceback.format_exception(exc))
    return ("other", type(exc).__name__, str(exc), text)


def _decode_error(parts: tuple[Any, ...]) -> BaseException:
    if parts[0] == "pushctl":
        _, cls, args, state = parts
        exc: BaseException = cls.__new__(cls)
        BaseException.__init__(exc, *args)
        exc.__dict__.update(state)
        return exc
    _, name, message, text = parts
    return RuntimeError(f"a worker failed: {name}: {message}\n{text}")


def _child(job: Job[A, R], arg: A, conn: Connection, parent_pid: int, index: int, count: int) -> None:
    """The worker process's main (module level: ``spawn`` imports it by name)."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from pushctl import runtime

    runtime.own_process()
    context = WorkerContext(conn, index, count)
    try:
        result = runtime.run(context._main(job, arg))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", _encode_error(exc)))
        conn.close()
        os._exit(1)
    conn.send(("done", result))
    conn.close()


class WorkerPool(Generic[A, R]):
    """Run ``job(context, arg)`` in one worker process per ``arg``; see the module doc."""

    def __init__(self, job: Job[A, R], args: Sequence[A], *, on_message: Callable[[int, Any], None]) -> None:
        self._job = job
        self._args = list(args)
        self._on_message = on_message
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        self._results: dict[int, R] = {}
        self._errors: dict[int, BaseException] = {}
        self._ended: asyncio.Event | None = None
        self._open = 0

    @property
    def pids(self) -> list[int]:
        """The workers' process ids (once started)."""
        return [p.pid for p in self._procs]

    def stop(self, presses: int = 1) -> None:
        """Forward a stop (1) or abort (2+) to every worker still running."""
        command = "abort" if presses > 1 else "stop"
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(command)

    async def run(self) -> list[R]:
        """Start the workers, deliver their messages, return their results in order.

        Raises the first worker's error (after asking the others to stop and waiting for them),
        or :class:`WorkerDied` when one ended without a word.
        """
        loop = asyncio.get_running_loop()
        self._ended = asyncio.Event()
        mp = multiprocessing.get_context("spawn")
        try:
            for index, arg in enumerate(self._args):
                mine, theirs = mp.Pipe(duplex=True)
                proc = mp.Process(
                    target=_child,
                    args=(self._job, arg, theirs, os.getpid(), index, len(self._args)),
                    name=f"pushctl-worker-{index}",
                    daemon=True,
                )
                proc.start()
                theirs.close()
                self._procs.append(proc)
                self._conns.append(mine)
                self._open += 1
                _watch(loop, mine, self._readable, index)
            await self._ended.wait()
            await self._reap()
        finally:
            self._close(loop)
        if self._errors:
            raise self._errors[min(self._errors)]
        return [self._results[i] for i in range(len(self._args))]

    def _readable(self, index: int) -> None:
        conn = self._conns[index]
        try:
            while conn.poll():
                kind, payload = conn.recv()
                if kind == "msg":
                    self._on_message(index, payload)
                elif kind == "sync":
                    self._on_message(index, payload)
                    conn.send("ack")
                elif kind == "done":
                    self._results[index] = payload
                else:
                    self._fail(index, _decode_error(payload))
        except (EOFError, OSError):
            self._closed(index)

    def _fail(self, index: int, exc: BaseException) -> None:
        if not self._errors:
            self.stop(1)  # the others finish what they have in flight; their answers are kept
        self._errors.setdefault(index, exc)

    def _closed(self, index: int) -> None:
        asyncio.get_running_loop().remove_reader(self._conns[index].fileno())
        if index not in self._results and index not in self._errors:
            proc = self._procs[index]
            proc.join(1.0)
            code = proc.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self._fail(
                index,
                WorkerDied(
                    f"worker {index} ended unexpectedly ({how}); its devices still in flight are resent "
                    "when the same command runs again",
                ),
            )
        self._open -= 1
        if self._open == 0 and self._ended is not None:
            self._ended.set()

    async def _reap(self) -> None:
        for proc in self._procs:
            for _ in range(int(_GRACE_SECONDS / 0.02)):
                if proc.exitcode is not None:
                    break
                await asyncio.sleep(0.02)
            if proc.exitcode is None:
                proc.kill()
            proc.join(1.0)

    def _close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Leave no worker behind, whatever happened to the parent's run."""
        for proc, conn in zip(self._procs, self._conns, strict=True):
            if proc.exitcode is None:
                with contextlib.suppress(OSError, ValueError):
                    conn.send("abort")
        for proc in self._procs:
            proc.join(2.0)
            if proc.exitcode is None:
                proc.kill()
                proc.join(1.0)
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(conn.fileno())
            conn.close()
