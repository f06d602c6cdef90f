"""`runs report --html`: one self-contained page that a real browser (headless Chromium) opens
without a console error, a failed request or a script, with its charts (SVG) and the funnel's
numbers in the page; user-supplied names are escaped; a clear error without matplotlib."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import engagement_support
import pytest
from chromium_support import Browser, chromium_binary
from typer.testing import CliRunner

from pushctl.cli.app import app
from pushctl.insights import build_report, render_html
from pushctl.journal import AbTest, EngagementData, FunnelRow


@pytest.fixture(scope="module")
def report_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    directory = tmp_path_factory.mktemp("html")
    journal = engagement_support.sample_journal(directory)
    page = directory / "report.html"
    res = CliRunner().invoke(
        app,
        ["--output", "json", "runs", "report", "spring-sale", "--journal", str(journal), "--html", str(page)],
    )
    assert res.exit_code == 0, res.stderr
    assert f"wrote the HTML report to {page}" in res.stderr
    return page, json.loads(res.stdout)


@pytest.fixture(scope="module")
def chromium() -> str:
    binary, why = chromium_binary()
    if binary is None:
        pytest.skip(f"no headless browser to render the report with: {why}")
    return binary


def test_the_page_is_self_contained(report_page: tuple[Path, dict[str, object]]) -> None:
    page, _ = report_page
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 5
    assert "<script" not in text and "<link" not in text and "@import" not in text
    # Every reference stays inside the page (#clip-path ids, glyphs), none points at a file or host.
    references = re.findall(r"(?:src|href)\s*=\s*[\"']([^\"']*)|url\(([^)]*)\)", text)
    assert references and all(ref.lstrip("\"'").startswith("#") for pair in references for ref in pair if ref)


@pytest.mark.slow
def test_chromium_renders_the_report_without_errors(
    report_page: tuple[Path, dict[str, object]], chromium: str, tmp_path: Path
) -> None:
    page, report = report_page
    with Browser(chromium, tmp_path / "profile") as browser:
        loaded = browser.load(page.as_uri())
        # The judge can fail: a broken page next to it shows every kind of trouble it looks for.
        broken = tmp_path / "broken.html"
        broken.write_text(
            '<!DOCTYPE html><img src="missing.png"><script>console.error("x"); nope();</script>'
        )
        control = browser.load(broken.as_uri())
    assert len(control.errors) >= 3, control.errors
    assert loaded.errors == [], loaded.errors
    assert loaded.requests == [page.as_uri()]  # nothing fetched besides the page itself
    assert loaded.counts["svg"] == 5 and loaded.counts["scripts"] == 0
    assert loaded.counts["paths"] > 50  # the charts have bars, lines and markers, not empty frames
    for chart in ("funnel", "timeline", "latency", "reasons", "variants"):
        assert f'id="chart-{chart}"' in loaded.dom
    funnel = report["funnel"]
    assert isinstance(funnel, dict)
    text = loaded.text
    for key in ("targeted", "sent", "delivered", "opened", "converted"):
        assert f"{funnel[key]:,}" in text, key
    assert "variant short beats long on open rate" in " ".join(text.split())
    assert loaded.screenshot.startswith(b"\x89PNG") and len(loaded.screenshot) > 20_000
    shot = Path(os.environ.get("PUSHCTL_REPORT_SCREENSHOT", tmp_path / "report.png"))
    shot.write_bytes(loaded.screenshot)


def test_user_supplied_names_are_escaped() -> None:
    hostile = '<script>alert("x")</script> $x$ -->'
    rows = [
        FunnelRow(100, 100, 90, 9, 2, 0, 0.0, phase="test", variant=hostile, platform="ios"),
        FunnelRow(100, 100, 95, 5, 1, 0, 0.0, phase="test", variant="plain", platform="ios"),
    ]
    data = EngagementData(
        campaign_id="c-1", ab_test=AbTest("c-1", 0.1, 0.0, winner=hostile), rows=rows,
        deliveries=[1.0, 2.0], opens=[5.0], conversions=[], latencies_ms=[10.0, 20.0],
        reasons=[("rejected", f"template {hostile}", 3)], slots=[],
    )  # fmt: skip
    page = render_html(build_report(data))
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "$x$" in page  # text, not a formula


def test_without_matplotlib_the_error_names_the_extra(
    report_page: tuple[Path, dict[str, object]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    page, _ = report_page
    journal = page.parent / "demo.sqlite3"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    res = CliRunner().invoke(
        app, ["runs", "report", "spring-sale", "--journal", str(journal), "--html", str(tmp_path / "r.html")]
    )
    assert res.exit_code == 2
    assert "pip install 'pushctl[report]'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "r.html").exists()
