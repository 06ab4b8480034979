"""A fault while processing one key's events: that key is put back exactly as it was (its
checkpoint data compared), the failing event is isolated, other keys are untouched. The oracle:
the key's own state data before the batch, and a monitor that never saw the failing event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from detectors.registry import KINDS
from stream.monitoring import detection
from stream.monitoring.accuracy import AccuracyFeeder
from stream.monitoring.keys import KeyState
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.state import key_to_data
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry
from tests.support.plain import same_plain

REASONS = (["stop"], ["length"], ["tool_calls"])
POISON = -1  # no event has this offset until a test sets it


def _settings(rule: str) -> Settings:
    extra: dict[str, Any] = {"alpha": 1e-4} if rule == "alpha" else {"ert": 5_000}
    return load_settings(
        environ={},
        features=("tokens", "latency"),
        feature_detectors={"latency": "windowed_ks"},
        categorical_features=("finish_reasons",),
        window_size=50,
        reference_size=100,
        **extra,
    )


def _events(n: int, seed: int = 4) -> list[Telemetry]:
    """Keys ``a`` and ``b`` in turn; from event 600 ``a``'s tokens and errors rise."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        key = "ab"[i % 2]
        late = key == "a" and i >= 600
        wrong = rng.random() < (0.6 if late else 0.1)
        out.append(
            Telemetry(
                key,
                1_700_000_000.0 + i,
                (float(rng.normal(1.5 if late else 0.0)), float(rng.normal())),
                0,
                i,
                "refund" if not wrong else "billing",
                "refund",
                (REASONS[int(rng.integers(3))],),
            )
        )
    return out


def _faulty(monkeypatch: pytest.MonkeyPatch, offsets: set[int]) -> None:
    """The accuracy step, the last of a key's, raises on the events at ``offsets`` once it
    is done: every stream of the key (features, categorical, accuracy) has been updated."""
    process = AccuracyFeeder.process

    def faulty(
        self: AccuracyFeeder, key: str, state: KeyState, evs: Sequence[Telemetry]
    ) -> list[DriftEvent]:
        out = process(self, key, state, evs)
        if any(e.offset in offsets for e in evs):
            raise RuntimeError("injected fault")
        return out

    monkeypatch.setattr(AccuracyFeeder, "process", faulty)


def _run(monitor: DriftMonitor, evs: list[Telemetry], batch: int = 100) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lo in range(0, len(evs), batch):
        out += [e.to_dict() for e in monitor.process(evs[lo : lo + batch])]
    return out


