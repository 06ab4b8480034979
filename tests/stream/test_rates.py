"""The worker budget: measured rates, per-stream ERTs, recalibration, the score and ERT gauges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from detectors import IncrementalKS
from detectors.budget import DEFAULT_FALSE_ALARMS_PER_DAY, stream_ert
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.rates import MAX_BUDGET_ERT, UNMEASURED_ERT, RateClock, WorkerBudget
from stream.settings import load_settings
from stream.telemetry.records import Telemetry

# one feature, small windows: calibrations stay short even at the budget's long ERTs
SMALL = {"features": ("latency",), "window_size": 20, "reference_size": 50}


def events(key: str, n: int, per_second: float, *, start: float = 0.0, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    times = start + np.arange(n) / per_second
    return [
        Telemetry(key, float(t), (float(x),), 0, i)
        for i, (t, x) in enumerate(zip(times, rng.normal(size=n), strict=True))
    ]


def test_the_rate_is_measured_per_block_whatever_the_batches() -> None:
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.exponential(0.5, size=250)).tolist()
    budget = WorkerBudget(2.0, window_size=20, block=100)
    whole: dict[str, RateClock] = {}
    budget.observe(whole, "events", times)
    split: dict[str, RateClock] = {}
    for i in range(0, 250, 7):
        budget.observe(split, "events", times[i : i + 7])
    # the last complete block is events 100..199: (count - 1) / span
    expected = 99 / (times[199] - times[100])
    assert budget.rate(whole, "events") == pytest.approx(expected, rel=1e-12)
    assert split == whole
    assert math.isnan(budget.rate(whole, "labelled")) and math.isnan(budget.rate({}, "events"))


def test_the_ert_is_the_streams_share_of_the_budget() -> None:
    budget = WorkerBudget(2.0, window_size=20, block=100)
    k: dict[str, RateClock] = {}
    budget.observe(k, "events", [i * 0.25 for i in range(100)])  # 4 events/s
    # settling: up to the second block, any other ERT is due
    assert budget.due(k, "events", 15, "incremental_ks", 2_000_000) == 2_600_000
    assert budget.due(k, "events", 15, "incremental_ks", 2_600_000) is None
    budget.observe(k, "events", [25 + i * 0.25 for i in range(200)])  # two more blocks
    share = stream_ert(2.0, 15, 4.0, floor=budget.floor)
    assert budget.ert(k, "events", 15, "incremental_ks") == pytest.approx(share, rel=0.05)
    assert budget.ert(k, "events", 15, "incremental_ks") == 2_600_000  # two digits
    # river detectors stop at their longest calibrated ERT; an unmeasured rate gets the default
    assert budget.ert(k, "events", 15, "kswin") == 30_000
    assert budget.ert({}, "events", 15, "incremental_ks") == UNMEASURED_ERT
    # within 2x of the share nothing is due; beyond it the share is
    assert budget.due(k, "events", 15, "incremental_ks", 2_000_000) is None
    assert budget.due(k, "events", 40, "incremental_ks", 2_600_000) == 6_900_000
    assert budget.due(k, "events", 8, "incremental_ks", 2_600_000) is None
    assert budget.due(k, "events", 6, "incremental_ks", 2_600_000) == 1_000_000
    # a share longer than the calibrations are measured at is capped
    assert stream_ert(2.0, 100, 4.0) > MAX_BUDGET_ERT
    assert budget.ert(k, "events", 100, "incremental_ks") == MAX_BUDGET_ERT == 10_000_000
    assert budget.due(k, "events", 1000, "incremental_ks", MAX_BUDGET_ERT) is None


def test_each_stream_gets_its_share_from_its_warm_up_rate() -> None:
    settings = load_settings(environ={}, **SMALL)
    assert settings.worker_budget == DEFAULT_FALSE_ALARMS_PER_DAY == 0.5
    monitor = DriftMonitor(settings, track_accuracy=False, reproducible=False)
    slow_events, fast_events = events("slow", 50, 0.5), events("fast", 50, 2.0, seed=1)
    monitor.process([slow_events[0], fast_events[0]])  # both keys known from here on
    monitor.process(slow_events[1:] + fast_events[1:])
    slow, fast = (monitor.keys[k].features[0].detector for k in ("slow", "fast"))
    assert isinstance(slow, IncrementalKS) and isinstance(fast, IncrementalKS)
    # 2 streams known: ert = rate x 86,400 x 2 / 0.5
    assert slow.ert == pytest.approx(0.5 * 86_400 * 2 / 0.5, rel=0.05)
    assert fast.ert == pytest.approx(2.0 * 86_400 * 2 / 0.5, rel=0.05)
    for state in monitor.keys.values():
        state.features[0].detector.close()  # type: ignore[union-attr]


def test_a_stream_calibrated_among_few_is_recalibrated_when_the_fleet_arrives() -> None:
    # a budget of 2 a day: the shares below (43,000 and its multiples) are exact at two digits
    settings = load_settings(environ={}, false_alarms_per_day=2.0, **SMALL)
    monitor = DriftMonitor(settings, track_accuracy=False, reproducible=False)
    first = events("k0", 110, 1.0)
    monitor.process(first[:55])
    det = monitor.keys["k0"].features[0].detector
    assert isinstance(det, IncrementalKS)
    alone = det.ert
    assert alone == pytest.approx(86_400 / 2, rel=0.05)
    # one more key: 2 streams is within 2x of the one counted, nothing changes
    monitor.process(events("k1", 5, 1.0))
    monitor.process(first[55:57])
    assert det.ert == alone
    # five keys: 5x the count; k0 is recalibrated at the end of its next block of 50 events
    # (its 100th event), in place: same reference, window kept
    monitor.process([*events("k2", 5, 1.0), *events("k3", 5, 1.0), *events("k4", 5, 1.0)])
    monitor.process(first[57:99])
    assert det.ert == alone
    window, reference = det.window.copy(), det.reference.copy()
    monitor.process(first[99:])
    assert monitor.keys["k0"].features[0].detector is det
    assert det.ert == pytest.approx(5 * 86_400 / 2, rel=0.05)
    assert np.array_equal(det.reference, reference)
    xs = [e.values[0] for e in first[99:]]
    assert np.array_equal(det.window, np.concatenate([window, xs])[-window.size :])
    for state in monitor.keys.values():
        if state.features[0].detector is not None:
            state.features[0].detector.close()


def test_explicit_ert_is_used_as_before() -> None:
    settings = load_settings(environ={}, ert=5_000, **SMALL)
    assert settings.worker_budget is None
    monitor = DriftMonitor(settings, track_accuracy=False)
    monitor.process(events("k", 50, 0.5) + events("j", 50, 7.0, seed=2))
    assert {monitor.keys[k].features[0].detector.ert for k in "kj"} == {5_000}  # type: ignore[union-attr]


def test_drift_score_and_ert_are_exported_per_stream() -> None:
    settings = load_settings(environ={}, ert=5_000, **SMALL)
    registry = CollectorRegistry()
    monitor = DriftMonitor(
        settings, metrics=Metrics(registry), metrics_interval=0.0, track_accuracy=False
    )
    monitor.process(events("k", 120, 1.0, seed=4))
    det = monitor.keys["k"].features[0].detector
    assert isinstance(det, IncrementalKS)
    labels = {"key": "k", "feature": "latency"}
    score = registry.get_sample_value("driftwatch_drift_score", labels)
    # the oracle: scipy's KS statistic of the same samples over the detector's threshold
    from scipy import stats

    statistic = stats.ks_2samp(det.reference, det.window).statistic
    assert score == pytest.approx(statistic / det.alarm_threshold(), rel=1e-9)
    assert registry.get_sample_value("driftwatch_stream_ert", labels) == 5_000
    # an evicted key's series go with it
    monitor.metrics.forget("k", ("latency",))  # type: ignore[union-attr]
    assert registry.get_sample_value("driftwatch_drift_score", labels) is None
    assert registry.get_sample_value("driftwatch_stream_ert", labels) is None


def test_the_module_examples_hold() -> None:
    import doctest

    from stream.monitoring import rates

    result = doctest.testmod(rates)
    assert result.attempted >= 2 and result.failed == 0
