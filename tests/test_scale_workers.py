"""`send --workers 2`: kill -9 of the parent mid-run, Ctrl-C mid-run, then resume.

As with one process (tests/test_resume_kill.py, test_resume_interrupt.py), the emulator in this
process is the judge: after the resume every device shows exactly one notification, none is
missing. Besides: the workers die with their parent (no orphan goes on sending), and the lock,
the journal and the summary are the campaign's, whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
from pathlib import Path

import pytest
from test_resume_support import (
    CAMPAIGN,
    Pushctl,
    check_exactly_once_visible,
    emulator,
    journal_tokens,
    make_audience,
    run_pushctl,
    send_argv,
    wait_for,
    wait_until,
    write_template,
)

from pushctl.errors import ExitCode
from pushctl.journal import FLUSH_ROWS, Journal

DEVICES = 20_000
CONCURRENCY = 100  # per provider, shared by the two workers
COLLAPSE_ID = f"pushctl-{CAMPAIGN}"


def _workers(pid: int) -> list[int]:
    """The worker processes of ``pid`` (its other child is multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and b"spawn_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has stopped doing anything)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_kill_9_of_the_parent_then_resume_shows_every_device_exactly_once(tmp_path: Path) -> None:
    kill_at = int(DEVICES * random.Random("kill-workers").uniform(0.3, 0.6))
    audience = make_audience(tmp_path / "audience.csv", DEVICES, dead=5)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", latency_ms=50) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = send_argv(cfg, template, audience.path, journal, "--concurrency", str(CONCURRENCY),
                         "--workers", "2")  # fmt: skip

        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= kill_at, first)
        workers = _workers(first.pid)
        assert len(workers) == 2
        first.signal(signal.SIGKILL)
        killed = first.wait()
        assert killed.code == -signal.SIGKILL
        # The workers die with their parent: nothing goes on sending.
        wait_for(lambda: not any(_alive(w) for w in workers), "the workers to die with their parent")
        wait_for(lambda: emu.open_connections() == 0, "the emulator to drop the dead clients")
        received_before = emu.inbox.tokens()
        assert 0 < len(received_before) < len(audience.valid), "killed too early or too late"
        inflight = journal_tokens(journal, state="inflight")
        assert journal_tokens(journal, outcome="delivered") <= received_before
        # stdout is never behind the journal: every device the workers committed has its line.
        printed = set(re.findall(r'"type":"result","token":"([^"]+)"', killed.stdout))
        assert printed
        assert journal_tokens(journal, state="settled") <= printed
        assert inflight, "the kill left nothing in flight: the test did not hit a running send"
        with Journal(journal) as j:
            assert j.run_info(CAMPAIGN).status == "abandoned"
        holder = json.loads((tmp_path / "locks" / f"{CAMPAIGN}.lock").read_text())
        assert holder["pid"] == first.pid  # one lock, the parent's

        resumed = run_pushctl(argv, tmp_path, "resumed")
        assert resumed.code == 1, resumed.stderr  # PARTIAL: the 10 dead tokens
        assert f"continuing {CAMPAIGN}" in resumed.stderr
        summary = resumed.summary()
        assert summary["total"] == DEVICES
        assert summary["outcomes"]["delivered"] == len(audience.valid)
        assert summary["outcomes"]["invalid_token"] == len(audience.invalid)

        duplicates = check_exactly_once_visible(emu, audience, COLLAPSE_ID)
    # Copies sent twice: only devices in flight in the journal, at most the requests in flight
    # plus one unwritten journal batch per worker.
    assert set(duplicates) <= inflight & received_before
    assert all(n == 2 for n in duplicates.values())
    assert len(duplicates) <= 2 * CONCURRENCY + 2 * FLUSH_ROWS, len(duplicates)
    assert not journal_tokens(journal, state="inflight")


@pytest.mark.slow
def test_ctrl_c_reaches_every_worker_once_then_resume_sends_nothing_twice(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", DEVICES, dead=5)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", latency_ms=50) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = send_argv(cfg, template, audience.path, journal, "--concurrency", str(CONCURRENCY),
                         "--workers", "2")  # fmt: skip
        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= DEVICES // 3, first)
        # A terminal's Ctrl-C signals the whole process group: the parent and both workers.
        os.killpg(first.pid, signal.SIGINT)
        stopped = first.wait()
        assert stopped.code == ExitCode.INTERRUPTED, stopped.stderr
        assert stopped.stderr.count("stopping: finishing requests in flight") == 1  # one press, one stop
        assert stopped.summary()["stopped"] == "interrupted"
        received = emu.inbox.tokens()
        assert 0 < len(received) < len(audience.valid)
        # Every answer was written by the workers before they left.
        assert journal_tokens(journal, outcome="delivered") == received
        assert not journal_tokens(journal, state="inflight") & received

        resumed = run_pushctl(argv, tmp_path, "resumed")
        assert resumed.code == 1, resumed.stderr
        assert resumed.summary()["outcomes"]["delivered"] == len(audience.valid)
        assert check_exactly_once_visible(emu, audience, COLLAPSE_ID) == {}
