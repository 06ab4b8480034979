from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors import critical_gap, ks_pvalue


@pytest.mark.parametrize(
    ("n", "m"), [(1, 1), (3, 7), (50, 50), (400, 1000), (10_000, 9_000), (12_000, 3_000)]
)
def test_pvalue_equals_scipy_on_two_valued_samples(n: int, m: int) -> None:
    # samples with a zeros then ones: the gap is |a/n - b/m| for every (a, b)
    rng = np.random.default_rng(n * 31 + m)
    g = math.gcd(n, m)
    lcm = n // g * m
    for a, b in zip(rng.integers(0, n + 1, 6), rng.integers(0, m + 1, 6), strict=True):
        x = np.r_[np.zeros(a), np.ones(n - a)]
        y = np.r_[np.zeros(b), np.ones(m - b)]
        expected = stats.ks_2samp(x, y)
        h = abs(int(a) * (m // g) - int(b) * (n // g))
        assert h / lcm == pytest.approx(expected.statistic, abs=1e-12)
        assert ks_pvalue(n, m, h) == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n", "m", "alpha"), [(20, 20, 0.05), (300, 120, 0.01), (5000, 40, 1e-4)])
def test_critical_gap_is_the_first_significant_gap(n: int, m: int, alpha: float) -> None:
    h = critical_gap(n, m, alpha)
    assert ks_pvalue(n, m, h) < alpha <= ks_pvalue(n, m, h - 1)


def test_no_significant_gap_at_tiny_sizes() -> None:
    lcm = 2
    assert critical_gap(1, 2, 0.05) == lcm + 1


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="sample sizes must be positive"):
        ks_pvalue(0, 3, 1)
    with pytest.raises(ValueError, match=r"h must be in \[0, 6\], got 7"):
        ks_pvalue(2, 3, 7)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\), got 0"):
        critical_gap(3, 3, 0)
