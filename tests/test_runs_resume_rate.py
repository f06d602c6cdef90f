"""Issue 11, defect 6: after a resume, the rate divides the last run's devices by the last run's time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushctl import clock
from pushctl.cli.results_view import _totals_line
from pushctl.journal import Journal
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def _settle(run: object, tokens: list[str]) -> None:
    for token in tokens:
        run.record(Result(token, Platform.IOS, Outcome.DELIVERED, attempts=1))  # type: ignore[attr-defined]


def test_a_resumed_campaign_reports_the_last_runs_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(clock, "timestamp", lambda: now[0])
    with Journal(tmp_path / "journal.sqlite3") as journal:
        first = journal.open_run("c1", template_fp="t", audience_fp="a", options={})
        now[0] = 1001.0
        _settle(first, [f"a{i}" for i in range(30)])
        now[0] = 1010.0
        first.finish(stopped_reason="interrupted")
        now[0] = 2000.0
        second = journal.open_run("c1", template_fp="t", audience_fp="a", options={})
        now[0] = 2001.0
        _settle(second, [f"b{i}" for i in range(10)])
        now[0] = 2004.0
        second.finish()
        summary = journal.summary("c1")
    assert (summary.total, summary.session_total, summary.duration()) == (40, 10, 4.0)
    assert summary.throughput() == 2.5  # 10 devices in 4 s, not 40 devices in 4 s
    assert summary.to_dict()["last_run_total"] == 10
    line = _totals_line(summary)
    assert "40 devices; the last run settled 10 in 4.0 s (2/s)" in line, line


def test_a_single_run_reads_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [500.0]
    monkeypatch.setattr(clock, "timestamp", lambda: now[0])
    with Journal(tmp_path / "journal.sqlite3") as journal:
        run = journal.open_run("c2", template_fp="t", audience_fp="a", options={})
        _settle(run, ["x", "y"])
        now[0] = 502.0
        run.finish()
        summary = journal.summary("c2")
    assert summary.session_total is None and summary.throughput() == 1.0
    assert _totals_line(summary).startswith("campaign c2, 2 devices in 2.0 s (1/s)")
