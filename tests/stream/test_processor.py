from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitor import DriftMonitor
from stream.processor import BatchProcessor, RawMessage
from stream.records import TelemetryParser
from stream.settings import load_settings
from tests.stream.helpers import simulated_messages


def make() -> tuple[BatchProcessor, CollectorRegistry]:
    settings = load_settings(environ={}, window_size=50, reference_size=50)
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
        RawMessage(b"k", orjson.dumps({"agent_id": "a", "token_count": 1}), 0, 102),
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


def test_a_processing_failure_isolates_the_poison_event() -> None:
    proc, registry = make()
    original = proc.monitor.process
    poison_offset = 7

    def flaky(batch: list) -> list:  # type: ignore[type-arg]
        if any(ev.offset == poison_offset for ev in batch):
            raise RuntimeError("boom")
        return original(batch)

    proc.monitor.process = flaky  # type: ignore[method-assign]
    out = proc.handle(simulated_messages(20))
    assert out.processed == 19
    assert [(d.reason, d.message.offset) for d in out.dead_letters] == [("processing_error", 7)]
    assert (
        registry.get_sample_value("driftwatch_invalid_events_total", {"reason": "processing_error"})
        == 1
    )
