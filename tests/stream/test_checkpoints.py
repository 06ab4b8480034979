"""Checkpoint records and the monitor's side of recovery (no broker: see tests/integration)."""

from __future__ import annotations

import numpy as np
import pytest

from stream.checkpoints import (
    EPOCH_HEADER,
    claim_record,
    decode_marker,
    encode_marker,
    epoch_of,
    fold_records,
    key_record,
    marker_record,
)
from stream.monitor import DriftMonitor
from stream.records import Telemetry
from stream.settings import Settings

SETTINGS = Settings(window_size=30, reference_size=60, alpha=0.001, max_tracked_keys=3)


def events(keys: list[str], count: int, *, seed: int, partition_of: dict[str, int]) -> list:
    """``count`` events over ``keys``, with per-partition increasing offsets."""
    rng = np.random.default_rng(seed)
    next_offset = {p: 0 for p in set(partition_of.values())}
    out = []
    for i in range(count):
        key = keys[int(rng.integers(len(keys)))]
        p = partition_of[key]
        shift = 3.0 if key == "b" and i > count // 2 else 0.0
        values = (
            float(rng.lognormal(6 + shift, 0.4)),
            float(rng.poisson(300)),
            float(rng.integers(0, 3)),
            float(rng.beta(2, 60)),
        )
        out.append(Telemetry(key, 1_779_350_400 + i, values, p, next_offset[p]))
        next_offset[p] += 1
    return out


def digest(monitor: DriftMonitor) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, state in monitor.keys.items():
        streams = []
        for fs in state.features:
            det = fs.detector
            streams.append(
                None
                if det is None
                else (det.n_seen, det.in_drift, np.asarray(det.window).tolist(), fs.n_base)
            )
        out[key] = (state.seen, state.last_offset, streams)
    return out


def test_fold_records_keeps_the_latest_of_each_key_and_the_marker() -> None:
    records = [
        (key_record(0, "a"), b"a1", 3),
        (key_record(1, "x"), b"x1", 3),  # another telemetry partition in the same log
        (key_record(0, "b"), b"b1", 3),
        (marker_record(0), encode_marker(10, "w1", 2), 3),
        (key_record(0, "a"), b"a2", 3),
        (key_record(0, "b"), None, 3),  # evicted: tombstone
        (marker_record(0), b"not json", 3),  # unreadable: the previous marker stands
        (None, b"ignored", 3),
    ]
    folded = fold_records(records, [0, 2])
    assert set(folded) == {0, 2}
    assert folded[0].keys == {"a": b"a2"}
    assert folded[0].offset == 10 and folded[0].writer == "w1"
    assert folded[2].offset is None and folded[2].keys == {}


def test_records_of_a_superseded_writer_are_ignored() -> None:
    records = [
        (key_record(0, "a"), b"a-old", 4),
        (marker_record(0), encode_marker(100, "old", 1), 4),
        (claim_record(0), b"new", 5),  # a new owner took partition 0 over
        (key_record(0, "a"), b"a-zombie", 4),  # the old owner, still writing
        (marker_record(0), encode_marker(180, "old", 1), 4),
        (key_record(1, "z"), b"z", 2),  # partition 1 keeps its own epochs
        (key_record(0, "b"), b"b-new", 5),
    ]
    folded = fold_records(records, [0, 1])
    assert folded[0].keys == {"a": b"a-old", "b": b"b-new"}
    assert folded[0].offset == 100 and folded[0].epoch == 5
    assert folded[1].keys == {"z": b"z"}
    assert epoch_of([("other", b"1"), (EPOCH_HEADER, b"7")]) == 7
    assert epoch_of(None) == -1 and epoch_of([(EPOCH_HEADER, b"x")]) == -1


@pytest.mark.parametrize(
    "value", [b"{}", b'{"format": 1, "offset": -1}', b'{"format": 99, "offset": 3}', b"[]"]
)
def test_bad_markers_are_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="marker"):
        decode_marker(value)


def test_restore_then_replay_from_an_older_offset_applies_each_event_once() -> None:
    partition_of = {"a": 0, "b": 0, "c": 1}
    stream = events(list(partition_of), 3000, seed=3, partition_of=partition_of)
    whole = DriftMonitor(SETTINGS)
    whole_events = []
    for i in range(0, len(stream), 250):
        whole_events += whole.process(stream[i : i + 250])

    # a crash: key "a" was checkpointed late (at 2,000), "b" and "c" at the marker (1,200)
    first = DriftMonitor(SETTINGS)
    emitted = []
    for i in range(0, 1200, 250):
        emitted += first.process(stream[i : min(i + 250, 1200)])
    snap_bc = first.snapshot(keys=["b", "c"])
    emitted += first.process(stream[1200:2000])
    snap_a = first.snapshot(keys=["a"])

    second = DriftMonitor(SETTINGS)
    assert second.restore(snap_bc) == 2 and second.restore(snap_a) == 1
    for i in range(1200, len(stream), 250):  # replay from the marker
        emitted += second.process(stream[i : i + 250])
    assert digest(second) == digest(whole)
    assert second.skipped == sum(1 for e in stream[1200:2000] if e.key == "a")
    # drift events come again after the replay, with the same ids: deduplicated, they agree
    dedup = {e.event_id: e for e in emitted}
    assert dedup == {e.event_id: e for e in whole_events}
    assert any(e.key == "b" and e.type == "drift_started" for e in whole_events)


def test_changed_evicted_and_dropped_keys() -> None:
    partition_of = {"a": 0, "b": 1, "c": 1, "d": 2}
    stream = events(["a", "b", "c"], 300, seed=4, partition_of=partition_of)
    monitor = DriftMonitor(SETTINGS)
    monitor.process(stream)
    assert sorted(monitor.take_changed(1)) == ["b", "c"]
    assert monitor.take_changed(1) == []  # taken: unchanged until new events arrive
    assert monitor.take_changed(0) == ["a"]
    monitor.process(events(["d"], 5, seed=5, partition_of=partition_of))  # cap 3: evicts one
    evicted = monitor.take_evicted()
    assert len(evicted) == 1 and evicted[0][0] not in monitor.keys
    assert monitor.take_evicted() == []
    on_one = sum(1 for k in monitor.keys if partition_of[k] == 1)
    assert on_one >= 1 and monitor.drop_partitions({1}) == on_one
    assert all(st.partition != 1 for st in monitor.keys.values())
