from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from detectors import IncrementalKS
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.settings import load_settings
from stream.telemetry.records import TelemetryParser
from stream.tools.simulation import DriftSpec
from tests.support.pipeline import simulated_messages


def make() -> tuple[BatchProcessor, CollectorRegistry]:
    # a fixed ert: these tests are about dead letters and roll-backs, not the worker budget
    settings = load_settings(environ={}, window_size=50, reference_size=50, ert=10_000)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    monitor = DriftMonitor(settings, metrics=metrics)
    return BatchProcessor(TelemetryParser(settings), monitor, metrics, "agent-telemetry"), registry


def test_bad_messages_are_dead_lettered_with_their_bytes_and_counted() -> None:
    proc, registry = make()
    good = simulated_messages(20)
    bad = [
        RawMessage(b"k", b"{oops", 0, 100),
        RawMessage(None, b"[]", 1, 101),
        RawMessage(b"k", msgspec.json.encode({"agent_id": "a", "token_count": 1}), 0, 102),
    ]
    out = proc.handle(good[:10] + bad + good[10:])
    assert out.processed == 20
    assert [(d.reason, d.message.value) for d in out.dead_letters] == [
        ("invalid_json", b"{oops"),
        ("not_an_object", b"[]"),
        ("missing_feature", bad[2].value),
    ]
    headers = dict(out.dead_letters[0].headers("agent-telemetry"))
    assert headers["driftwatch-reason"] == b"invalid_json"
    assert headers["driftwatch-source"] == b"agent-telemetry/0/100"
    for reason in ("invalid_json", "not_an_object", "missing_feature"):
        assert registry.get_sample_value("driftwatch_invalid_events_total", {"reason": reason}) == 1
    assert (
        registry.get_sample_value("driftwatch_events_consumed_total", {"topic": "agent-telemetry"})
        == 23
    )


def _digest(monitor: DriftMonitor) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, state in monitor.keys.items():
        streams = [
            None
            if fs.detector is None
            else (fs.detector.n_seen, fs.detector.in_drift, fs.detector.window.tolist(), fs.n_base)  # type: ignore[attr-defined]
            for fs in state.features
        ]
        out[key] = (state.seen, state.offsets.tolist(), list(state.features[0].warmup), streams)
    return out


def test_a_fault_in_one_key_rolls_it_back_and_applies_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poison_value = 777_777.0
    # the batch step under update_many, which the monitor also calls directly on values it
    # has checked finite
    apply_many, update = IncrementalKS._apply_many, IncrementalKS.update

    def faulty_many(self: IncrementalKS, xs: Any, ts: Any) -> None:
        if poison_value in np.asarray(xs):
            apply_many(self, xs[: len(xs) // 2], ts)  # half applied, then a fault
            raise RuntimeError("injected fault")
        apply_many(self, xs, ts)

    def faulty(self: IncrementalKS, x: float, t: float | None = None) -> None:
        if x == poison_value:
            raise RuntimeError("injected fault")
        update(self, x, t)

    monkeypatch.setattr(IncrementalKS, "_apply_many", faulty_many)
    monkeypatch.setattr(IncrementalKS, "update", faulty)
    messages = simulated_messages(
        3000, agents=4, drift=DriftSpec("agent-1", "token_count", "shift", 1.0, start_event=1500)
    )
    doc = msgspec.json.decode(messages[2100].value or b"")
    doc["token_count"] = poison_value
    poisoned = [
        *messages[:2100],
        RawMessage(messages[2100].key, msgspec.json.encode(doc), 0, 2100),
        *messages[2101:],
    ]
    clean = [*messages[:2100], *messages[2101:]]

    faulted, registry = make()
    reference, _ = make()
    got, expected = [], []
    for i in range(0, len(poisoned), 500):
        out = faulted.handle(poisoned[i : i + 500])
        got += out.drift_events
        if i <= 2100 < i + 500:
            assert [(d.reason, d.message.offset) for d in out.dead_letters] == [
                ("processing_error", 2100)
            ]
            assert out.processed == 499
    for i in range(0, len(clean), 500):
        expected += reference.handle(clean[i : i + 500]).drift_events
    assert _digest(faulted.monitor) == _digest(reference.monitor)
    assert [e.to_dict() for e in got] == [e.to_dict() for e in expected]
    assert any(e.type == "drift_started" for e in expected)
    assert (
        registry.get_sample_value("driftwatch_invalid_events_total", {"reason": "processing_error"})
        == 1
    )
