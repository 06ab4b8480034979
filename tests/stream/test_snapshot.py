"""Checkpoints: a monitor restored from a snapshot continues exactly like one that never stopped."""

from __future__ import annotations

import numpy as np
import pytest

from stream.monitoring.monitor import DriftMonitor
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry, TelemetryParser
from stream.tools.simulation import DriftSpec
from stream.worker.checkpoints import CheckpointCodec
from tests.support.pipeline import simulated_messages

CODEC = CheckpointCodec()


def telemetry(settings: Settings, count: int, drift: DriftSpec) -> list[Telemetry]:
    parser = TelemetryParser(settings)
    out = []
    for m in simulated_messages(count, drift=drift, seed=11):
        t = parser.parse(m.value, partition=m.partition, offset=m.offset)
        assert isinstance(t, Telemetry)
        out.append(t)
    return out


def run(monitor: DriftMonitor, events: list[Telemetry], batch: int) -> list[DriftEvent]:
    out: list[DriftEvent] = []
    for i in range(0, len(events), batch):
        out.extend(monitor.process(events[i : i + batch]))
    return out


@pytest.mark.parametrize(
    "extra",
    [{"alpha": 1e-6}, {"ert": 20_000.0}],
    ids=["alpha", "ert"],
)
def test_restored_monitor_continues_exactly(extra: dict[str, float]) -> None:
    settings = load_settings(environ={}, window_size=100, reference_size=300, **extra)
    drift = DriftSpec("agent-1", "response_latency_ms", "shift", 0.6, start_event=9000)
    events = telemetry(settings, 16_000, drift)

    whole = DriftMonitor(settings)
    expected = run(whole, events, 250)
    assert any(e.key == "agent-1" and e.type == "drift_started" for e in expected)

    cuts = sorted(np.random.default_rng(5).choice(np.arange(1, len(events)), 5, replace=False))
    monitor = DriftMonitor(settings)
    seen: dict[str, DriftEvent] = {}
    start = 0
    for cut in [*cuts, len(events)]:
        for e in run(monitor, events[start:cut], 250):
            seen.setdefault(e.event_id, e)
        blob = CODEC.encode(b"0/k/all", 1, monitor.snapshot())
        monitor = DriftMonitor(settings)  # a new process: nothing but the snapshot survives
        assert monitor.restore(CODEC.decode(b"0/k/all", blob)[1]) == len(whole.keys)
        start = cut
    assert sorted(seen.values(), key=lambda e: e.event_id) == sorted(
        expected, key=lambda e: e.event_id
    )
    assert [e.to_dict() for e in seen.values()] == [e.to_dict() for e in expected]
    for key, state in whole.keys.items():
        restored = monitor.keys[key]
        assert restored.seen == state.seen
        for a, b in zip(state.features, restored.features, strict=True):
            assert a.detector is not None and b.detector is not None
            assert np.array_equal(a.detector.window, b.detector.window)  # type: ignore[attr-defined]
            assert a.detector.statistic == b.detector.statistic


def test_partition_snapshots_and_bad_blobs() -> None:
    settings = load_settings(environ={}, window_size=50, reference_size=100, alpha=1e-6)
    parser = TelemetryParser(settings)
    events = []
    for m in simulated_messages(2_000, agents=4):
        t = parser.parse(m.value, partition=int(m.key[-1:]) % 2, offset=m.offset)  # type: ignore[index]
        assert isinstance(t, Telemetry)
        events.append(t)
    monitor = DriftMonitor(settings)
    monitor.process(events)
    other = DriftMonitor(settings)
    assert other.restore(monitor.snapshot([0])) == 2
    assert all(state.partition == 0 for state in other.keys.values())
    with pytest.raises(ValueError, match="not a driftwatch monitor snapshot"):
        other.restore(b"garbage")
