"""Every calibrated detector calibrates in the background through one helper."""

from __future__ import annotations

import threading

import numpy as np

from detectors import IncrementalKS, PageHinkleyDetector, WindowedKS
from detectors.background import submit


def test_windowed_ks_no_longer_calibrates_in_its_constructor() -> None:
    rng = np.random.default_rng(5)
    gate = threading.Event()
    blockers = [submit(gate.wait) for _ in range(2)]
    try:
        det = WindowedKS(rng.normal(size=400), 40, stride=4, ert=2_000, wait_for_calibration=False)
        inc = IncrementalKS(rng.normal(size=400), 40, ert=2_000, wait_for_calibration=False)
        assert not det.calibration_ready and not inc.calibration_ready
        det.update_many(rng.normal(size=200))
        inc.update_many(rng.normal(size=200))
        assert det.n_evaluations == 0  # not waited for: nothing is tested until it is ready
        assert np.isnan(det.statistic)
    finally:
        gate.set()
        for b in blockers:
            b.result()
    assert det.calibration is not None and det.calibration_ready
    det.update_many(rng.normal(size=200))
    assert det.n_evaluations == 50


def test_waiting_detectors_agree_with_a_synchronous_calibration() -> None:
    from detectors.calibration import calibrate_gap

    rng = np.random.default_rng(6)
    ref = rng.poisson(3, 500).astype(float)
    det = WindowedKS(ref, 50, stride=5, ert=5_000, guarantee=0.9)
    _, counts = np.unique(ref, return_counts=True)
    direct = calibrate_gap(counts, 50, 5_000, resolve_after=1, stride=5, guarantee=0.9)
    assert det.calibration is not None
    assert det.calibration.gap_high == direct.gap_high and det.calibration.mix == direct.mix


def test_river_adapters_use_the_python_pool() -> None:
    gate = threading.Event()
    blocker = submit(gate.wait, kind="python")
    try:
        det = PageHinkleyDetector(
            ert=5_000, reference=np.random.default_rng(7).normal(size=500), resolve_after=50
        )
        assert not det.calibration_ready
    finally:
        gate.set()
        blocker.result()
    assert det.calibration is not None and det.calibration_ready


def test_a_windowed_ks_pickled_while_calibrating_carries_the_result() -> None:
    import pickle

    det = WindowedKS(np.random.default_rng(11).normal(size=300), 30, stride=3, ert=2_003)
    clone = pickle.loads(pickle.dumps(det))
    assert clone.calibration is not None and clone.calibration == det.calibration
