"""What keeps a campaign one campaign: fingerprints of its inputs and the per-campaign lock."""

from __future__ import annotations

import signal
from pathlib import Path

from test_resume_support import (
    CAMPAIGN,
    TEMPLATE,
    Pushctl,
    emulator,
    make_audience,
    run_pushctl,
    send_argv,
    wait_until,
    write_template,
)

from pushctl.errors import ExitCode


def test_changed_template_or_audience_is_refused_unless_forced(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", 40)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu") as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        first = run_pushctl(send_argv(cfg, template, audience.path, journal), tmp_path, "first")
        assert first.code == 0, first.stderr
        assert emu.inbox.total() == 40

        write_template(template, TEMPLATE.replace("Hello", "Hi"))
        changed = run_pushctl(send_argv(cfg, template, audience.path, journal), tmp_path, "template")
        assert changed.code == ExitCode.USAGE
        assert changed.stdout == ""
        assert f"campaign {CAMPAIGN} was started with a different template" in changed.stderr
        assert "--force" in changed.stderr and "Traceback" not in changed.stderr
        forced = run_pushctl(send_argv(cfg, template, audience.path, journal, "--force"), tmp_path, "forced")
        assert forced.code == 0, forced.stderr
        assert emu.inbox.total() == 40  # everyone was settled: nothing to send again

        bigger = make_audience(tmp_path / "audience.csv", 50)  # same seed: the 40 plus 10 new rows
        assert bigger.tokens[:40] == audience.tokens
        changed = run_pushctl(send_argv(cfg, template, bigger.path, journal), tmp_path, "audience")
        assert changed.code == ExitCode.USAGE
        assert f"campaign {CAMPAIGN} was started with a different audience" in changed.stderr
        assert emu.inbox.total() == 40
        forced = run_pushctl(send_argv(cfg, template, bigger.path, journal, "--force"), tmp_path, "forced2")
        assert forced.code == 0, forced.stderr
        assert forced.summary()["total"] == 50
        assert emu.inbox.total() == 50 and not emu.inbox.duplicates()


def test_second_process_on_a_campaign_exits_5_and_a_killed_holder_does_not_block(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", 2000)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", latency_ms=200) as emu:
        cfg = emu.write_profile(tmp_path / "config.toml")
        slow = send_argv(cfg, template, audience.path, journal, "--concurrency", "5")  # ~40 s in all
        holder = Pushctl(slow, tmp_path, "holder")
        try:
            wait_until(lambda: emu.inbox.total() >= 10, holder)
            second = run_pushctl(slow, tmp_path, "second")
            assert second.code == ExitCode.LOCKED
            assert second.stdout == ""
            assert f"campaign {CAMPAIGN} is being sent by pid {holder.pid} on " in second.stderr
            assert holder.proc.poll() is None  # the holder was not disturbed
        finally:
            holder.signal(signal.SIGKILL)
            holder.wait()
        # The kernel dropped the dead holder's lock: the same command resumes at once.
        fast = send_argv(cfg, template, audience.path, journal, "--concurrency", "500")
        resumed = run_pushctl(fast, tmp_path, "resumed")
        assert resumed.code == 0, resumed.stderr
        assert f"continuing {CAMPAIGN}" in resumed.stderr
        assert emu.inbox.tokens() == set(audience.tokens)
