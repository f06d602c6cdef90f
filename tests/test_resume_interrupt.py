"""Ctrl-C (SIGINT) in the middle of a 20,000-device campaign, then resume with the same command.

A graceful stop lets the requests in flight finish and writes every answer before exiting
130, so the resume re-sends nothing that was received: not one copy twice on the wire.
``pushctl runs show`` afterwards reproduces the send's final summary.
"""

from __future__ import annotations

import random
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
    pushctl_argv,
    run_pushctl,
    send_argv,
    wait_until,
    write_template,
)

from pushctl.errors import ExitCode

DEVICES = 20_000


@pytest.mark.slow
def test_ctrl_c_then_resume_sends_every_device_once(tmp_path: Path) -> None:
    stop_at = int(DEVICES * random.Random("ctrl-c").uniform(0.3, 0.7))
    audience = make_audience(tmp_path / "audience.csv", DEVICES, dead=5)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", latency_ms=50) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = send_argv(cfg, template, audience.path, journal, "--concurrency", "100", "--workers", "1")

        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= stop_at, first)
        first.signal(signal.SIGINT)
        stopped = first.wait()
        assert stopped.code == ExitCode.INTERRUPTED, stopped.stderr
        assert "stopping: finishing requests in flight" in stopped.stderr
        summary = stopped.summary()
        assert summary["stopped"] == "interrupted" and summary["exit_code"] == ExitCode.INTERRUPTED

        # Every answer was written: the journal's delivered devices are exactly the inbox, and
        # nothing the emulator received is still in flight.
        received = emu.inbox.tokens()
        assert 0 < len(received) < len(audience.valid)
        assert journal_tokens(journal, outcome="delivered") == received
        assert not journal_tokens(journal, state="inflight") & received
        assert summary["outcomes"]["delivered"] == len(received)

        resumed = run_pushctl(argv, tmp_path, "resumed")
        assert resumed.code == ExitCode.PARTIAL, resumed.stderr  # the 10 dead tokens
        assert f"continuing {CAMPAIGN}" in resumed.stderr
        final = resumed.summary()
        assert final["total"] == DEVICES and final["stopped"] is None
        assert final["outcomes"]["delivered"] == len(audience.valid)

        assert check_exactly_once_visible(emu, audience, f"pushctl-{CAMPAIGN}") == {}

        # `runs show` rebuilds the same summary and the same per-device results from the journal.
        shown = run_pushctl(
            pushctl_argv(cfg, "runs", "show", CAMPAIGN, "--journal", str(journal), "--show", "all"),
            tmp_path,
            "show",
        )
    assert shown.code == 0, shown.stderr
    assert shown.summary() == final
    sent = sorted((d["token"], d["outcome"]) for d in stopped.json_lines() + resumed.json_lines()
                  if d["type"] == "result")  # fmt: skip
    listed = sorted((d["token"], d["outcome"]) for d in shown.json_lines() if d["type"] == "result")
    assert listed == sent
    assert len(listed) == DEVICES
