from __future__ import annotations

from collections.abc import Sequence

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry, TelemetryParser
from stream.tools.simulation import DriftSpec
from tests.support.pipeline import START_MS, simulated_messages

STRICT = {"alpha": 1e-7, "window_size": 300, "reference_size": 600}


def run(
    settings: Settings, messages: list[RawMessage], batch: int = 500
) -> tuple[list[DriftEvent], DriftMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=settings.max_metric_keys)
    monitor = DriftMonitor(settings, metrics=metrics, metrics_interval=0.0)
    proc = BatchProcessor(TelemetryParser(settings), monitor, metrics, settings.telemetry_topic)
    events: list[DriftEvent] = []
    for i in range(0, len(messages), batch):
        events.extend(proc.handle(messages[i : i + batch]).drift_events)
    return events, monitor, registry


def parsed(settings: Settings, messages: list[RawMessage]) -> list[Telemetry]:
    parser = TelemetryParser(settings)
    out = []
    for m in messages:
        r = parser.parse(m.value, partition=m.partition, offset=m.offset)
        assert isinstance(r, Telemetry)
        out.append(r)
    return out


def labelled_messages(correct: Sequence[bool], *, key: str = "agent-0") -> list[RawMessage]:
    """One key's events whose predictions are right where ``correct`` says."""
    rng = np.random.default_rng(7)
    out = []
    for i, ok in enumerate(correct):
        doc = {
            "ts": START_MS + 10 * i,
            "agent_id": key,
            "response_latency_ms": round(float(rng.lognormal(6.5, 0.3)), 1),
            "predicted_label": "refund" if ok else "billing",
            "true_label": "refund",
        }
        out.append(RawMessage(key.encode(), msgspec.json.encode(doc), 0, i))
    return out


def errors(rng: np.random.Generator, n: int, rate: float) -> list[bool]:
    return (rng.random(n) >= rate).tolist()


def test_accuracy_drop_is_one_performance_event_for_that_agent_only() -> None:
    settings = load_settings(environ={}, **STRICT)
    drift = DriftSpec("agent-1", "accuracy", "accuracy", 0.3, start_event=8000)
    messages = simulated_messages(16000, drift=drift, seed=3)
    events, _monitor, registry = run(settings, messages)

    started = [(e.key, e.feature, e.kind) for e in events if e.type == "drift_started"]
    assert started == [("agent-1", "accuracy", "performance")]
    (e,) = [e for e in events if e.type == "drift_started"]
    assert e.statistic_sign == 1 and e.p_value < 1e-7 and e.window_last_offset >= 8000
    assert e.window_size == 300 and e.reference_size == 600 and e.detector == "incremental_ks"

    # the evidence is the labelled events of agent-1, by hand
    evs = [t for t in parsed(settings, messages) if t.key == "agent-1"]
    right = np.array([t.predicted_label == t.true_label for t in evs])
    offsets = np.array([t.offset for t in evs])
    end = int(np.flatnonzero(offsets == e.window_last_offset)[0]) + 1
    window = right[end - 300 : end]
    assert e.window_first_offset == offsets[end - 300]
    assert e.rolling_accuracy == pytest.approx(window.mean(), abs=1e-12)
    assert e.reference_accuracy == pytest.approx(right[:600].mean(), abs=1e-12)
    # KS on a 0/1 indicator is the difference of the error rates
    assert e.statistic == pytest.approx(e.reference_accuracy - e.rolling_accuracy, abs=1e-12)

    doc = e.to_dict()
    assert doc["kind"] == "performance" and doc["feature"] == "accuracy"
    assert doc["largest_gap"]["direction"] == "increase"
    assert doc["rolling_accuracy"] == e.rolling_accuracy
    assert doc["reference_source"] is None

    # the gauge: accuracy of the last window_size labelled events of each key
    for key in ("agent-0", "agent-1", "agent-2", "agent-3"):
        ok = [t.predicted_label == t.true_label for t in parsed(settings, messages) if t.key == key]
        expected = float(np.mean(ok[-300:]))
        got = registry.get_sample_value("driftwatch_rolling_accuracy", {"key": key})
        assert got == pytest.approx(expected, abs=1e-12), key
    active = {"key": "agent-1", "feature": "accuracy"}
    assert registry.get_sample_value("driftwatch_drift_active", active) == 1.0
    assert registry.get_sample_value("driftwatch_drift_active", {**active, "key": "agent-0"}) == 0
    assert (
        registry.get_sample_value(
            "driftwatch_drift_events_total", {"type": "drift_started", "feature": "accuracy"}
        )
        == 1.0
    )
    assert registry.get_sample_value("driftwatch_observations_total", {"feature": "accuracy"}) == (
        16000.0
    )


