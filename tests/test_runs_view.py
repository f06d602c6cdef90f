"""The shared results view, driven directly as `pushctl send` will drive it."""

from __future__ import annotations

import io
import json

from pushctl.cli.console import OutputFormat, Terminal
from pushctl.cli.results_view import result_json_line, short_token, show_results, write_summary
from pushctl.delivery import Summary
from pushctl.model import Platform
from pushctl.outcome import Outcome, Result


def _terminal(output: OutputFormat) -> tuple[Terminal, io.StringIO]:
    out = io.StringIO()
    return Terminal(output=output, stdout=out, stderr=io.StringIO(), width=120, color=False), out


def _results() -> list[Result]:
    # Successes first on purpose: the view must put failures first by itself.
    ok = [Result(f"ok{i:020d}", Platform.IOS, Outcome.DELIVERED, attempts=1) for i in range(30)]
    bad = [Result(f"bad{i:019d}", Platform.ANDROID, Outcome.FAILED, "UNAVAILABLE", 503, 5) for i in range(3)]
    return ok + bad


def _summary(results: list[Result]) -> Summary:
    summary = Summary(started_at=0.0)
    for r in results:
        summary.add(r)
    summary.finish(at=2.0)
    return summary


def test_short_token() -> None:
    assert short_token("abcdef0123456789") == "abcd…6789"
    assert short_token("short") == "short"


def test_table_puts_failures_first_and_caps_rows() -> None:
    terminal, out = _terminal(OutputFormat.TABLE)
    results = _results()
    show_results(terminal, iter(results), _summary(results), show="all", limit=5, campaign_id="c-1")
    text = out.getvalue()
    table = text[: text.index("Summary")]
    assert table.count("failed") == 3 and table.count("delivered") == 2
    assert table.index("failed") < table.index("delivered")
    assert "… 28 more rows: see `pushctl runs export c-1`" in text
    assert "33 devices in 2.0 s (16/s), 12 retries" in text


def test_failures_view_with_no_failures() -> None:
    terminal, out = _terminal(OutputFormat.TABLE)
    results = _results()[:3]
    show_results(terminal, results, _summary(results))
    assert out.getvalue().startswith("no failures")
    assert "Summary" in out.getvalue() and "By variant" not in out.getvalue()


def test_json_mode_writes_only_json_lines() -> None:
    terminal, out = _terminal(OutputFormat.JSON)
    results = _results()
    show_results(terminal, results, _summary(results), show="failures", limit=1)
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    # Every device in JSON mode: --show and --limit only trim what a person reads.
    assert len(objs) == 34
    assert objs[0] == result_json_line(results[0]) and objs[0]["type"] == "result"
    assert objs[-1]["type"] == "summary" and objs[-1]["outcomes"]["failed"] == 3


def test_write_summary_json() -> None:
    terminal, out = _terminal(OutputFormat.JSON)
    write_summary(terminal, _summary(_results()))
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["total"] == 33
