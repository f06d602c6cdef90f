"""A resume (or the next cron run) is a new process, and must not need a new APNs JWT.

Under the strict, key-wide reading (samples/scenarios/strict-apns.toml, enforced here) APNs
refuses a new provider token for the same key sooner than 20 minutes after the last one
(429 TooManyProviderTokenUpdates). Each pushctl process used to sign its own JWT (in memory
only), so a resume within 20 minutes of a crash failed every iOS device it still had to send.
"""

from __future__ import annotations

from pathlib import Path

from test_resume_support import CAMPAIGN, emulator, make_audience, run_pushctl, send_argv, write_template


def test_a_second_process_within_20_minutes_reuses_the_apns_token(tmp_path: Path) -> None:
    audience = make_audience(tmp_path / "audience.csv", 20)
    more = make_audience(tmp_path / "more.csv", 20, seed=6)
    template = write_template(tmp_path / "template.yaml")
    journal = tmp_path / "journal.sqlite3"
    with emulator(tmp_path / "emu", token_update_rule="key") as emu:  # the strict, key-wide rule
        cfg = emu.write_profile(tmp_path / "config.toml")
        first = run_pushctl(send_argv(cfg, template, audience.path, journal), tmp_path, "first")
        assert first.code == 0, first.stderr
        argv = send_argv(cfg, template, more.path, journal, "--max-attempts", "1", campaign=f"{CAMPAIGN}-2")
        second = run_pushctl(argv, tmp_path, "second")
        reasons = {r["reason"] for r in second.summary()["reasons"]}
        assert second.code == 0, reasons  # today: 1, {'TooManyProviderTokenUpdates', ''}
        assert emu.inbox.tokens() == set(audience.tokens) | set(more.tokens)