def test_distribution_events_say_so() -> None:
    settings = load_settings(environ={}, **STRICT)
    drift = DriftSpec("agent-2", "response_latency_ms", "shift", 0.5, start_event=8000)
    events, _, _ = run(settings, simulated_messages(16000, drift=drift))
    (e,) = [e for e in events if e.type == "drift_started"]
    assert (e.kind, e.feature) == ("distribution", "response_latency_ms")
    doc = e.to_dict()
    assert doc["kind"] == "distribution"
    assert doc["rolling_accuracy"] is None and doc["reference_accuracy"] is None


def test_accuracy_improvement_does_not_alarm() -> None:
    settings = load_settings(
        environ={},
        alpha=1e-3,
        window_size=1000,
        reference_size=2000,
        features=("response_latency_ms",),
    )
    drift = DriftSpec("agent-0", "accuracy", "accuracy", -0.1, start_event=3000)
    events, monitor, registry = run(settings, simulated_messages(9000, agents=1, drift=drift))
    assert [e for e in events if e.kind == "performance"] == []
    acc = monitor.keys["agent-0"].accuracy
    assert acc is not None and acc.detector is not None
    # the detector did see the change (a two-sided alarm), which was not reported
    assert acc.detector.in_drift and acc.suppressed is not None
    assert acc.suppressed.statistic_sign == -1
    labels = {"key": "agent-0", "feature": "accuracy"}
    assert registry.get_sample_value("driftwatch_drift_active", labels) == 0.0
    assert registry.get_sample_value("driftwatch_rolling_accuracy", {"key": "agent-0"}) == 1.0


def test_a_drop_after_an_unreported_improvement_is_reported_where_it_crosses() -> None:
    settings = load_settings(
        environ={},
        alpha=1e-3,
        window_size=500,
        reference_size=1000,
        features=("response_latency_ms",),
    )
    rng = np.random.default_rng(11)
    correct = errors(rng, 1500, 0.1) + errors(rng, 2000, 0.0) + errors(rng, 2000, 0.35)
    messages = labelled_messages(correct)
    a, monitor, _ = run(settings, messages, batch=1)
    b, _, _ = run(settings, messages, batch=999)
    assert [e.to_dict() for e in a] == [e.to_dict() for e in b]  # batching changes nothing
    perf = [e for e in a if e.kind == "performance"]
    assert [e.type for e in perf] == ["drift_started"]
    (e,) = perf
    assert e.window_last_offset > 3500 and e.statistic_sign == 1
    # reported as soon as the window's error rate exceeds the reference's by the alarm level
    assert e.statistic >= e.threshold - 1e-12
    assert e.statistic == pytest.approx(e.reference_accuracy - e.rolling_accuracy, abs=1e-12)
    acc = monitor.keys["agent-0"].accuracy
    assert acc is not None and acc.active


def test_an_accuracy_episode_resolves_when_accuracy_recovers() -> None:
    settings = load_settings(
        environ={},
        alpha=1e-4,
        window_size=400,
        reference_size=800,
        features=("response_latency_ms",),
    )
    rng = np.random.default_rng(5)
    correct = errors(rng, 1200, 0.1) + errors(rng, 1000, 0.5) + errors(rng, 2000, 0.1)
    events, _, registry = run(settings, labelled_messages(correct), batch=250)
    assert [(e.type, e.kind) for e in events] == [
        ("drift_started", "performance"),
        ("drift_resolved", "performance"),
    ]
    assert events[0].event_id != events[1].event_id
    labels = {"key": "agent-0", "feature": "accuracy"}
    assert registry.get_sample_value("driftwatch_drift_active", labels) == 0.0


def test_unlabelled_events_do_not_count() -> None:
    settings = load_settings(environ={}, alpha=1e-3, window_size=50, reference_size=50)
    messages = simulated_messages(400, agents=2, seed=1)
    stripped = []
    for m in messages:
        doc = msgspec.json.decode(m.value)  # type: ignore[arg-type]
        if m.offset % 2:
            del doc["true_label"]
        stripped.append(RawMessage(m.key, msgspec.json.encode(doc), m.partition, m.offset))
    _, monitor, registry = run(settings, stripped)
    for key, state in monitor.keys.items():
        assert state.accuracy is not None
        labelled = [
            t for t in parsed(settings, stripped) if t.key == key and t.true_label is not None
        ]
        assert state.accuracy.seen == len(labelled)
        ok = np.mean([t.predicted_label == t.true_label for t in labelled][-50:])
        got = registry.get_sample_value("driftwatch_rolling_accuracy", {"key": key})
        assert got == pytest.approx(ok, abs=1e-12)


