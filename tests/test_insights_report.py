"""`pushctl runs report` on the sample A/B campaign: funnel per variant and a verdict whose p-value
matches scipy's computation from the same counts; JSON gives the same figures."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import engagement_support
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from pushctl.cli.app import app


@pytest.fixture(scope="module")
def sample_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return engagement_support.sample_journal(tmp_path_factory.mktemp("report"))


def _report(journal: Path, *args: str, output: str = "json") -> tuple[int, str, str]:
    res = CliRunner().invoke(
        app, ["--output", output, "runs", "report", "spring-sale", "--journal", str(journal), *args],
        env={"COLUMNS": "100"},
    )  # fmt: skip
    return res.exit_code, res.stdout, res.stderr


def test_the_verdict_p_value_matches_scipy(sample_journal: Path) -> None:
    code, out, err = _report(sample_journal)
    assert code == 0, err
    report = json.loads(out)
    variants = {v["label"]: v for v in report["variants"]}
    assert set(variants) == {"short", "long"}
    short, long = variants["short"], variants["long"]
    # The funnel adds up, per variant and in total.
    for v in (short, long):
        assert v["targeted"] == v["sent"] == v["delivered"] > 1900
        assert v["delivered"] > v["opened"] >= v["converted"] > 0
    assert short["delivered"] + long["delivered"] == report["funnel"]["delivered"] == 4000
    assert short["opened"] + long["opened"] == report["funnel"]["opened"]
    # The same counts, straight from the journal.
    with sqlite3.connect(sample_journal) as conn:
        opened = dict(conn.execute(
            "SELECT variant, COUNT(*) FROM engagement_devices WHERE campaign_id = 'spring-sale' "
            "AND (opened_at IS NOT NULL OR converted_at IS NOT NULL) GROUP BY variant"
        ))  # fmt: skip
    assert opened == {"short": short["opened"], "long": long["opened"]}
    # scipy, from the same counts: the pooled two-proportion z-test, two-sided.
    k1, n1, k2, n2 = short["opened"], short["delivered"], long["opened"], long["delivered"]
    pooled = (k1 + k2) / (n1 + n2)
    z = (k1 / n1 - k2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    verdict = report["verdict"]
    assert verdict["test"] == "two-proportion z-test"
    assert verdict["p_value"] == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)
    assert verdict["p_value"] < 0.05 and verdict["significant"] and verdict["winner"] == "short"
    low, high = sps.binomtest(k1, n1).proportion_ci(method="wilson")
    assert short["open_rate"]["low"] == pytest.approx(low) and short["open_rate"]["high"] == pytest.approx(
        high
    )
    rates = f"{100 * k1 / n1:.1f}% vs {100 * k2 / n2:.1f}%"
    expected = f"variant `short` beats `long` on open rate: {rates}, p = {verdict['p_value']:.3g}"
    assert verdict["sentence"].startswith(expected)


def test_the_table_shows_the_funnel_per_variant_and_the_verdict(sample_journal: Path) -> None:
    code, out, err = _report(sample_journal, output="table")
    assert code == 0, err
    report = json.loads(_report(sample_journal)[1])
    rows = {line.split("│")[0].strip(): line for line in out.splitlines() if "│" in line}
    for v in report["variants"]:
        row = rows[f"variant {v['label']}"]
        assert f"{v['delivered']:,}" in row
    assert "Funnel: campaign spring-sale" in out and "Rates (Wilson 95% intervals)" in out
    assert report["verdict"]["sentence"].split(" (lift")[0] in " ".join(out.split())


def test_conversions_as_the_metric(sample_journal: Path) -> None:
    code, out, _ = _report(sample_journal, "--metric", "conversions")
    assert code == 0
    verdict = json.loads(out)["verdict"]
    assert verdict["metric"] == "conversions" and not verdict["significant"]
    assert "conversion rate" in verdict["sentence"] and "more deliveries per variant" in verdict["sentence"]


def test_an_unknown_campaign(sample_journal: Path) -> None:
    res = CliRunner().invoke(app, ["runs", "report", "spring-sael", "--journal", str(sample_journal)])
    assert res.exit_code == 2 and "did you mean spring-sale" in res.stderr