@pytest.mark.parametrize("rule", ["alpha", "ert"])
def test_a_key_whose_every_event_fails_is_exactly_as_before(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    evs = _events(1000)
    monitor = DriftMonitor(_settings(rule))
    _run(monitor, evs[:800])
    assert all(fs.detector is not None for st in monitor.keys.values() for fs in st.streams())
    before_a, before_b = key_to_data(monitor.keys["a"]), key_to_data(monitor.keys["b"])
    batch = evs[800:900]
    _faulty(monkeypatch, {e.offset for e in batch if e.key == "a"})
    monitor.process(batch)
    failed = monitor.take_failed()
    assert [ev.offset for ev, _ in failed] == [e.offset for e in batch if e.key == "a"]
    assert all(str(exc) == "injected fault" for _, exc in failed)
    assert same_plain(key_to_data(monitor.keys["a"]), before_a)
    assert not same_plain(key_to_data(monitor.keys["b"]), before_b)  # b's events were applied
    # b is as in a monitor that never saw a's events of the batch
    reference = DriftMonitor(_settings(rule))
    _run(reference, evs[:800])
    reference.process([e for e in batch if e.key == "b"])
    assert same_plain(
        key_to_data(monitor.keys["b"]), key_to_data(reference.keys["b"]), ignore=("seconds",)
    )


@pytest.mark.parametrize("rule", ["alpha", "ert"])
def test_one_failing_event_is_isolated_and_the_rest_continue_as_without_it(
    monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    evs = _events(2000)
    poison = 1302  # one of a's events, in its drift
    assert evs[poison].key == "a"
    _faulty(monkeypatch, {poison})
    monitor = DriftMonitor(_settings(rule))
    got = _run(monitor, evs)
    assert [ev.offset for ev, _ in monitor.take_failed()] == [poison]
    monkeypatch.undo()
    reference = DriftMonitor(_settings(rule))
    expected = _run(reference, [e for e in evs if e.offset != poison])
    assert got == expected
    assert {(e["key"], e["feature"]) for e in expected if e["type"] == "drift_started"} >= {
        ("a", "tokens"),
        ("a", "accuracy"),
    }
    for key in "ab":
        got_data, expected_data = key_to_data(monitor.keys[key]), key_to_data(reference.keys[key])
        assert same_plain(got_data, expected_data, ignore=("seconds",))


@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_an_infinite_value_is_isolated_like_a_fault(bad: float) -> None:
    # the finite values of a batch are checked once per key; an infinite one must still make
    # its detector refuse the event, which is isolated, the rest as without it
    evs = _events(2000)
    poison = 1304  # one of a's events, in its drift
    assert evs[poison].key == "a"
    e = evs[poison]
    evs[poison] = Telemetry(
        e.key,
        e.ts,
        (bad, *e.values[1:]),
        e.partition,
        e.offset,
        e.predicted_label,
        e.true_label,
        e.categories,
    )
    monitor = DriftMonitor(_settings("ert"))
    got = _run(monitor, evs)
    failed = monitor.take_failed()
    assert [ev.offset for ev, _ in failed] == [poison]
    assert isinstance(failed[0][1], ValueError) and "finite" in str(failed[0][1])
    reference = DriftMonitor(_settings("ert"))
    expected = _run(reference, [x for x in evs if x.offset != poison])
    assert got == expected
    for key in "ab":
        assert same_plain(
            key_to_data(monitor.keys[key]), key_to_data(reference.keys[key]), ignore=("seconds",)
        )


def _fault_after_second_feature(monkeypatch: pytest.MonkeyPatch, offsets: set[int]) -> list[int]:
    """The second numeric feature's feed raises, once it has updated its detector, on a key's
    batch holding one of ``offsets``: the first two features are fed, the key's offset ring,
    categorical and accuracy streams not yet. Returns the list the faults are counted in."""
    process, real_feed = detection.FeatureFeeder.process, detection.feed
    batch: list[Sequence[Telemetry]] = []
    fed: list[int] = []
    faults: list[int] = []

    def tracking(
        self: detection.FeatureFeeder, key: str, state: KeyState, evs: Sequence[Telemetry]
    ) -> list[DriftEvent]:
        batch[:] = [evs]
        fed[:] = []
        return process(self, key, state, evs)

    def faulty(*args: Any, **kwargs: Any) -> list[detection.Hit]:
        hits = real_feed(*args, **kwargs)
        fed.append(1)
        if len(fed) == 2 and any(e.offset in offsets for e in batch[0]):
            faults.append(1)
            raise RuntimeError("injected fault")
        return hits

    monkeypatch.setattr(detection.FeatureFeeder, "process", tracking)
    monkeypatch.setattr(detection, "feed", faulty)
    return faults


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_fault_in_the_middle_of_a_key_leaves_it_exactly_as_before(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # every numeric detector kind: its features are fed, then the key's processing raises
    settings = load_settings(
        environ={},
        features=("tokens", "latency"),
        feature_detectors={"tokens": kind, "latency": kind},
        categorical_features=("finish_reasons",),
        window_size=50,
        reference_size=100,
        alpha=1e-4,
    )
    evs = _events(1000)
    monitor = DriftMonitor(settings)
    _run(monitor, evs[:800])
    state = monitor.keys["a"]
    assert all(fs.detector is not None for fs in state.streams()) and state.categorical
    before_a = key_to_data(state)
    batch = evs[800:900]
    faults = _fault_after_second_feature(monkeypatch, {e.offset for e in batch if e.key == "a"})
    monitor.process(batch)
    a_events = [e.offset for e in batch if e.key == "a"]
    assert [ev.offset for ev, _ in monitor.take_failed()] == a_events
    assert len(faults) == 1 + len(a_events)  # the key's batch, then each event alone
    assert same_plain(key_to_data(monitor.keys["a"]), before_a)
    monkeypatch.undo()
    # the restored key continues exactly as one that never saw the failing events
    reference = DriftMonitor(settings)
    _run(reference, evs[:800])
    reference.process([e for e in batch if e.key == "b"])
    rest = evs[900:]
    assert _run(monitor, rest) == _run(reference, rest)
    for key in "ab":
        assert same_plain(
            key_to_data(monitor.keys[key]), key_to_data(reference.keys[key]), ignore=("seconds",)
        )
