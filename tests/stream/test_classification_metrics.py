"""Rolling macro precision, recall and F1 per key: metrics, performance events, checkpoints.

river's ``utils.Rolling(metrics.MacroPrecision, window_size=...)`` (and recall, F1) over each
key's labelled events is the oracle.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from river import metrics, utils

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.settings import load_settings
from stream.telemetry.records import Telemetry, TelemetryParser
from stream.tools.simulation import DriftSpec
from stream.worker.checkpoints import CheckpointCodec
from tests.support.pipeline import simulated_messages

WINDOW = 300
SETTINGS = load_settings(environ={}, alpha=1e-7, window_size=WINDOW, reference_size=600)
METRIC = {"precision": metrics.MacroPrecision, "recall": metrics.MacroRecall, "f1": metrics.MacroF1}


def _telemetry(count: int) -> list[Telemetry]:
    drift = DriftSpec("agent-1", "accuracy", "accuracy", 0.3, start_event=8000)
    parser = TelemetryParser(SETTINGS)
    out = []
    for m in simulated_messages(count, drift=drift, seed=3):
        t = parser.parse(m.value, partition=m.partition, offset=m.offset)
        assert isinstance(t, Telemetry)
        out.append(t)
    return out


def _river(evs: list[Telemetry]) -> dict[str, float]:
    """The oracle's scores after the labelled events among ``evs``."""
    got = {}
    for name, cls in METRIC.items():
        rolling = utils.Rolling(cls, window_size=WINDOW)
        for t in evs:
            if t.true_label is not None and t.predicted_label is not None:
                rolling.update(t.true_label, t.predicted_label)
        got[name] = rolling.get()
    return got


@pytest.fixture(scope="module")
def stream() -> list[Telemetry]:
    return _telemetry(16_000)


def test_gauges_and_the_performance_event_equal_river(stream: list[Telemetry]) -> None:
    registry = CollectorRegistry()
    monitor = DriftMonitor(SETTINGS, metrics=Metrics(registry), metrics_interval=0.0)
    events = []
    for i in range(0, len(stream), 500):
        events.extend(monitor.process(stream[i : i + 500]))
        monitor.publish_metrics()
    keys = sorted({t.key for t in stream})
    for key in keys:
        expected = _river([t for t in stream if t.key == key])
        for name, value in expected.items():
            got = registry.get_sample_value(f"driftwatch_{name}", {"key": key})
            assert got == pytest.approx(value, abs=1e-12), (key, name)
    (e,) = [e for e in events if e.type == "drift_started"]
    assert (e.key, e.kind) == ("agent-1", "performance")
    upto = [t for t in stream if t.key == "agent-1" and t.offset <= e.window_last_offset]
    expected = _river(upto)
    assert e.macro_precision == pytest.approx(expected["precision"], abs=1e-12)
    assert e.macro_recall == pytest.approx(expected["recall"], abs=1e-12)
    assert e.macro_f1 == pytest.approx(expected["f1"], abs=1e-12)
    doc = e.to_dict()
    assert (doc["macro_precision"], doc["macro_recall"], doc["macro_f1"]) == (
        e.macro_precision,
        e.macro_recall,
        e.macro_f1,
    )
    # before the drift the classifier is better than after it
    before = _river([t for t in stream if t.key == "agent-1" and t.offset < 8000])
    assert e.macro_f1 < before["f1"]
    distribution = [x for x in events if x.kind == "distribution"]
    assert all(x.macro_f1 is None for x in distribution)


def test_the_counts_survive_a_checkpoint(stream: list[Telemetry]) -> None:
    codec = CheckpointCodec()
    first = DriftMonitor(SETTINGS)
    first.process(stream[:5000])
    blob = codec.encode(b"0/k/all", 1, first.snapshot())
    registry = CollectorRegistry()
    restored = DriftMonitor(SETTINGS, metrics=Metrics(registry), metrics_interval=0.0)
    restored.restore(codec.decode(b"0/k/all", blob)[1])
    restored.process(stream[5000:5400])
    restored.publish_metrics()
    upto = stream[:5400]
    for key in sorted({t.key for t in upto}):
        expected = _river([t for t in upto if t.key == key])
        got = registry.get_sample_value("driftwatch_f1", {"key": key})
        assert got == pytest.approx(expected["f1"], abs=1e-12), key


def test_evicted_keys_lose_their_series() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.set_classification("a", 0.5, 0.25, 0.3)
    assert registry.get_sample_value("driftwatch_recall", {"key": "a"}) == 0.25
    m.forget("a", ())
    for name in ("precision", "recall", "f1"):
        assert registry.get_sample_value(f"driftwatch_{name}", {"key": "a"}) is None
