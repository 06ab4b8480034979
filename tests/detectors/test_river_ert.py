"""river adapters calibrated to an expected run time (``ert``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from detectors import ADWINDetector, KSWINDetector, PageHinkleyDetector
from detectors.base import DRIFT_STARTED
from detectors.registry import detector_from_state, detector_state
from detectors.river_adapters import RiverDetector
from detectors.river_calibration import (
    _kswin_pvalues,
    kswin_ladder,
    null_streams,
)

#: Systematic tolerance on the rate (the calibration targets the average over references).
TOLERANCE = 0.30


def starts(det: RiverDetector, xs: np.ndarray) -> int:
    det.update_many(xs)
    return sum(1 for t in det.transitions if t.kind == DRIFT_STARTED)


def interval(expected: float) -> tuple[int, int]:
    """Counts accepted for ``expected`` starts: +-30 % and a two-sided 99 % Poisson margin."""
    lo = int(stats.poisson.ppf(0.005, (1 - TOLERANCE) * expected))
    hi = int(stats.poisson.ppf(0.995, (1 + TOLERANCE) * expected))
    return lo, hi


def mis_set(det: RiverDetector) -> RiverDetector:
    """The same adapter with its calibrated parameter off by a factor that moves the rate ~3x."""
    cal = det.calibration
    assert cal is not None
    if isinstance(det, ADWINDetector):
        return ADWINDetector(cal.value / 4, resolve_after=det.resolve_after)
    assert isinstance(det, PageHinkleyDetector)
    return PageHinkleyDetector(threshold=0.6 * cal.value, resolve_after=det.resolve_after)


@pytest.mark.parametrize("cls", [ADWINDetector, PageHinkleyDetector])
def test_null_false_alarm_rate_matches_ert(cls: type[RiverDetector]) -> None:
    ert, n_refs, length = 2_000, 3, 100_000
    rng = np.random.default_rng(11)
    count = wrong = 0
    for seed in range(n_refs):
        det = cls(ert=ert, reference=rng.normal(size=1000), seed=seed, resolve_after=100)  # type: ignore[call-arg]
        cal = det.calibration
        assert cal is not None and not cal.extrapolated
        xs = rng.normal(size=length)
        count += starts(det, xs)
        wrong += starts(mis_set(det), xs)
    lo, hi = interval(n_refs * length / ert)
    assert lo <= count <= hi, (count, lo, hi)
    assert not lo <= wrong <= hi, ("the test cannot tell a mis-set detector", wrong, lo, hi)


def test_null_rate_on_a_discrete_reference() -> None:
    # zero-inflated counts: the Bayesian bootstrap keeps the ties; PageHinkley on their scale
    ert, length = 2_000, 200_000
    rng = np.random.default_rng(5)

    def retries(size: int) -> np.ndarray:
        return np.where(rng.random(size) < 0.15, 1.0 + rng.poisson(0.5, size), 0.0)

    det = PageHinkleyDetector(ert=ert, reference=retries(1000), resolve_after=100)
    assert det.calibration is not None and det.calibration.model == "discrete"
    lo, hi = interval(length / ert)
    assert lo <= starts(det, retries(length)) <= hi


def test_kswin_rate_matches_its_rung_and_the_rung_is_nearest() -> None:
    ert, length = 300, 15_000
    rng = np.random.default_rng(3)
    det = KSWINDetector(
        window_size=50, stat_size=20, ert=ert, reference=rng.normal(size=1000), resolve_after=20
    )
    cal = det.calibration
    assert cal is not None and not cal.extrapolated
    _rungs, alphas = kswin_ladder(20)
    k = int(np.flatnonzero(np.isclose(alphas, cal.value))[0])
    # the chosen rung is within half a rung of the target on the log scale
    assert abs(math.log(cal.simulated_ert / ert)) < 1.0
    xs = rng.normal(size=length)
    lo, hi = interval(length * cal.simulated_rate)
    assert lo <= starts(det, xs) <= hi
    neighbour = KSWINDetector(float(alphas[k - 1]), 50, 20, resolve_after=20)  # one rung lower
    assert not lo <= starts(neighbour, xs) <= hi


def test_kswin_replay_detects_where_the_adapter_does() -> None:
    rng = np.random.default_rng(8)
    xs = np.r_[rng.normal(size=400), rng.normal(1.5, 1.0, size=400)]
    _rungs, alphas = kswin_ladder(30)
    alpha = float(alphas[11])
    p = _kswin_pvalues(xs, 100, 30, river_seed=4)
    first = int(np.flatnonzero(p <= alpha)[0])
    det = KSWINDetector(alpha, seed=4)
    det.update_many(xs)
    assert det.transitions[0].kind == DRIFT_STARTED
    assert det.transitions[0].index == first + 1


def test_null_streams_keep_ties_and_scale() -> None:
    rng = np.random.default_rng(0)
    discrete = rng.poisson(3.0, size=500).astype(float)
    xs, model = null_streams(discrete, 4, 1000, rng)
    assert model == "discrete" and set(np.unique(xs)) <= set(np.unique(discrete))
    cont = rng.normal(10.0, 2.0, size=500)
    ys, model = null_streams(cont, 4, 5000, rng)
    assert model == "continuous"
    assert cont.min() <= ys.min() and ys.max() <= cont.max()
    assert abs(ys.std() - 2.0) < 0.3 and abs(ys.mean() - 10.0) < 0.3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda r: ADWINDetector(0.01, ert=5_000, reference=r),
            r"give delta or ert, not both \(got delta=0.01, ert=5000\)",
        ),
        (
            lambda r: KSWINDetector(0.01, ert=5_000, reference=r),
            "give alpha or ert, not both",
        ),
        (
            lambda r: PageHinkleyDetector(threshold=20.0, ert=5_000, reference=r),
            "give threshold or ert, not both",
        ),
        (lambda r: ADWINDetector(ert=6_000), "ert needs a reference sample"),
        (lambda r: PageHinkleyDetector(reference=r), "reference is only used to calibrate ert"),
        (lambda r: ADWINDetector(ert=math.inf, reference=r), "ert must be a finite number"),
        (lambda r: ADWINDetector(ert="1e4", reference=r), "ert must be a finite number"),
        (
            lambda r: ADWINDetector(ert=2_000, reference=r),
            r"ert=2000 is too short.*use ert >= 5005",
        ),
        (
            lambda r: KSWINDetector(ert=300, reference=r, resolve_after=10),
            r"ert=300 is too short.*use ert >= 500",
        ),
        (
            lambda r: KSWINDetector(ert=50_000, reference=r),
            r"above the longest ERT calibrated for alpha \(30,000\)",
        ),
        (
            lambda r: PageHinkleyDetector(ert=2e6, reference=r),
            r"above the longest ERT calibrated for threshold \(1,000,000\)",
        ),
        (
            lambda r: ADWINDetector(ert=6_000, reference=[0.0, math.nan]),
            "reference must hold finite numbers only",
        ),
    ],
)
def test_invalid_ert_arguments(make: Callable[[Any], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make(np.random.default_rng(0).normal(size=200))


@pytest.mark.parametrize("cls", [ADWINDetector, PageHinkleyDetector])
def test_calibration_is_reproducible_with_the_seed(cls: type[RiverDetector]) -> None:
    ref = np.random.default_rng(2).normal(size=500)
    a, b, c = (cls(ert=2_000, reference=ref, seed=s, resolve_after=100) for s in (1, 1, 2))  # type: ignore[call-arg]
    assert a.calibration is not None and b.calibration is not None and c.calibration is not None
    assert a.calibration.value == b.calibration.value
    assert a.calibration.simulated_rate == b.calibration.simulated_rate
    assert a.calibration.value != c.calibration.value
    assert a.calibration.seconds > 0


def test_restored_detector_continues_identically() -> None:
    rng = np.random.default_rng(4)
    det = PageHinkleyDetector(ert=2_000, reference=rng.normal(size=500), resolve_after=100)
    det.update_many(rng.normal(size=3000))
    clone = detector_from_state(detector_state(det))
    assert clone.threshold == det.threshold == det.calibration.value  # type: ignore[union-attr]
    xs = np.r_[rng.normal(size=3000), rng.normal(2.0, 1.0, size=500)]
    det.update_many(xs)
    clone.update_many(xs)
    assert det.transitions == clone.transitions and det.transitions
    assert det.n_seen == clone.n_seen


def test_state_during_calibration_recalibrates_the_copy() -> None:
    ref = np.random.default_rng(6).normal(size=500)
    det = ADWINDetector(ert=2_000, reference=ref, resolve_after=100, wait_for_calibration=False)
    clone = detector_from_state(detector_state(det))
    assert clone.calibration is not None and det.calibration is not None
    assert clone.calibration.value == det.calibration.value


def test_updates_before_the_calibration_is_ready_are_not_tested() -> None:
    ref = np.random.default_rng(9).normal(size=500)
    det = ADWINDetector(ert=2_000, reference=ref, resolve_after=100, wait_for_calibration=False)
    det.update_many(np.full(50, 100.0))  # a calibration takes >0.1 s: nothing is tested yet
    assert not det.calibration_ready and det.n_seen == 50 and not det.in_drift
    assert det.delta is None
    deadline = time.monotonic() + 60
    while not det.calibration_ready and time.monotonic() < deadline:
        det.update(0.0)
        time.sleep(0.01)
    det.update(0.0)
    assert det.calibration is not None and det.delta == det.calibration.value
