"""Calibration is checked where it matters: false alarms measured on null streams.

The tolerances are statistical: about 640 false alarms are expected in each check, so the
pooled rate lands within +-25 % of the target unless the calibration is off (the naive per-test
rule on the same streams is several times over).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from detectors import DRIFT_STARTED, IncrementalKS
from detectors.calibration import calibrate_gap
from detectors.registry import detector_from_state, detector_state

ERT = 500.0
WINDOW = 30
REFERENCE = 600
EVENTS = 40_000
SEEDS = range(8)
# short episodes, so that many false alarms fit in a fast test
EPISODES = {"resolve_ratio": 0.9, "resolve_after": 5}

Generator = Callable[[np.random.Generator, int], np.ndarray]


def normal(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.normal(size=size)


def retries(rng: np.random.Generator, size: int) -> np.ndarray:
    # zero-inflated retry counts: ~85 % zeros, ties everywhere
    return ((rng.random(size) < 0.15) * (1 + rng.poisson(0.5, size))).astype(float)


def tokens(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.poisson(12, size).astype(float)


def false_alarm_ratio(make: Callable[[np.ndarray], IncrementalKS], gen: Generator) -> float:
    """Pooled false starts per event over null streams, divided by the target 1 / ERT."""
    starts = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        det = make(gen(rng, REFERENCE))
        stream = gen(rng, EVENTS)
        for i in range(0, EVENTS, 500):
            det.update_many(stream[i : i + 500])
            starts += sum(t.kind == DRIFT_STARTED for t in det.transitions)
    return starts / (len(SEEDS) * EVENTS) * ERT


@pytest.mark.parametrize("gen", [normal, retries, tokens], ids=["continuous", "retries", "tokens"])
def test_false_alarm_rate_matches_the_ert(gen: Generator) -> None:
    ratio = false_alarm_ratio(lambda ref: IncrementalKS(ref, WINDOW, ert=ERT, **EPISODES), gen)
    assert 0.75 <= ratio <= 1.25, ratio


@pytest.mark.parametrize("gen", [normal, retries], ids=["continuous", "retries"])
def test_false_alarm_rate_matches_the_ert_at_the_default_hysteresis(gen: Generator) -> None:
    # resolve_ratio 0.6, resolve_after = window: episodes last a few windows, a large share of
    # a null stream at this short ERT, so the calibration must simulate them faithfully
    ratio = false_alarm_ratio(lambda ref: IncrementalKS(ref, WINDOW, ert=ERT), gen)
    assert 0.75 <= ratio <= 1.25, ratio


def test_the_naive_per_test_rule_cries_wolf_on_the_same_streams() -> None:
    def naive(ref: np.ndarray) -> IncrementalKS:
        # p < 0.05 after every event; every fresh crossing counts (no episode hysteresis)
        return IncrementalKS(ref, WINDOW, alpha=0.05, resolve_ratio=1.0, resolve_after=1)

    ratio = false_alarm_ratio(naive, normal)
    assert ratio > 3.0, ratio


def test_ties_change_the_threshold() -> None:
    rng = np.random.default_rng(0)
    _, counts = np.unique(retries(rng, REFERENCE), return_counts=True)
    discrete = calibrate_gap(counts, WINDOW, ERT, **EPISODES)  # type: ignore[arg-type]
    continuous = calibrate_gap(np.ones(REFERENCE, dtype=int), WINDOW, ERT, **EPISODES)  # type: ignore[arg-type]
    assert discrete.model == "discrete" and continuous.model == "continuous"
    # with a few atoms the KS statistic is stochastically smaller: its threshold is lower
    assert discrete.gap_high < continuous.gap_high
    assert 0.5 / ERT < discrete.simulated_rate < 1.5 / ERT


def test_continuous_calibrations_are_shared_and_cached() -> None:
    first = calibrate_gap(np.ones(250, dtype=int), 25, 400.0)
    again = calibrate_gap(np.ones(250, dtype=int), 25, 400.0)
    assert again is first


def test_calibration_survives_a_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    det = IncrementalKS(tokens(rng, REFERENCE), WINDOW, ert=ERT, **EPISODES)  # type: ignore[arg-type]
    clone = detector_from_state(detector_state(det))
    assert clone.calibration == det.calibration
    stream = tokens(rng, 5000)
    det.update_many(stream)
    clone.update_many(stream)
    assert det.transitions == clone.transitions


def test_taking_the_state_does_not_wait_for_a_background_calibration() -> None:
    import threading

    from detectors import ks

    rng = np.random.default_rng(2)
    gate = threading.Event()
    blockers = [ks._calibrator().submit(gate.wait) for _ in range(2)]  # occupy both threads
    try:
        det = IncrementalKS(
            tokens(rng, REFERENCE), WINDOW, ert=ERT, wait_for_calibration=False, **EPISODES
        )  # type: ignore[arg-type]
        assert not det.calibration_ready
        clone = detector_from_state(
            detector_state(det)
        )  # returns although the calibration is queued
        queued = IncrementalKS(
            tokens(rng, REFERENCE), WINDOW, ert=ERT, wait_for_calibration=False, **EPISODES
        )  # type: ignore[arg-type]
        queued.close()  # a dropped stream's queued calibration is cancelled
        assert queued.calibration_ready and queued.calibration is None
    finally:
        gate.set()
        for b in blockers:
            b.result()
    # the copy calibrated again, with the same seed: same thresholds, same decisions
    assert clone.calibration is not None and det.calibration is not None
    assert replace(clone.calibration, seconds=0.0) == replace(det.calibration, seconds=0.0)
    stream = tokens(rng, 5000)
    det.update_many(stream)
    clone.update_many(stream)
    assert det.transitions == clone.transitions


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ert": 0.5}, "ert must be a finite number of observations > 1"),
        ({"ert": 100.0, "alpha": 0.01}, "give alpha or ert, not both"),
        ({"ert": 100.0, "duration": 60.0}, "ert calibration needs a count window"),
        ({"ert": 100.0, "min_window": 5}, "ert calibration needs a count window"),
    ],
)
def test_invalid_ert_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IncrementalKS([1.0, 2.0, 3.0], 10, **kwargs)  # type: ignore[arg-type]


def test_calibrate_gap_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="atom_counts"):
        calibrate_gap([], 10, 100.0)
    with pytest.raises(ValueError, match="ert must be"):
        calibrate_gap([1, 1], 10, float("inf"))


def _direct_starts(
    gaps: np.ndarray, high: int, low: int, after: int, mixed: int, mix: float, u: np.ndarray
) -> int:
    """The detector's episode rule, one step at a time (the oracle for the vectorised count)."""
    starts = 0
    for row, draws in zip(gaps, u, strict=True):
        in_drift, below = False, 0
        for g, v in zip(row, draws, strict=True):
            if not in_drift:
                if g >= high or (g >= mixed and v < mix):
                    in_drift, below, starts = True, 0, starts + 1
            else:
                below = below + 1 if g < low else max(below - 1, 0)
                if below >= after:
                    in_drift, below = False, 0
    return starts