def test_rolling_accuracy_respects_the_key_cap() -> None:
    settings = load_settings(
        environ={}, alpha=1e-3, window_size=50, reference_size=50, max_metric_keys=2
    )
    _, monitor, registry = run(settings, simulated_messages(400, agents=4, seed=2))
    series = [
        s
        for metric in registry.collect()
        if metric.name == "driftwatch_rolling_accuracy"
        for s in metric.samples
    ]
    assert len(series) == 2 and len(monitor.keys) == 4


def test_eviction_forgets_the_accuracy_series() -> None:
    settings = load_settings(
        environ={}, alpha=1e-3, window_size=50, reference_size=50, max_tracked_keys=2
    )
    _, monitor, registry = run(settings, simulated_messages(300, agents=3, seed=1), batch=50)
    assert monitor.evictions >= 1
    keys = {
        s.labels["key"]
        for metric in registry.collect()
        if metric.name == "driftwatch_rolling_accuracy"
        for s in metric.samples
    }
    assert keys == set(monitor.keys)
    assert monitor.tracked_streams == 2 * len(settings.features) + 2


def test_a_feature_named_accuracy_turns_the_accuracy_stream_off() -> None:
    settings = load_settings(
        environ={}, alpha=1e-3, features=("accuracy",), window_size=20, reference_size=20
    )
    monitor = DriftMonitor(settings)
    assert not monitor.track_accuracy and monitor.stream_names == ("accuracy",)


def test_a_batch_with_drift_events_publishes_at_once() -> None:
    settings = load_settings(environ={}, **STRICT)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # a clock that never moves: only the first batch and batches with events publish
    monitor = DriftMonitor(settings, metrics=metrics, clock=lambda: 0.0, metrics_interval=60.0)
    proc = BatchProcessor(TelemetryParser(settings), monitor, metrics, settings.telemetry_topic)
    drift = DriftSpec("agent-1", "accuracy", "accuracy", 0.3, start_event=8000)
    messages = simulated_messages(16000, drift=drift, seed=3)
    events = []
    for i in range(0, len(messages), 500):
        events.extend(proc.handle(messages[i : i + 500]).drift_events)
    (e,) = events
    labels = {"key": "agent-1", "feature": "accuracy"}
    assert registry.get_sample_value("driftwatch_drift_active", labels) == 1.0
    assert registry.get_sample_value("driftwatch_rolling_accuracy", {"key": "agent-1"}) == (
        pytest.approx(e.rolling_accuracy, abs=0.1)
    )


def test_accuracy_fed_per_batch_reports_what_event_at_a_time_does() -> None:
    """Batches of 250 against batches of one event (the one-sided rule event by event): an
    improvement (suppressed), a rise during it (reported from there), recovery, a plain rise."""
    settings = load_settings(
        environ={},
        alpha=1e-4,
        window_size=200,
        reference_size=600,
        features=("response_latency_ms",),
    )
    rng = np.random.default_rng(12)
    phases = [(600, 0.3), (800, 0.05), (800, 0.6), (1200, 0.3), (800, 0.6), (400, 0.3)]
    correct = [ok for n, rate in phases for ok in errors(rng, n, rate)]
    messages = labelled_messages(correct)
    per_batch, monitor, _ = run(settings, messages, batch=250)
    one_by_one, reference, _ = run(settings, messages, batch=1)
    assert [e.to_dict() for e in per_batch] == [e.to_dict() for e in one_by_one]
    performance = [(e.type, e.window_last_offset) for e in per_batch if e.kind == "performance"]
    # the rise during the improvement's episode is reported from where it is up by the threshold
    assert [kind for kind, _ in performance] == ["drift_started", "drift_resolved"] * 2
    assert 1400 < performance[0][1] < 2200 and 3400 < performance[2][1] < 4200
    _, improved, _ = run(settings, messages[:1400], batch=250)
    suppressed = improved.keys["agent-0"].accuracy
    assert suppressed is not None and suppressed.suppressed is not None
    x, y = monitor.keys["agent-0"].accuracy, reference.keys["agent-0"].accuracy
    assert x is not None and x.detector is not None and y is not None and y.detector is not None
    assert (x.detector.n_seen, x.detector.in_drift, x.reported, x.suppressed) == (
        y.detector.n_seen,
        y.detector.in_drift,
        y.reported,
        y.suppressed,
    )
    assert np.array_equal(x.detector.window, y.detector.window)  # type: ignore[attr-defined]
