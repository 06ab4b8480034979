"""At the worker budget, a restored monitor alarms exactly as one that never stopped.

The budget derives each stream's ERT from event rates measured over blocks of the key's events
and from the number of streams tracked. A monitor is cut at points in warm-up, right after its
streams' first calibration, between blocks and in the drift; its snapshot goes through the
checkpoint codec into a fresh monitor, which is fed again from an earlier offset (as Kafka
redelivers after a kill: the events the snapshot holds are skipped) in larger batches (a
backlog), and then to the end. Its drift events -- thresholds, ERTs and all -- must be the
uninterrupted monitor's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec
import numpy as np
import pytest

from detectors.registry import StateError
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.rates import rates_from_data, rates_to_data
from stream.monitoring.state import SNAPSHOT_VERSION
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry, TelemetryParser
from stream.tools.simulation import DriftSpec
from stream.worker.checkpoints import CheckpointCodec
from tests.support.pipeline import simulated_messages

CODEC = CheckpointCodec()
AGENTS = 3
EVENTS = 3_000
#: Events ten minutes apart on average (exponential gaps: the rate of each block of a key's events
#: is its own), so every stream's budget share is a few thousand observations and the
#: calibrations stay short; from event RUSH on they come four times as fast (every key's next
#: block moves its rate by about 4x: its streams are recalibrated).
GAP_S = 600.0
RUSH = 1_500
DRIFT = DriftSpec("agent-1", "response_latency_ms", "shift", 0.6, start_event=2_000)


def _settings() -> Settings:
    # the defaults (no alpha or ert: the worker budget), with a short window and reference
    return load_settings(environ={}, window_size=30, reference_size=80)


def _telemetry(settings: Settings) -> list[Telemetry]:
    parser = TelemetryParser(settings)
    out = []
    for m in simulated_messages(EVENTS, agents=AGENTS, drift=DRIFT, seed=5):
        t = parser.parse(m.value, partition=m.partition, offset=m.offset)
        assert isinstance(t, Telemetry)
        out.append(t)
    gaps = np.random.default_rng(6).exponential(GAP_S, size=EVENTS)
    gaps[RUSH:] /= 4
    times = out[0].ts + np.cumsum(gaps)
    return [msgspec.structs.replace(e, ts=float(t)) for e, t in zip(out, times, strict=True)]


def _run(monitor: DriftMonitor, events: list[Telemetry], batch: int) -> list[DriftEvent]:
    out: list[DriftEvent] = []
    for i in range(0, len(events), batch):
        out.extend(monitor.process(events[i : i + batch]))
    return out


def _sorted(events: Iterable[DriftEvent]) -> list[dict[str, object]]:
    """The events as plain data, by id (a batch emits its events key by key)."""
    return sorted((e.to_dict() for e in events), key=lambda d: str(d["event_id"]))


def _close(monitor: DriftMonitor) -> None:
    for state in monitor.keys.values():
        state.close()


@pytest.fixture(scope="module")
def uninterrupted() -> Iterator[tuple[list[Telemetry], list[DriftEvent], DriftMonitor]]:
    settings = _settings()
    assert settings.worker_budget is not None and settings.effective_ert is None
    events = _telemetry(settings)
    monitor = DriftMonitor(settings)
    out = _run(monitor, events, 50)
    yield events, out, monitor
    _close(monitor)


#: (cut, redelivered from): in warm-up, right after the first calibrations, between blocks,
#: just before and after the rate moves, in the drift.
CUTS = [(100, 0), (250, 180), (600, 420), (1_490, 1_300), (1_560, 1_500), (2_100, 1_900)]


@pytest.mark.parametrize(("cut", "redelivered"), CUTS)
def test_a_restored_monitor_alarms_exactly_as_one_that_never_stopped(
    uninterrupted: tuple[list[Telemetry], list[DriftEvent], DriftMonitor],
    cut: int,
    redelivered: int,
) -> None:
    events, expected, whole = uninterrupted
    started = [e for e in expected if e.type == "drift_started"]
    assert any((e.key, e.feature) == (DRIFT.agent_id, DRIFT.feature) for e in started), started
    erts = {
        fs.detector.ert  # type: ignore[attr-defined]
        for st in whole.keys.values()
        for fs in st.streams()
        if fs.detector is not None
    }
    assert len(erts) > 1, "no stream was recalibrated: the rate change is not exercised"

    settings = _settings()
    first = DriftMonitor(settings)
    seen: dict[str, DriftEvent] = {e.event_id: e for e in _run(first, events[:cut], 50)}
    blob = CODEC.encode(b"0/k/all", 1, first.snapshot())
    _close(first)
    second = DriftMonitor(settings)  # a new process: nothing but the checkpoint survives
    assert second.restore(CODEC.decode(b"0/k/all", blob)[1]) == len(first.keys)
    for e in _run(second, events[redelivered:], 400):
        assert seen.setdefault(e.event_id, e) == e
    assert second.skipped == cut - redelivered
    assert _sorted(seen.values()) == _sorted(expected)
    _close(second)


@pytest.mark.parametrize("batch", [1, 7, 1_000])
def test_the_budget_gives_the_same_erts_whatever_the_batches(
    uninterrupted: tuple[list[Telemetry], list[DriftEvent], DriftMonitor], batch: int
) -> None:
    events, expected, _ = uninterrupted
    monitor = DriftMonitor(_settings())
    assert _sorted(_run(monitor, events, batch)) == _sorted(expected)
    _close(monitor)


def test_the_rate_clocks_travel_with_the_key_and_older_snapshots_still_load(
    uninterrupted: tuple[list[Telemetry], list[DriftEvent], DriftMonitor],
) -> None:
    events, _, _ = uninterrupted
    settings = _settings()
    monitor = DriftMonitor(settings)
    _run(monitor, events[:130], 50)
    snap = CODEC.decode(b"0/k/all", CODEC.encode(b"0/k/all", 1, monitor.snapshot()))[1]
    assert snap["version"] == SNAPSHOT_VERSION == 5
    restored = DriftMonitor(settings)
    assert restored.restore(snap) == len(monitor.keys)
    for key, state in monitor.keys.items():
        assert state.rates and restored.keys[key].rates == state.rates
    # version 3 held no clocks: its keys measure their rates afresh
    old = {"version": 3, "keys": [[k, {**st, "rates": None}] for k, st in snap["keys"]]}
    for _, st in old["keys"]:
        del st["rates"]
    former = DriftMonitor(settings)
    assert former.restore(old) == len(monitor.keys)
    assert all(st.rates == {} for st in former.keys.values())
    for m in (monitor, restored, former):
        _close(m)


@pytest.mark.parametrize(
    ("clock", "message"),
    [
        ({"count": 80, "first": 0.0, "last": 1.0, "rate": None, "blocks": 0}, "count must be <"),
        ({"count": 3, "first": 2.0, "last": 1.0, "rate": None, "blocks": 0}, "first must be <="),
        ({"count": 3, "first": None, "last": 1.0, "rate": None, "blocks": 0}, "finite number"),
        ({"count": 0, "first": None, "last": None, "rate": -1.0, "blocks": 0}, "rate must be >"),
        ({"count": 0, "first": None, "last": None, "rate": 1.0, "blocks": 1}, "both be measured"),
        ({"count": 0, "first": None, "last": None, "rate": None, "blocks": True}, "blocks"),
    ],
)
def test_malformed_rate_clocks_are_rejected(clock: dict[str, object], message: str) -> None:
    with pytest.raises(StateError, match=message):
        rates_from_data({"events": clock}, 80)
    with pytest.raises(StateError, match="map of"):
        rates_from_data({"other": clock}, 80)
    good = {"count": 3, "first": 1.0, "last": 4.0, "rate": 0.5, "blocks": 2, "share": 0.4}
    assert rates_to_data(rates_from_data({"labelled": good}, 80)) == {"labelled": good}


def test_an_event_that_fails_is_not_counted_by_the_rate_clock(
    uninterrupted: tuple[list[Telemetry], list[DriftEvent], DriftMonitor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, _, _ = uninterrupted
    monitor = DriftMonitor(_settings())
    feeder = monitor._keys.features
    real = feeder.process

    def failing(key: str, state: object, evs: list[Telemetry]) -> list[DriftEvent]:
        if any(e.offset == 30 for e in evs):
            raise RuntimeError("boom")
        return real(key, state, evs)  # type: ignore[arg-type]

    monkeypatch.setattr(feeder, "process", failing)
    _run(monitor, events[:60], 60)
    assert [ev.offset for ev, _ in monitor.take_failed()] == [30]
    for key, state in monitor.keys.items():
        applied = sum(1 for e in events[:60] if e.key == key and e.offset != 30)
        clock = state.rates["events"]
        assert clock.blocks * 80 + clock.block.count == applied == state.seen
    _close(monitor)


def test_a_key_calibrated_before_the_others_arrive_ends_at_the_same_erts(
    uninterrupted: tuple[list[Telemetry], list[DriftEvent], DriftMonitor],
) -> None:
    # as when one partition's backlog is read before the others': agent-0's first three
    # blocks are processed before any other key is known
    events, _, whole = uninterrupted
    early = [e for e in events if e.key == "agent-0"][:240]
    rest = [e for e in events if e not in early]
    monitor = DriftMonitor(_settings())
    _run(monitor, early, 50)
    alone = monitor.keys["agent-0"].features[0].detector
    assert alone is not None and alone.ert < 0.5 * whole.keys["agent-0"].features[0].detector.ert  # type: ignore[attr-defined,union-attr]
    _run(monitor, rest, 50)
    for key, state in whole.keys.items():
        got = [fs.detector.ert for fs in monitor.keys[key].streams()]  # type: ignore[union-attr]
        assert got == [fs.detector.ert for fs in state.streams()]  # type: ignore[union-attr]
    _close(monitor)
