"""kill -9 in the middle of a 20,000-device campaign, then resume with the same command.

The emulator (in this process, with latency so the send takes several seconds) is the judge:
every device ends with exactly one *visible* notification (all its copies share the campaign's
collapse id), none is missing, and the copies sent twice are only devices the journal still had
in flight when the process died: at most the requests on the wire plus the results not yet
written (one journal batch).
"""

from __future__ import annotations

import json
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
    run_pushctl,
    send_argv,
    wait_for,
    wait_until,
    write_template,
)

from pushctl.journal import FLUSH_ROWS, Journal

DEVICES = 20_000
CONCURRENCY = 100  # per provider: 200 requests in flight at most
COLLAPSE_ID = f"pushctl-{CAMPAIGN}"

# Early, middle and late in the run; the exact moment is drawn from a seeded RNG.
KILL_POINTS = {"early": (0.15, 0.35), "middle": (0.4, 0.6), "late": (0.65, 0.85)}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_resume_shows_every_device_exactly_once(tmp_path: Path, point: str) -> None:
    low, high = KILL_POINTS[point]
    kill_at = int(DEVICES * random.Random(f"kill-{point}").uniform(low, high))
    audience = make_audience(tmp_path / "audience.csv", DEVICES, dead=5)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", latency_ms=50) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        # One process (`--workers 1`); tests/test_scale_workers.py does this with two workers.
        argv = send_argv(cfg, template, audience.path, journal, "--concurrency", str(CONCURRENCY),
                         "--workers", "1")  # fmt: skip

        first = Pushctl(argv, tmp_path, "first")
        wait_until(lambda: emu.inbox.total() >= kill_at, first)
        first.signal(signal.SIGKILL)
        assert first.wait().code == -signal.SIGKILL
        # Requests the dead process had already written are still in the emulator's socket
        # buffers: they count as received (as at APNs) once the emulator has read them all.
        wait_for(lambda: emu.open_connections() == 0, "the emulator to drop the dead client")
        received_before = emu.inbox.tokens()
        assert 0 < len(received_before) < len(audience.valid), "killed too early or too late"

        # What the journal knew at the kill: nothing it calls delivered was not received.
        inflight = journal_tokens(journal, state="inflight")
        assert journal_tokens(journal, outcome="delivered") <= received_before
        assert inflight, "the kill left nothing in flight: the test did not hit a running send"
        # The dead process's lock is stale: the run shows as abandoned, its lock file names it.
        with Journal(journal) as j:
            assert j.run_info(CAMPAIGN).status == "abandoned"
        holder = json.loads((tmp_path / "locks" / f"{CAMPAIGN}.lock").read_text())
        assert holder["pid"] == first.pid

        resumed = run_pushctl(argv, tmp_path, "resumed")
        assert resumed.code == 1, resumed.stderr  # PARTIAL: the 10 dead tokens
        assert f"continuing {CAMPAIGN}" in resumed.stderr
        summary = resumed.summary()
        assert summary["total"] == DEVICES
        assert summary["outcomes"]["delivered"] == len(audience.valid)
        assert summary["outcomes"]["invalid_token"] == len(audience.invalid)
        assert summary["exit_code"] == 1 and summary["stopped"] is None

        duplicates = check_exactly_once_visible(emu, audience, COLLAPSE_ID)
    # Copies on the wire twice: only devices in flight in the journal, each at most twice, and
    # no more than the requests in flight plus one unwritten journal batch.
    assert set(duplicates) <= inflight & received_before
    assert all(n == 2 for n in duplicates.values())
    assert len(duplicates) <= 2 * CONCURRENCY + FLUSH_ROWS, len(duplicates)
    assert not journal_tokens(journal, state="inflight")
