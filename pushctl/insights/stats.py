"""The statistics of a campaign report, with the standard library only (``math``).

- :func:`wilson`: the Wilson score interval of a proportion (good at small counts and at rates
  near 0, where the textbook ``p ± 1.96·√(p(1-p)/n)`` interval goes below zero);
- :func:`two_proportion_test`: the pooled two-proportion z-test (two-sided) for two variants;
- :func:`chi_squared_test`: Pearson's chi-squared test of a k×2 table (k variants × engaged or
  not), the survival function from the regularised upper incomplete gamma function;
- :func:`relative_lift`: ``p1/p2 - 1`` with the Katz log-ratio interval;
- :func:`sample_size`: deliveries per variant for a two-sided test at ``alpha`` with ``power`` to
  detect a relative lift over a baseline rate.

``tests/test_insights_stats.py`` checks every figure against ``scipy.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Z95",
    "TestResult",
    "chi_squared_sf",
    "chi_squared_test",
    "normal_quantile",
    "regularized_gamma_q",
    "relative_lift",
    "sample_size",
    "two_proportion_test",
    "wilson",
]

Z95 = 1.959963984540054
"""The standard normal quantile of 0.975 (two-sided 95%)."""


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials``; ``(0, 0)`` when there are no trials."""
    if trials <= 0:
        return 0.0, 0.0
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends (no 1e-17 from rounding)
    high = 1.0 if successes >= trials else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test's statistic, degrees of freedom (chi-squared) and two-sided p-value."""

    name: str
    statistic: float
    p_value: float
    df: int = 0

    # pytest collects classes named Test*: this one is not a test.
    __test__ = False


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> TestResult:
    """Pooled two-proportion z-test of ``k1/n1`` against ``k2/n2``, two-sided."""
    if n1 <= 0 or n2 <= 0:
        return TestResult("two-proportion z-test", 0.0, 1.0)
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return TestResult("two-proportion z-test", 0.0, 1.0)
    z = (k1 / n1 - k2 / n2) / se
    return TestResult("two-proportion z-test", z, min(1.0, 2 * normal_sf(abs(z))))


def chi_squared_test(table: list[tuple[int, int]]) -> TestResult:
    """Pearson's chi-squared test of independence of a k×2 table of ``(engaged, not engaged)``."""
    rows = [(a, b) for a, b in table if a + b > 0]
    total = sum(a + b for a, b in rows)
    columns = (sum(a for a, _ in rows), sum(b for _, b in rows))
    df = len(rows) - 1
    if df < 1 or total == 0 or 0 in columns:
        return TestResult("chi-squared test", 0.0, 1.0, max(df, 0))
    statistic = 0.0
    for row in rows:
        row_total = sum(row)
        for observed, column_total in zip(row, columns, strict=True):
            expected = row_total * column_total / total
            statistic += (observed - expected) ** 2 / expected
    return TestResult("chi-squared test", statistic, chi_squared_sf(statistic, df), df)


def chi_squared_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-squared with ``df`` degrees of freedom."""
    if x <= 0:
        return 1.0
    return regularized_gamma_q(df / 2, x / 2)


def regularized_gamma_q(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): a series below ``a + 1``, a continued fraction above (Numerical
    Recipes' ``gammq``), to about 1e-14."""
    if x < 0 or a <= 0:
        raise ValueError("Q(a, x) needs a > 0 and x >= 0")
    if x == 0:
        return 1.0
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denominator = a
        for _ in range(10_000):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    # Lentz's method for the continued fraction of Γ(a, x).
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


def relative_lift(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float] | None:
    """``(lift, low, high)`` of rate 1 over rate 2 (``p1/p2 - 1``) with the Katz log-ratio interval;
    None when either rate is zero (a ratio to nothing has no interval)."""
    if min(k1, k2) <= 0 or min(n1, n2) <= 0:
        return None
    ratio = (k1 / n1) / (k2 / n2)
    se = math.sqrt(max(0.0, 1 / k1 - 1 / n1 + 1 / k2 - 1 / n2))
    return ratio - 1, math.exp(math.log(ratio) - z * se) - 1, math.exp(math.log(ratio) + z * se) - 1


def normal_quantile(p: float) -> float:
    """The standard normal quantile (inverse CDF) by bisection on :func:`math.erfc`."""
    if not 0 < p < 1:
        raise ValueError("p must be in (0, 1)")
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if 1 - normal_sf(mid) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def sample_size(
    baseline: float, lift: float = 0.10, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Deliveries per variant for a two-sided two-proportion test at ``alpha`` to detect a relative
    ``lift`` over ``baseline`` with probability ``power``; None when the baseline is 0 or 1."""
    p1 = baseline
    p2 = baseline * (1 + lift)
    if not 0 < p1 < 1 or not 0 < p2 < 1:
        return None
    z_alpha = normal_quantile(1 - alpha / 2)
    z_beta = normal_quantile(power)
    mean = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(numerator**2 / (p2 - p1) ** 2)
