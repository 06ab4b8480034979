from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import (
    DRIFT_RESOLVED,
    DRIFT_STARTED,
    ADWINDetector,
    DriftDetector,
    KSWINDetector,
    PageHinkleyDetector,
)
from detectors.registry import detector_from_state, detector_state


@pytest.mark.parametrize(
    "make",
    [
        lambda: ADWINDetector(resolve_after=200),
        lambda: KSWINDetector(alpha=1e-4, seed=3, resolve_after=200),
        lambda: PageHinkleyDetector(resolve_after=200),
    ],
)
def test_adapters_follow_the_contract(make: object) -> None:
    rng = np.random.default_rng(0)
    det: DriftDetector = make()  # type: ignore[operator]
    stream = np.r_[rng.normal(size=1500), rng.normal(3.0, 1.0, size=600)]
    kinds: list[str] = []
    open_after_shift = []
    for x in stream:
        det.update(x)
        kinds += [t.kind for t in det.transitions]
        if det.drift_detected:
            assert det.in_drift
        if 1500 < det.n_seen <= 1700:
            open_after_shift.append(det.in_drift)
    assert DRIFT_STARTED in kinds
    assert any(open_after_shift)  # the real shift is flagged
    assert math.isnan(det.statistic)
    clone = detector_from_state(detector_state(det))
    for x in rng.normal(3.0, 1.0, size=400):
        det.update(x)
        clone.update(x)
        assert det.transitions == clone.transitions
    assert kinds.count(DRIFT_STARTED) >= kinds.count(DRIFT_RESOLVED)


def test_batch_matches_single_updates() -> None:
    rng = np.random.default_rng(1)
    stream = np.r_[rng.normal(size=800), rng.normal(2.0, 1.0, size=400)]
    one, many = ADWINDetector(resolve_after=50), ADWINDetector(resolve_after=50)
    seen = []
    for x in stream:
        one.update(x)
        seen += one.transitions
    many.update_many(stream)
    assert many.transitions == seen
    assert many.in_drift == one.in_drift


def test_kswin_reports_rivers_p_value() -> None:
    det = KSWINDetector(seed=1)
    for x in np.random.default_rng(2).normal(size=300):
        det.update(x)
    assert 0.0 <= det.p_value <= 1.0


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ADWINDetector(delta=0.0), r"delta must be in \(0, 1\)"),
        (
            lambda: KSWINDetector(stat_size=200),
            r"stat_size must be an integer in \[1, window_size\)",
        ),
        (lambda: PageHinkleyDetector(threshold=-1.0), "threshold must be > 0"),
        (lambda: ADWINDetector(resolve_after=0), "resolve_after must be an integer >= 1"),
    ],
)
def test_invalid_arguments(make: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()  # type: ignore[operator]
