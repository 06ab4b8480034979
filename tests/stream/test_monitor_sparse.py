"""Sparse numeric features: a stream sees only the events that have its feature, with exact
offsets, also across a checkpoint. The oracle is a dense monitor fed only those events."""

from __future__ import annotations

import math

import numpy as np

from stream.monitoring.monitor import DriftMonitor
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry


def _settings(features: tuple[str, ...]) -> Settings:
    return load_settings(
        environ={}, features=features, window_size=40, reference_size=60, alpha=0.001
    )


def _events(n: int = 900, seed: int = 4) -> list[Telemetry]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = float(rng.normal())
        b = float(rng.normal(1.5 if i >= 500 else 0.0)) if rng.random() < 0.55 else math.nan
        key = "k1" if rng.random() < 0.7 else "k2"
        out.append(Telemetry(key, 1_700_000_000.0 + i, (a, b), 0, 1000 + 3 * i))
    return out


def _only(evs: list[Telemetry], j: int) -> list[Telemetry]:
    """The events that have feature ``j``, with only that feature."""
    return [
        Telemetry(e.key, e.ts, (e.values[j],), e.partition, e.offset)
        for e in evs
        if not math.isnan(e.values[j])
    ]


def _run(monitor: DriftMonitor, evs: list[Telemetry], batch: int = 37) -> list[DriftEvent]:
    out: list[DriftEvent] = []
    for lo in range(0, len(evs), batch):
        out.extend(monitor.process(evs[lo : lo + batch]))
    return out


def _fields(e: DriftEvent) -> tuple[object, ...]:
    return (
        e.type,
        e.key,
        e.statistic,
        e.window_first_offset,
        e.window_last_offset,
        e.observations,
        e.event_time,
    )


def test_a_sparse_stream_equals_a_dense_one_fed_only_the_events_that_have_it() -> None:
    evs = _events()
    sparse = _run(DriftMonitor(_settings(("a", "b"))), evs)
    for j, name in enumerate(("a", "b")):
        dense = _run(DriftMonitor(_settings((name,))), _only(evs, j))
        got = [_fields(e) for e in sparse if e.feature == name]
        assert got == [_fields(e) for e in dense], name
    # the drift in b is found, and its windows begin at an event that has b
    started = [e for e in sparse if e.feature == "b" and e.type == "drift_started"]
    assert started
    with_b = {e.offset for e in evs if not math.isnan(e.values[1])}
    assert all(e.window_first_offset in with_b for e in started)


def test_a_sparse_stream_continues_exactly_after_a_checkpoint() -> None:
    evs = _events(seed=9)
    whole = DriftMonitor(_settings(("a", "b")))
    expected = _run(whole, evs)
    first = DriftMonitor(_settings(("a", "b")))
    before = _run(first, evs[:430])
    restored = DriftMonitor(_settings(("a", "b")))
    restored.restore(first.snapshot())
    after = _run(restored, evs[430:])
    assert [(*_fields(e), e.feature) for e in before + after] == [
        (*_fields(e), e.feature) for e in expected
    ]
