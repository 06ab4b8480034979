"""drift_score: the statistic over the alarm threshold (how close a stream is to alarming)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from detectors import DRIFT_STARTED, IncrementalKS, PageHinkleyDetector, WindowedKS


def test_incremental_ks_score_is_scipys_statistic_over_the_calibrated_threshold() -> None:
    rng = np.random.default_rng(8)
    ref = rng.normal(size=1_000)
    det = IncrementalKS(ref, 50, ert=10_000)
    assert math.isnan(det.drift_score)  # nothing tested yet
    xs = np.r_[rng.normal(size=3_000), rng.normal(0.8, 1.0, size=500)]
    scores = []
    for k in range(0, xs.size, 250):
        det.update_many(xs[k : k + 250])
        cal = det.calibration
        assert cal is not None
        d = stats.ks_2samp(ref, det.window).statistic
        assert math.isclose(det.drift_score, d / (cal.gap_high / 50_000), rel_tol=1e-12)
        scores.append(det.drift_score)
        for t in det.transitions:
            if t.kind == DRIFT_STARTED:
                assert t.statistic / t.threshold >= cal.floor / cal.gap_high
    assert max(scores[:12]) < 1.2 and max(scores[12:]) > 1.0


def test_alpha_rule_score_reaches_one_where_p_falls_below_alpha() -> None:
    rng = np.random.default_rng(9)
    det = WindowedKS(rng.normal(size=500), 100, stride=20, alpha=0.01)
    det.update_many(np.r_[rng.normal(size=400), rng.normal(1.0, 1.0, size=200)])
    assert det.in_drift and det.drift_score >= 1.0
    assert (det.p_value < 0.01) == (det.drift_score >= 1.0)


def test_page_hinkley_score_crosses_one_at_its_detection() -> None:
    rng = np.random.default_rng(10)
    det = PageHinkleyDetector(threshold=20.0, resolve_after=50)
    below = []
    for x in np.r_[rng.normal(size=2_000), rng.normal(2.0, 1.0, size=200)]:
        det.update(x)
        if det.drift_detected:
            assert det.drift_score > 1.0
            break
        below.append(det.drift_score)
    else:
        raise AssertionError("no detection")
    assert max(below) <= 1.0
