"""The compiled null process is the detector: same gaps, same alarms, same episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors import DRIFT_STARTED, IncrementalKS
from detectors.calibration import KSCalibration, NullRuns
from detectors.kernels import boundary_uniform, count_starts, record_streams


def _slot_ref(det: IncrementalKS) -> np.ndarray:
    return np.diff(det._ref_end, prepend=0)


def test_kernel_gaps_are_the_exact_ks_statistic() -> None:
    rng = np.random.default_rng(3)
    ref = rng.poisson(4, 300).astype(float)
    det = IncrementalKS(ref, window_size=40)
    xs = rng.poisson(4.5, 400).astype(float)
    slots = det._slots_of(xs).astype(np.int64)[None, :]
    gaps, index, _ = record_streams(slots, _slot_ref(det), 300, 40, 1, 0, 0, 1)
    assert index.tolist() == list(range(40, 401))
    for g, i in zip(gaps[::37], index[::37], strict=True):
        d = stats.ks_2samp(ref, xs[i - 40 : i]).statistic
        assert g / (300 * 40) == pytest.approx(d, abs=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "two-valued", "few-valued"])
def test_kernel_counts_the_detectors_own_starts(kind: str) -> None:
    """Episode starts from the kernel equal IncrementalKS's on the same stream, with the
    randomised boundary, for every threshold at or above the recorded level."""
    rng = np.random.default_rng([4, len(kind)])
    draw = {
        "continuous": lambda k: rng.lognormal(0, 1, k),
        "two-valued": lambda k: (rng.random(k) < 0.05).astype(float),
        "few-valued": lambda k: rng.integers(0, 3, k).astype(float),
    }[kind]
    ref, xs = draw(500), draw(30_000)
    det = IncrementalKS(ref, window_size=50)
    slots = det._slots_of(xs).astype(np.int64)[None, :]
    m, n = 50, 500
    gaps, index, bounds = record_streams(slots, _slot_ref(det), n, m, 1, 0, 0, 50)
    levels = np.unique(gaps)
    high = int(np.quantile(gaps, 0.995, method="higher"))
    mixed = int(levels[levels < high][-1])
    for mix in (0.0, 0.35):
        low = math.ceil(0.6 * high)
        cal = KSCalibration(high, low, mixed, mix, 1e4, 0.0, "discrete", 0, 0.0)
        det = IncrementalKS(ref, window_size=50)
        det._calibration = cal  # its gaps are the thresholds of the full window
        starts = 0
        for k in range(0, xs.size, 700):
            det.update_many(xs[k : k + 700])
            starts += sum(t.kind == DRIFT_STARTED for t in det.transitions)
        assert starts > 5
        got = count_starts(gaps, index, bounds, high, low, mixed, mix, 50, 0)
        assert got == starts
        h_min = mixed if mix > 0 else high
        runs = record_streams(slots, _slot_ref(det), n, m, 1, h_min, math.ceil(0.6 * h_min), 50)
        kept = NullRuns(*runs, observations=0, h_min=h_min, resolve_after=50, seed=0)
        assert kept.starts(high, low, mixed, mix) == starts


def test_boundary_draw_is_uniform_and_fixed_per_index() -> None:
    draws = np.array([boundary_uniform(i, 7) for i in range(20_000)])
    assert boundary_uniform(123, 7) == boundary_uniform(123, 7)
    assert stats.kstest(draws, "uniform").pvalue > 1e-3