def test_vectorised_episode_count_equals_the_step_by_step_rule() -> None:
    from detectors.calibration import _count_starts

    rng = np.random.default_rng(3)
    for _ in range(25):
        gaps = rng.integers(0, 100, size=(8, 200))
        u = rng.random(gaps.shape)
        high = int(rng.integers(40, 100))
        low = int(rng.integers(1, high + 1))
        after = int(rng.integers(1, 25))
        mixed, mix = int(rng.integers(0, high)), float(rng.random())
        assert _count_starts(gaps, high, low, after) == _direct_starts(
            gaps, high, low, after, high, 0.0, u
        )
        assert _count_starts(gaps, high, low, after, mixed, mix, u) == _direct_starts(
            gaps, high, low, after, mixed, mix, u
        )


def test_simulated_gaps_equal_the_detectors_exact_gap() -> None:
    """The simulation's G for a window equals IncrementalKS's own exact evaluation."""
    from detectors.calibration import _simulate

    n, m = 40, 6
    j = np.arange(n + 1, dtype=np.int64)
    rng = np.random.default_rng(0)
    gaps = _simulate(np.ones(n + 1), np.minimum(j + 1, n), j, n, m, 3, 50, rng)
    # replay the same cells through a real detector: reference 0..n-1, window values in gaps
    rng = np.random.default_rng(0)
    reference = np.arange(n, dtype=float)
    for row in range(3):
        cum = np.cumsum(rng.gamma(np.ones(n + 1)) / 1.0)
        cum = cum / cum[-1]
        cells = np.minimum(np.searchsorted(cum, rng.random(m + 50), side="right"), n)
        det = IncrementalKS(reference, m, min_window=m, alpha=0.5)
        det.update_many(cells[:m] - 0.5)  # cell j lies between reference values j-1 and j
        for t in range(50):
            det.update(cells[m + t] - 0.5)
            assert round(det.statistic * n * m) == gaps[row, t]


def test_long_erts_are_extrapolated_and_ordered() -> None:
    ones = np.ones(REFERENCE, dtype=int)
    short = calibrate_gap(ones, WINDOW, 2_000.0, **EPISODES)  # type: ignore[arg-type]
    long = calibrate_gap(ones, WINDOW, 1e6, **EPISODES)  # type: ignore[arg-type]
    assert not short.extrapolated and long.extrapolated
    assert short.gap_high < long.gap_high <= REFERENCE * WINDOW


def test_windowed_ks_calibrated_to_the_ert_of_its_schedule() -> None:
    from detectors import WindowedKS

    def make(ref: np.ndarray) -> IncrementalKS:
        return WindowedKS(ref, WINDOW, stride=3, ert=ERT, **EPISODES)  # type: ignore[return-value]

    ratio = false_alarm_ratio(make, normal)
    assert 0.75 <= ratio <= 1.25, ratio
