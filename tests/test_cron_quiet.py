"""pushctl under cron: no terminal, no stdin, ``--quiet``; the JSON summary and exit code speak.

pushctl runs as a subprocess in a new session (no controlling terminal) with stdin from
/dev/null and stdout/stderr to files, and without ``--output``: JSON is the default off a
terminal. The journal is the default one (the user data dir, isolated per test).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_resume_support import (
    CAMPAIGN,
    emulator,
    make_audience,
    pushctl_argv,
    run_pushctl,
    write_template,
)

from pushctl.errors import ExitCode


def _cron_argv(cfg: Path, template: Path, audience: Path) -> list[str]:
    send = ["send", str(template), "--audience", str(audience), "--campaign", CAMPAIGN]
    return pushctl_argv(cfg, "--quiet", *send, output=None)


@pytest.mark.parametrize(("dead", "code"), [(0, ExitCode.OK), (3, ExitCode.PARTIAL)])
def test_cron_run_is_silent_and_a_rerun_sends_nothing(tmp_path: Path, dead: int, code: ExitCode) -> None:
    audience = make_audience(tmp_path / "audience.csv", 300, dead=dead)
    template = write_template(tmp_path / "template.yaml")
    with emulator(tmp_path / "emu", token_update_rule="key") as emu:  # the strict, key-wide rule
        cfg = emu.write_profile(tmp_path / "config.toml")
        argv = _cron_argv(cfg, template, audience.path)

        first = run_pushctl(argv, tmp_path, "first")
        assert first.code == code
        assert first.stderr == ""  # --quiet: nothing but errors, and per-device failures are results
        summary = first.summary()
        assert summary["exit_code"] == code and summary["stopped"] is None
        assert summary["outcomes"]["delivered"] == len(audience.valid) == emu.inbox.total()
        assert summary["outcomes"]["invalid_token"] == 2 * dead
        results = [d for d in first.json_lines() if d["type"] == "result"]
        assert len(results) == 300

        # The next cron tick finds the campaign complete: nothing is sent, same answer.
        inbox_before = emu.inbox.all()
        again = run_pushctl(argv, tmp_path, "again")
        assert emu.inbox.all() == inbox_before
        assert again.code == code
        assert again.stderr == ""
        assert [d["type"] for d in again.json_lines()] == ["summary"]  # no device was sent
        rerun = again.summary()
        for key in ("campaign", "total", "outcomes", "reasons", "platforms", "exit_code", "stopped"):
            assert rerun[key] == summary[key], key
