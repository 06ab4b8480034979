"""Metrics for the alerts: the label cap (counter and over-cap gauge), the calibration queue."""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry

from detectors import background
from stream.metrics import Metrics, calibrations_pending


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_keys_over_cap_gauge_holds_in_a_steady_fleet_above_the_cap() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=2)
    keys = [f"agent-{i}" for i in range(5)]
    for _ in range(3):  # the same fleet, seen again and again
        admitted = [metrics.admits(k) for k in keys]
    assert admitted == [True, True, False, False, False]
    # Each refused key is counted once; the gauge says how many are refused now.
    assert sample(registry, "driftwatch_label_series_dropped_total") == 3.0
    assert sample(registry, "driftwatch_label_keys_over_cap") == 3.0

    metrics.forget("agent-4", ("latency",))  # an evicted key no longer counts
    assert sample(registry, "driftwatch_label_keys_over_cap") == 2.0
    metrics.forget("agent-0", ("latency",))  # an admitted key leaves the gauge alone
    assert sample(registry, "driftwatch_label_keys_over_cap") == 2.0
    assert sample(registry, "driftwatch_label_series_dropped_total") == 3.0


def test_keys_over_cap_gauge_is_zero_below_the_cap() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=10)
    assert all(metrics.admits(f"agent-{i}") for i in range(10))
    assert sample(registry, "driftwatch_label_keys_over_cap") == 0.0


def test_calibrations_pending_counts_the_queued_calibrations() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    workers = background.THREADS["compiled"]
    release = threading.Event()
    futures = [background.submit(release.wait, 30) for _ in range(workers + 3)]
    try:
        deadline = time.monotonic() + 10
        while sample(registry, "driftwatch_calibrations_pending") != 3.0:
            assert time.monotonic() < deadline, sample(registry, "driftwatch_calibrations_pending")
            time.sleep(0.01)
        assert calibrations_pending() == 3
    finally:
        release.set()
        for future in futures:
            future.result(timeout=30)
    assert sample(registry, "driftwatch_calibrations_pending") == 0.0


def test_checkpoint_outcomes_exist_before_the_first_round() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    for outcome in ("written", "failed"):
        assert sample(registry, "driftwatch_checkpoints_total", outcome=outcome) == 0.0
