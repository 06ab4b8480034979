from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

from detectors import IncrementalKS
from stream.exceptions import ConfigError
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.settings import Settings, load_settings
from stream.telemetry.records import TelemetryParser
from stream.tools.simulation import DriftSpec
from tests.support.pipeline import simulated_messages

# a per-update level strict enough that 4 agents x 4 features stay quiet on null data
STRICT = {"alpha": 1e-7, "window_size": 300, "reference_size": 600}


def run(
    settings: Settings, messages: list[RawMessage], batch: int = 500
) -> tuple[list, BatchProcessor, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=settings.max_metric_keys)
    monitor = DriftMonitor(settings, metrics=metrics, metrics_interval=0.0)
    proc = BatchProcessor(TelemetryParser(settings), monitor, metrics, settings.telemetry_topic)
    events = []
    for i in range(0, len(messages), batch):
        events.extend(proc.handle(messages[i : i + batch]).drift_events)
    return events, proc, registry


def test_drift_in_one_pair_is_reported_for_that_pair_only() -> None:
    settings = load_settings(environ={}, **STRICT)
    drift = DriftSpec("agent-2", "response_latency_ms", "shift", 0.5, start_event=8000)
    events, _proc, registry = run(settings, simulated_messages(16000, drift=drift))
    started = [(e.key, e.feature) for e in events if e.type == "drift_started"]
    assert started == [("agent-2", "response_latency_ms")]
    (e,) = [e for e in events if e.type == "drift_started"]
    assert e.statistic_sign == 1 and e.p_value < 1e-7 and e.window_last_offset >= 8000
    assert e.window_size == 300 and e.reference_size == 600
    labels = {"key": "agent-2", "feature": "response_latency_ms"}
    assert registry.get_sample_value("driftwatch_drift_active", labels) == 1.0
    assert (
        registry.get_sample_value(
            "driftwatch_drift_events_total",
            {"type": "drift_started", "feature": "response_latency_ms"},
        )
        == 1.0
    )
    assert (
        registry.get_sample_value("driftwatch_events_consumed_total", {"topic": "agent-telemetry"})
        == 16000.0
    )


def test_statistics_equal_scipy_on_the_same_window() -> None:
    settings = load_settings(environ={}, **STRICT)
    messages = simulated_messages(6000, agents=2, seed=4)
    _, _proc, registry = run(settings, messages, batch=337)
    parser = TelemetryParser(settings)
    values = [parser.parse(m.value) for m in messages]
    latency = np.array([v.values[0] for v in values if v.key == "agent-1"])  # type: ignore[union-attr]
    reference, window = latency[:600], latency[600:][-300:]
    expected = stats.ks_2samp(reference, window)
    labels = {"key": "agent-1", "feature": "response_latency_ms"}
    assert registry.get_sample_value("driftwatch_ks_statistic", labels) == pytest.approx(
        expected.statistic, abs=1e-12
    )
    assert registry.get_sample_value("driftwatch_p_value", labels) == pytest.approx(
        expected.pvalue, rel=1e-9
    )
    assert registry.get_sample_value("driftwatch_window_fill_ratio", labels) == 1.0


def test_batching_does_not_change_results() -> None:
    settings = load_settings(environ={}, alpha=1e-3, window_size=200, reference_size=300)
    drift = DriftSpec("agent-0", "token_count", "shift", 0.2, start_event=5000)
    messages = simulated_messages(12000, drift=drift, seed=9)
    a, _, _ = run(settings, messages, batch=1)
    b, _, _ = run(settings, messages, batch=777)
    assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
    assert a  # alpha 1e-3 per update finds the drift (and maybe false alarms): equal anyway


def test_window_offsets_point_at_the_window() -> None:
    settings = load_settings(environ={}, **STRICT)
    drift = DriftSpec("agent-0", "retry_count", "shift", 3.0, start_event=7000)
    events, _, _ = run(settings, simulated_messages(14000, drift=drift, seed=2))
    (e,) = [e for e in events if e.type == "drift_started"]
    # 4 agents share the topic: 300 observations of one agent span about 1,200 offsets
    assert 600 < e.window_last_offset - e.window_first_offset < 2400


def test_file_reference_and_reference_free_detectors() -> None:
    rng = np.random.default_rng(0)
    ref = {"response_latency_ms": rng.lognormal(6.5, 0.3, 500)}

    def source(key: str, feature: str) -> np.ndarray | None:
        return ref.get(feature)

    settings = load_settings(
        environ={},
        window_size=100,
        reference_size=200,
        feature_detectors={"error_rate": "adwin"},
    )
    monitor = DriftMonitor(settings, references=source)
    parser = TelemetryParser(settings)
    batch = [parser.parse(m.value, offset=m.offset) for m in simulated_messages(50, agents=1)]
    monitor.process(batch)  # type: ignore[arg-type]
    latency, tokens, _retries, errors = monitor.keys["agent-0"].features
    assert isinstance(latency.detector, IncrementalKS)  # file reference: ready at once
    assert latency.detector.n_seen == 50
    assert tokens.detector is None and len(tokens.warmup) == 50  # learning its reference
    # under an ert, river detectors calibrate on a reference too: they learn one first
    assert errors.detector is None and len(errors.warmup) == 50
    # under alpha they run at river's defaults, with no reference
    plain = DriftMonitor(settings.replace(alpha=0.001), references=source)
    plain.process(batch)  # type: ignore[arg-type]
    errors = plain.keys["agent-0"].features[3]
    assert errors.detector is not None and errors.detector.n_seen == 50


def test_river_ert_limits_are_checked_with_the_settings() -> None:
    with pytest.raises(ConfigError, match="kswin on feature 'error_rate'"):
        load_settings(environ={}, feature_detectors={"error_rate": "kswin"}, ert=100_000)
    settings = load_settings(environ={}, feature_detectors={"error_rate": "kswin"}, ert=20_000)
    assert settings.effective_ert == 20_000


def test_keys_over_the_metric_cap_never_compute_p_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # alpha so strict that no stream alarms: an event would compute its p-value
    settings = load_settings(
        environ={}, alpha=1e-12, window_size=50, reference_size=50, max_metric_keys=1
    )
    computed: list[int] = []
    p_value = IncrementalKS.p_value

    def counted(self: IncrementalKS) -> float:
        computed.append(id(self))
        return p_value.fget(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(IncrementalKS, "p_value", property(counted))
    _events, proc, registry = run(settings, simulated_messages(2_000, agents=3, seed=2))
    proc.monitor.publish_metrics()
    keys = {
        sample.labels["key"]
        for family in registry.collect()
        if family.name == "driftwatch_ks_statistic"
        for sample in family.samples
    }
    assert len(keys) == 1  # one key admitted
    (key,) = keys
    state = proc.monitor.keys[key]
    published = {id(fs.detector) for fs in state.features}
    if state.accuracy is not None:
        published.add(id(state.accuracy.detector))
    assert len(proc.monitor.keys) == 3
    assert computed and set(computed) <= published


def test_key_cap_evicts_least_recently_seen() -> None:
    settings = load_settings(environ={}, max_tracked_keys=3, max_metric_keys=2)
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=2)
    monitor = DriftMonitor(settings, metrics=metrics, metrics_interval=0.0)
    parser = TelemetryParser(settings)
    messages = simulated_messages(200, agents=5, seed=1)
    monitor.process([parser.parse(m.value) for m in messages])  # type: ignore[misc]
    assert len(monitor.keys) == 3 and monitor.evictions == 2
    assert registry.get_sample_value("driftwatch_label_series_dropped_total") >= 1.0
