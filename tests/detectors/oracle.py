"""Reference implementations the detectors are checked against (scipy is the oracle)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def assert_matches_scipy(result: object, reference: np.ndarray, window: np.ndarray) -> None:
    """Statistic to 1e-12, p-value to 1e-9 relative, location and sign exactly."""
    expected = stats.ks_2samp(reference, window)
    stat = result.statistic  # type: ignore[attr-defined]
    pvalue = result.pvalue  # type: ignore[attr-defined]
    assert abs(stat - expected.statistic) <= 1e-12, (stat, expected)
    assert abs(pvalue - expected.pvalue) <= 1e-9 * max(expected.pvalue, 1e-300), (pvalue, expected)
    assert result.statistic_location == expected.statistic_location, (result, expected)  # type: ignore[attr-defined]
    assert result.statistic_sign == expected.statistic_sign, (result, expected)  # type: ignore[attr-defined]


def time_window(values: list[float], times: list[float], duration: float, cap: int) -> np.ndarray:
    """Observations within ``duration`` of the latest (monotone-ised) time, at most ``cap``."""
    stamps = np.maximum.accumulate(np.asarray(times, dtype=float))
    now = stamps[-1]
    keep = np.asarray(values, dtype=float)[stamps > now - duration]
    return keep[-cap:]
