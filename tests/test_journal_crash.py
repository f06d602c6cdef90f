"""The journal across processes: the campaign lock and durability under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pushctl.errors import CampaignLocked, ExitCode
from pushctl.journal import DeviceState, Journal
from pushctl.model import Platform

FP = {"template_fp": "t", "audience_fp": "a", "options": {}}

# The child opens the campaign, optionally writes, prints READY and waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pushctl.journal.store import Journal
    from pushctl.model import Platform
    from pushctl.outcome import Outcome, Result

    journal = Journal(Path(sys.argv[1]))
    run = journal.open_run("spring", template_fp="t", audience_fp="a", options={})
    committed, buffered = int(sys.argv[2]), int(sys.argv[3])
    tokens = [f"tok{i:06d}" for i in range(committed + buffered)]
    run.mark_inflight([(t, Platform.IOS, i, "") for i, t in enumerate(tokens)])
    for t in tokens[:committed]:
        run.record(Result(token=t, platform=Platform.IOS, outcome=Outcome.DELIVERED, attempts=1))
    run.flush()
    for t in tokens[committed:]:
        run.record(Result(token=t, platform=Platform.IOS, outcome=Outcome.DELIVERED, attempts=1))
    print("READY", flush=True)
    time.sleep(60)
    """
)


def _start_child(path: Path, committed: int = 0, buffered: int = 0) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(committed), str(buffered)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    return proc


def _kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_lock_held_by_another_process_then_freed_by_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    child = _start_child(path)
    try:
        with Journal(path) as journal:
            with pytest.raises(CampaignLocked) as err:
                journal.open_run("spring", **FP)  # type: ignore[arg-type]
            assert f"campaign spring is being sent by pid {child.pid} on " in str(err.value)
            assert err.value.exit_code is ExitCode.LOCKED
            assert journal.run_info("spring").status == "running"
    finally:
        _kill9(child)
    # The kernel released the dead process's flock: no stale-lock cleanup is needed.
    with Journal(path) as journal:
        assert journal.run_info("spring").status == "abandoned"
        run = journal.open_run("spring", **FP)  # type: ignore[arg-type]
        assert run.resumed
        run.finish()


def test_kill_9_loses_at_most_the_unflushed_buffer(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    committed, buffered = 1200, 300
    _kill9(_start_child(path, committed, buffered))
    with Journal(path) as journal:
        run = journal.open_run("spring", **FP)  # type: ignore[arg-type]
        tokens = [f"tok{i:06d}" for i in range(committed + buffered)]
        states = run.lookup(tokens)
        # Every device marked in flight survived; every flushed result survived.
        assert len(states) == committed + buffered
        assert all(states[t] is DeviceState.SETTLED for t in tokens[:committed])
        # The 300 buffered results were never committed: those devices are re-sent on resume.
        lost = [t for t in tokens[committed:] if states[t] is DeviceState.INFLIGHT]
        assert len(lost) <= buffered
        run.mark_inflight([(t, Platform.IOS, 0, "") for t in lost])
        run.finish()
