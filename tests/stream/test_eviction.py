"""Key eviction at ``max_tracked_keys``: the LRU order, the counter and the metric agree."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.settings import load_settings
from stream.telemetry.records import Telemetry

EVICTIONS = "driftwatch_key_evictions_total"


def event(key: str, offset: int) -> Telemetry:
    return Telemetry(key, 1_779_350_400.0 + offset, (800.0, 400.0, 0.0, 0.02), 0, offset)


def monitor_with_registry(max_keys: int) -> tuple[DriftMonitor, CollectorRegistry]:
    settings = load_settings(environ={}, max_tracked_keys=max_keys, max_metric_keys=max_keys)
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=max_keys)
    return DriftMonitor(settings, metrics=metrics, metrics_interval=0.0), registry


def test_evictions_metric_starts_at_zero_and_counts_each_evicted_key() -> None:
    monitor, registry = monitor_with_registry(3)
    assert registry.get_sample_value(EVICTIONS) == 0.0
    monitor.process([event(f"agent-{i}", i) for i in range(3)])
    assert monitor.evictions == 0 and registry.get_sample_value(EVICTIONS) == 0.0

    monitor.process([event("agent-3", 3)])  # the fourth key evicts the oldest
    assert list(monitor.keys) == ["agent-1", "agent-2", "agent-3"]
    assert monitor.evictions == 1 and registry.get_sample_value(EVICTIONS) == 1.0

    monitor.process([event(f"agent-{i}", i) for i in range(4, 10)])
    assert len(monitor.keys) == 3
    assert monitor.evictions == 7 and registry.get_sample_value(EVICTIONS) == 7.0


def test_a_recently_seen_key_is_not_evicted_and_known_keys_do_not_count() -> None:
    monitor, registry = monitor_with_registry(2)
    monitor.process([event("hot", 0), event("cold", 1)])
    monitor.process([event("hot", 2)])  # "hot" becomes the most recently seen
    monitor.process([event("new", 3)])  # evicts "cold", not "hot"
    assert list(monitor.keys) == ["hot", "new"]
    for offset in range(4, 20):  # known keys only: no eviction
        monitor.process([event("hot" if offset % 2 else "new", offset)])
    assert monitor.evictions == 1 and registry.get_sample_value(EVICTIONS) == 1.0


def test_evicted_keys_lose_their_series_but_the_counter_stays() -> None:
    monitor, registry = monitor_with_registry(2)
    monitor.process([event("a", 0), event("b", 1)])
    monitor.publish_metrics()
    labels = {"key": "a", "feature": "response_latency_ms"}
    assert registry.get_sample_value("driftwatch_drift_active", labels) == 0.0
    monitor.process([event("c", 2)])
    assert registry.get_sample_value("driftwatch_drift_active", labels) is None
    assert registry.get_sample_value(EVICTIONS) == 1.0


def test_no_metrics_still_counts_evictions() -> None:
    settings = load_settings(environ={}, max_tracked_keys=1)
    monitor = DriftMonitor(settings)
    for offset, key in enumerate("aba"):
        monitor.process([event(key, offset)])
    assert monitor.evictions == 2 and list(monitor.keys) == ["a"]


def test_evicted_refused_keys_are_forgotten() -> None:
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics

    metrics = Metrics(CollectorRegistry(), max_keys=1)
    assert metrics.admits("a") and not metrics.admits("b")
    metrics.forget("b", ("f",))
    assert "b" not in metrics._refused  # memory stays bounded by the tracked keys
