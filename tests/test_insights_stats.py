"""The report's statistics against scipy.stats (an independent implementation of each figure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.stats import contingency

from pushctl.insights import (
    VariantStat,
    chi_squared_sf,
    chi_squared_test,
    decide_verdict,
    relative_lift,
    sample_size,
    two_proportion_test,
    wilson,
)


def _z_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """The pooled two-proportion z-test's two-sided p-value, by scipy's normal distribution."""
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k1 / n1 - k2 / n2) / se
    return float(2 * sps.norm.sf(abs(z)))


@given(st.integers(0, 5000), st.integers(1, 5000))
@settings(max_examples=200, deadline=None)
def test_wilson_matches_scipy(k: int, n: int) -> None:
    k = min(k, n)
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


@given(st.integers(1, 399), st.integers(400, 5000), st.integers(1, 399), st.integers(400, 5000))
@settings(max_examples=200, deadline=None)
def test_two_proportion_p_value_matches_scipy(k1: int, n1: int, k2: int, n2: int) -> None:
    result = two_proportion_test(k1, n1, k2, n2)
    assert result.p_value == pytest.approx(_z_test(k1, n1, k2, n2), rel=1e-9, abs=1e-15)
    # The same test is the uncorrected chi-squared test of the 2x2 table (z² = chi²).
    chi2, p, _, _ = contingency.chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
    assert result.statistic**2 == pytest.approx(chi2, rel=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-7, abs=1e-15)


@given(st.lists(st.tuples(st.integers(1, 300), st.integers(0, 3000)), min_size=2, max_size=8))
@settings(max_examples=200, deadline=None)
def test_chi_squared_matches_scipy(rows: list[tuple[int, int]]) -> None:
    table = [(a, b + 1) for a, b in rows]  # every row and column has something
    result = chi_squared_test(table)
    chi2, p, dof, _ = contingency.chi2_contingency(table, correction=False)
    assert result.df == dof
    assert result.statistic == pytest.approx(chi2, rel=1e-9, abs=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-7, abs=1e-14)


@pytest.mark.parametrize("df", [1, 2, 3, 5, 7, 10, 50])
@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.84, 10.0, 40.0, 150.0])
def test_chi_squared_survival_function(df: int, x: float) -> None:
    assert chi_squared_sf(x, df) == pytest.approx(sps.chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_lift_and_its_interval() -> None:
    lift = relative_lift(122, 2000, 86, 2000)
    assert lift is not None
    ratio = (122 / 2000) / (86 / 2000)
    se = math.sqrt(1 / 122 - 1 / 2000 + 1 / 86 - 1 / 2000)
    z = sps.norm.ppf(0.975)
    assert lift[0] == pytest.approx(ratio - 1)
    assert lift[1] == pytest.approx(math.exp(math.log(ratio) - z * se) - 1)
    assert lift[2] == pytest.approx(math.exp(math.log(ratio) + z * se) - 1)
    assert relative_lift(0, 100, 5, 100) is None


def test_sample_size_for_a_ten_percent_lift() -> None:
    p1, p2 = 0.05, 0.055
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    mean = (p1 + p2) / 2
    expected = (za * math.sqrt(2 * mean * (1 - mean)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2
    assert sample_size(0.05) == math.ceil(expected / (p2 - p1) ** 2)
    assert sample_size(0.0) is None


def test_verdicts_in_words() -> None:
    win = decide_verdict([VariantStat("long", 2000, 86), VariantStat("short", 2000, 122)])
    assert win is not None and win.significant and win.winner == "short"
    assert win.p_value == pytest.approx(_z_test(122, 2000, 86, 2000))
    assert win.sentence.startswith("variant `short` beats `long` on open rate: 6.1% vs 4.3%, p = 0.0")
    assert "lift +41.9%" in win.sentence

    tie = decide_verdict([VariantStat("A", 500, 26), VariantStat("B", 500, 25)])
    assert tie is not None and not tie.significant and tie.winner is None
    assert tie.more_per_variant is not None and tie.more_per_variant > 10_000
    assert (
        f"about {tie.more_per_variant:,} more deliveries per variant would detect a 10% lift" in tie.sentence
    )

    three = decide_verdict(
        [VariantStat("a", 3000, 300), VariantStat("b", 3000, 150), VariantStat("c", 3000, 140)]
    )
    assert three is not None and three.test == "chi-squared test" and three.winner == "a"
    _, p, _, _ = contingency.chi2_contingency([[300, 2700], [150, 2850], [140, 2860]], correction=False)
    assert three.p_value == pytest.approx(p)

    close = decide_verdict(
        [VariantStat("a", 3000, 300), VariantStat("b", 3000, 290), VariantStat("c", 3000, 140)]
    )
    assert close is not None and close.p_value < 0.05 and close.winner is None
    assert "not told apart yet" in close.sentence

    assert decide_verdict([VariantStat("A", 100, 0), VariantStat("B", 100, 0)]).sentence.startswith(  # type: ignore[union-attr]
        "no opens recorded yet"
    )
    assert decide_verdict([VariantStat("A", 100, 3)]) is None
