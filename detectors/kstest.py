"""The null distribution of the two-sample Kolmogorov-Smirnov statistic, on integer gaps.

With samples of sizes ``n`` and ``m`` every ECDF difference is a multiple of ``1 / lcm(n, m)``,
so the statistic is ``D = h / lcm(n, m)`` for an integer ``h``. The two-sided p-value depends on
``(n, m, h)`` only; this module computes it exactly as :func:`scipy.stats.ks_2samp` does with its
default ``method='auto'`` (the exact distribution while ``max(n, m) <= 10_000``, Smirnov's
asymptotic ``kstwo`` otherwise) and caches it, so a detector that sees the same gap again pays
nothing.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy import stats

try:  # scipy's own exact routine, so that p-values agree with ks_2samp to the last bit
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - exercised only on a scipy without the private helper
    _attempt_exact_2kssamp = None

__all__ = ["MAX_EXACT_N", "KSResult", "critical_gap", "ks_pvalue"]

#: Sizes above which scipy's ``method='auto'`` switches from exact to asymptotic p-values.
MAX_EXACT_N = 10_000


class KSResult(NamedTuple):
    """Result of a two-sample KS comparison of a reference and a window.

    Attributes
    ----------
    statistic : float
        ``D = sup |F_ref - F_win|``.
    pvalue : float
        Two-sided p-value (scipy's ``method='auto'``).
    statistic_location : float
        The value at which the largest ECDF gap occurs (as scipy's ``statistic_location``).
    statistic_sign : int
        ``+1`` if ``F_ref > F_win`` there (the window is stochastically *larger*: its values
        moved up), ``-1`` if ``F_ref < F_win`` (the window moved down).
    n_reference : int
        Size of the reference sample.
    n_window : int
        Size of the window.
    """

    statistic: float
    pvalue: float
    statistic_location: float
    statistic_sign: int
    n_reference: int
    n_window: int


def _lcm(n: int, m: int) -> int:
    return n // math.gcd(n, m) * m


def _asymptotic(n: int, m: int, d: float) -> float:
    big, small = (float(n), float(m)) if n >= m else (float(m), float(n))
    en = big * small / (big + small)
    return float(stats.kstwo.sf(d, np.round(en)))


def _exact_by_samples(n: int, m: int, h: int) -> float:  # pragma: no cover - fallback
    # Two-valued samples whose ECDF gap is exactly h / lcm(n, m): a ones of n vs b ones of m.
    mg, ng = m // math.gcd(n, m), n // math.gcd(n, m)
    for a in range(n + 1):
        num = a * mg - h
        if num >= 0 and num % ng == 0 and num // ng <= m:
            b = num // ng
            x = np.r_[np.zeros(a), np.ones(n - a)]
            y = np.r_[np.zeros(b), np.ones(m - b)]
            return float(stats.ks_2samp(x, y).pvalue)
    raise ValueError(f"h={h} is not a reachable gap for n={n}, m={m}")


@lru_cache(maxsize=1 << 16)
def ks_pvalue(n: int, m: int, h: int) -> float:
    """Two-sided p-value of the two-sample KS test for the gap ``D = h / lcm(n, m)``.

    Parameters
    ----------
    n, m : int
        Sample sizes (reference first, as ``ks_2samp(reference, window)``).
    h : int
        Integer gap, ``0 <= h <= lcm(n, m)``.

    Returns
    -------
    float
        Equal to ``scipy.stats.ks_2samp(reference, window).pvalue`` for any samples of these
        sizes whose statistic is ``h / lcm(n, m)``.

    Examples
    --------
    >>> from scipy.stats import ks_2samp
    >>> round(ks_pvalue(4, 4, 3), 6), round(float(ks_2samp([1, 2, 3, 4], [4, 5, 6, 7]).pvalue), 6)
    (0.228571, 0.228571)
    """
    if n < 1 or m < 1:
        raise ValueError(f"sample sizes must be positive, got n={n}, m={m}")
    lcm = _lcm(n, m)
    if not 0 <= h <= lcm:
        raise ValueError(f"h must be in [0, {lcm}], got {h}")
    d = h / lcm
    if max(n, m) <= MAX_EXACT_N:
        if h == 0:
            return 1.0
        if _attempt_exact_2kssamp is None:  # pragma: no cover
            return _exact_by_samples(n, m, h)
        success, d, prob = _attempt_exact_2kssamp(n, m, math.gcd(n, m), d, "two-sided")
        if success:
            return float(np.clip(prob, 0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.clip(_asymptotic(n, m, d), 0.0, 1.0))


@lru_cache(maxsize=1 << 14)
def critical_gap(n: int, m: int, alpha: float) -> int:
    """Smallest integer gap ``h`` whose p-value is below ``alpha``.

    ``ks_pvalue(n, m, h) < alpha`` holds exactly for ``h >= critical_gap(n, m, alpha)``;
    ``lcm(n, m) + 1`` means no gap is significant at these sizes.

    Examples
    --------
    >>> h = critical_gap(100, 100, 0.05)
    >>> ks_pvalue(100, 100, h) < 0.05 <= ks_pvalue(100, 100, h - 1)
    True
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    lcm = _lcm(n, m)
    if ks_pvalue(n, m, lcm) >= alpha:
        return lcm + 1
    # Start from the asymptotic critical value and widen the bracket geometrically.
    d0 = math.sqrt(-math.log(alpha / 2.0) / 2.0 * (n + m) / (n * m))
    guess = min(max(1, int(d0 * lcm)), lcm)
    lo, hi = guess, guess  # invariant sought: p(lo - 1) >= alpha > p(hi)
    step = max(1, lcm // 1000)
    while lo > 0 and ks_pvalue(n, m, lo) < alpha:
        lo = max(0, lo - step)
        step *= 2
    step = max(1, lcm // 1000)
    while ks_pvalue(n, m, hi) >= alpha:
        hi = min(lcm, hi + step)
        step *= 2
    # now p(lo) >= alpha > p(hi): bisect
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ks_pvalue(n, m, mid) < alpha:
            hi = mid
        else:
            lo = mid
    return hi
