"""Checkpoint records and the monitor's side of recovery (no broker: see tests/integration)."""

from __future__ import annotations

import asyncio
import pickle
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor
from stream.settings import Settings
from stream.telemetry.records import Telemetry, TelemetryParser
from stream.worker import checkpointer as checkpointer_module
from stream.worker import checkpoints as checkpoints_module
from stream.worker.checkpoints import (
    CHECKPOINT_VERSION,
    READABLE_VERSIONS,
    CheckpointCodec,
    LazyBody,
    LoopSlices,
    RecordRejected,
    claim_record,
    fold_records,
    key_record,
    marker_body,
    marker_record,
)
from stream.worker.consumer import TelemetryConsumer
from stream.worker.rounds import IN_FLIGHT_CHUNKS

DATA = Path(__file__).parent / "data"
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


CODEC = CheckpointCodec()


def rec(key: bytes, body: object, claim: int = 1, codec: CheckpointCodec = CODEC) -> tuple:
    return key, codec.encode(key, claim, body)


def claim(partition: int, number: int) -> tuple:
    return rec(claim_record(partition), {"writer": "w"}, number)


def test_fold_records_keeps_the_latest_of_each_key_and_the_marker() -> None:
    records = [
        claim(0, 1),
        claim(1, 1),
        rec(key_record(0, "a"), "a1"),
        rec(key_record(1, "x"), "x1"),  # another telemetry partition in the same log
        rec(key_record(0, "b"), "b1"),
        rec(marker_record(0), marker_body(10, "w1", 2)),
        rec(key_record(0, "a"), "a2"),
        (key_record(0, "b"), None),  # evicted: tombstone
        rec(marker_record(0), {"offset": -1}),  # unusable: the previous marker stands
        (marker_record(0), b"not a record"),
        (None, b"ignored"),
    ]
    rejected: Counter[str] = Counter()
    folded = fold_records(records, [0, 2], CODEC, rejected)
    assert set(folded) == {0, 2}
    assert folded[0].keys == {"a": "a2"}
    assert folded[0].offset == 10 and folded[0].writer == "w1"
    assert folded[2].offset is None and folded[2].keys == {}
    assert rejected == {"malformed": 1, "not_a_checkpoint": 1}


def test_records_of_a_superseded_writer_are_ignored() -> None:
    records = [
        claim(0, 4),
        rec(key_record(0, "a"), "a-old", 4),
        rec(marker_record(0), marker_body(100, "old", 1), 4),
        claim(0, 5),  # a new owner took partition 0 over
        rec(key_record(0, "a"), "a-zombie", 4),  # the old owner, still writing
        rec(marker_record(0), marker_body(180, "old", 1), 4),
        claim(1, 2),
        rec(key_record(1, "z"), "z", 2),  # partition 1 keeps its own claims
        rec(key_record(0, "b"), "b-new", 5),
    ]
    rejected: Counter[str] = Counter()
    folded = fold_records(records, [0, 1], CODEC, rejected)
    assert folded[0].keys == {"a": "a-old", "b": "b-new"}
    assert folded[0].offset == 100 and folded[0].claim == 5
    assert folded[1].keys == {"z": "z"} and folded[1].claim == 2
    assert rejected == {"fenced": 2}


def test_a_claim_far_ahead_and_records_above_every_claim_are_refused() -> None:
    records = [
        claim(0, 3),
        rec(key_record(0, "a"), "a", 3),
        claim(0, 10**9),  # absurdly far ahead: refused, so it fences nobody out
        rec(key_record(0, "b"), "b", 10**9),  # claimed by nobody
        rec(key_record(0, "c"), "c", 7),  # above the latest claim: refused too
        rec(marker_record(0), marker_body(42, "w", 1), 3),
    ]
    rejected: Counter[str] = Counter()
    folded = fold_records(records, [0], CODEC, rejected)
    assert folded[0].keys == {"a": "a"} and folded[0].offset == 42 and folded[0].claim == 3
    assert rejected == {"claim_ahead": 3}


def test_values_round_trip_with_little_endian_arrays() -> None:
    body = {
        "f": np.array([1.5, -2.0]),
        "i": np.arange(3, dtype=np.int64),
        "b": np.array([True, False]),
        "t": np.array([7], dtype=np.int32),
        "n": None,
    }
    value = CODEC.encode(b"0/k/x", 9, body)
    assert value[:4] == b"DWCK" and value[4] == CHECKPOINT_VERSION
    got_claim, got = CODEC.decode(b"0/k/x", value)
    assert got_claim == 9 and got.keys() == body.keys() and got["n"] is None
    for name in ("f", "i", "b", "t"):
        assert got[name].dtype == body[name].dtype and np.array_equal(got[name], body[name])
    with pytest.raises(TypeError):
        CODEC.encode(b"k", 1, {"x": object()})


def bad_values() -> dict[str, bytes]:
    good = CODEC.encode(b"0/k/x", 1, {"v": np.arange(10.0)})
    return {
        "not_a_checkpoint": pickle.dumps({"x": 1}),
        "truncated": good[:-7],
        "version": good[:4] + bytes((99,)) + good[5:],
        "malformed": good[:6] + msgpack.packb([1, 2]),
    }


@pytest.mark.parametrize("reason", ["not_a_checkpoint", "truncated", "version", "malformed"])
def test_bad_records_are_rejected_with_their_reason(reason: str) -> None:
    with pytest.raises(RecordRejected) as info:
        CODEC.decode(b"0/k/x", bad_values()[reason])
    assert info.value.reason == reason


def test_signed_records() -> None:
    signed = CheckpointCodec(b"0123456789abcdef-key")
    value = signed.encode(b"0/k/x", 2, {"v": 1})
    assert signed.decode(b"0/k/x", value) == (2, {"v": 1})
    assert CODEC.decode(b"0/k/x", value) == (2, {"v": 1})  # readable without checking
    for bad, reason in (
        (CODEC.encode(b"0/k/x", 2, {"v": 1}), "unsigned"),
        (value[:-1] + bytes((value[-1] ^ 1,)), "bad_signature"),
        (CheckpointCodec(b"another-key-0123456").encode(b"0/k/x", 2, {"v": 1}), "bad_signature"),
    ):
        with pytest.raises(RecordRejected) as info:
            signed.decode(b"0/k/x", bad)
        assert info.value.reason == reason
    with pytest.raises(RecordRejected, match="bad_signature"):
        signed.decode(b"0/k/y", value)  # signed for another key: not movable


def test_the_previous_version_stays_readable() -> None:
    # A record written by version 1 (checked in): every later version must read it.
    value = (DATA / "checkpoint-v1.bin").read_bytes()
    assert value[4] == 1 and 1 in READABLE_VERSIONS
    monitor = DriftMonitor(SETTINGS)
    claim_number, body = CODEC.decode(b"0/k/a", value)
    assert claim_number == 3 and monitor.restore(body) == 1
    expected = DriftMonitor(SETTINGS)
    expected.process(events(["a"], 200, seed=11, partition_of={"a": 0}))
    assert digest(monitor) == digest(expected)


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


def test_loop_slices_let_other_tasks_run_between_slices() -> None:
    ticks: list[float] = []
    clock = iter(range(0, 10_000))
    slices = LoopSlices(5.0, clock=lambda: float(next(clock)))

    async def ticker() -> None:
        while True:
            ticks.append(1.0)
            await asyncio.sleep(0)

    async def job() -> list[int]:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        done = []
        for i in range(50):
            await slices.pause()
            done.append(i)
        task.cancel()
        return done

    assert asyncio.run(job()) == list(range(50))  # in order, all of it
    # each clock read advances it by 1: a pause at 5, 11, 17, ... (a yield's reset reads it once)
    # so one yield every 5 pauses
    assert slices.yields == 10
    assert len(ticks) >= slices.yields


def consumer_with_changed_keys() -> tuple[TelemetryConsumer, DriftMonitor, list[list[bytes]]]:
    partition_of = {"a": 0, "b": 1, "c": 1}
    monitor = DriftMonitor(SETTINGS)
    monitor.process(events(["a", "b", "c"], 300, seed=4, partition_of=partition_of))
    metrics = Metrics(CollectorRegistry())
    processor = BatchProcessor(TelemetryParser(SETTINGS), monitor, metrics, "agent-telemetry")
    consumer = TelemetryConsumer(SETTINGS, processor, metrics)
    consumer.positions = {0: 120, 1: 180}
    consumer.checkpointer.partitions = 2
    sent: list[list[bytes]] = []

    async def send_all(records: list[tuple], targets: list[int | None]) -> None:
        await asyncio.sleep(0)
        sent.append([record_key for _, record_key, _, _ in records])

    consumer.clients.send_all = send_all  # type: ignore[method-assign]
    return consumer, monitor, sent


def test_a_sliced_round_writes_every_key_before_the_markers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpointer_module, "LoopSlices", lambda: LoopSlices(0.0))  # yield per key
    consumer, monitor, sent = consumer_with_changed_keys()
    ticks = 0

    async def round_with_a_ticker() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await consumer.checkpointer.write(consumer.positions)
        task.cancel()

    asyncio.run(round_with_a_ticker())
    keys, markers = sent
    assert sorted(keys) == sorted(key_record(p, k) for k, p in (("a", 0), ("b", 1), ("c", 1)))
    assert markers == [marker_record(0), marker_record(1)]
    assert ticks >= 3  # the loop ran between the keys
    assert monitor.take_changed(0) == [] and monitor.take_changed(1) == []


def test_a_round_cancelled_between_slices_writes_its_keys_next_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpointer_module, "LoopSlices", lambda: LoopSlices(0.0))
    consumer, monitor, sent = consumer_with_changed_keys()

    async def cancelled_round() -> None:
        task = asyncio.create_task(consumer.checkpointer.write(consumer.positions))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # inside the encoding, between two keys
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled_round())
    assert sent == []  # nothing was sent, no marker
    assert monitor.take_changed(0) == ["a"]
    assert sorted(monitor.take_changed(1)) == ["b", "c"]


def test_a_background_round_lets_processing_go_on_and_the_next_round_waits_for_it() -> None:
    consumer, monitor, sent = consumer_with_changed_keys()
    release = asyncio.Event()
    commits: list[dict[int, int]] = []

    async def commit(positions: dict[int, int]) -> None:
        commits.append(dict(positions))

    async def slow_send_all(records: list[tuple], targets: list[int | None]) -> None:
        await release.wait()
        sent.append([record_key for _, record_key, _, _ in records])

    consumer.clients.send_all = slow_send_all  # type: ignore[method-assign]
    checkpointer = consumer.checkpointer

    async def scenario() -> None:
        await checkpointer.round(consumer.positions, commit, background=True)
        # returned with the keys encoded and taken; nothing acknowledged or committed yet
        assert sent == [] and commits == []
        assert monitor.take_changed(0) == [] and monitor.take_changed(1) == []
        second = asyncio.create_task(checkpointer.round({0: 130}, commit))
        await asyncio.sleep(0.01)
        assert not second.done()  # waits for the first round to finish
        release.set()
        await second

    asyncio.run(scenario())
    keys, markers, second_markers = sent
    assert sorted(keys) == sorted(key_record(p, k) for k, p in (("a", 0), ("b", 1), ("c", 1)))
    assert markers == [marker_record(0), marker_record(1)]
    assert second_markers == [marker_record(0)]  # no key changed in between
    assert commits == [{0: 120, 1: 180}, {0: 130}]


def test_a_large_round_goes_out_in_bounded_chunks_before_its_markers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(checkpointer_module, "CHUNK_BYTES", 1)  # one key per chunk
    consumer, _, sent = consumer_with_changed_keys()
    in_flight = 0
    most = 0

    async def send_all(records: list[tuple], targets: list[int | None]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        sent.append([record_key for _, record_key, _, _ in records])

    consumer.clients.send_all = send_all  # type: ignore[method-assign]
    stats = asyncio.run(consumer.checkpointer.write(consumer.positions))
    assert stats.keys == 3 and stats.bytes > 0
    *chunks, markers = sent
    assert [len(c) for c in chunks] == [1, 1, 1]
    assert markers == [marker_record(0), marker_record(1)]
    assert most == IN_FLIGHT_CHUNKS


def envelope(payload: object, codec: CheckpointCodec = CODEC, key: bytes = b"0/k/x") -> bytes:
    """A record of any msgpack ``payload`` (signed if ``codec`` signs), the envelope valid."""
    raw = msgpack.packb(payload)
    signed = codec._key is not None
    head = b"DWCK" + bytes((CHECKPOINT_VERSION, 1 if signed else 0))
    return head + (codec._mac(key, head, raw) if signed else b"") + raw


#: A body msgpack frames well but that does not decode (an unknown extension type).
BAD_BODY = msgpack.ExtType(9, b"\x01")


def outcome(call: Callable[[], tuple[int, object]]) -> tuple:
    try:
        claim, body = call()
    except RecordRejected as exc:
        return ("rejected", exc.reason, exc.detail)
    if isinstance(body, LazyBody):
        try:
            body = body.value()
        except RecordRejected as exc:
            return ("body rejected", exc.reason, exc.detail)
    return ("read", claim, repr(body))


def payloads() -> dict[str, bytes]:
    good = CODEC.encode(b"0/k/x", 1, {"v": np.arange(10.0)})
    raw = good[6:]
    return {
        **bad_values(),
        "empty payload": good[:6],
        "payload not a map": envelope([1, 2]),
        "truncated array payload": good[:6] + b"\x92\x01",
        "no claim": envelope({"body": 1}),
        "no body": envelope({"claim": 1}),
        "negative claim": envelope({"claim": -1, "body": 1}),
        "boolean claim": envelope({"claim": True, "body": 1}),
        "claim not a number": envelope({"claim": "1", "body": 1}),
        "claim an extension": envelope({"claim": BAD_BODY, "body": 1}),
        "bytes keys": envelope({b"claim": 1, b"body": 1}),
        "integer key": good[:6] + b"\x83\x01\x02" + raw[1:],
        "extra data": good + b"\x00",
        "truncated body": good[:-1],
        "body first, more fields": envelope({"body": [1, "x"], "extra": {"a": 1}, "claim": 7}),
        "body of null": envelope({"claim": 2, "body": None}),
        "bad body": envelope({"claim": 2, "body": BAD_BODY}),
        "good": good,
    }


@pytest.mark.parametrize("case", list(payloads()))
def test_open_checks_what_decode_checks(case: str) -> None:
    value = payloads()[case]
    decoded, opened = (
        outcome(lambda: CODEC.decode(b"0/k/x", value)),
        outcome(lambda: CODEC.open(b"0/k/x", value)),
    )
    if case == "bad body":  # found once the body is asked for: the same rejection, later
        assert opened == ("body rejected", *decoded[1:]) and decoded[:2] == (
            "rejected",
            "malformed",
        )
    else:
        assert opened == decoded
    if case in bad_values():
        assert decoded[:2] == ("rejected", case)
    if case in ("good", "body first, more fields", "body of null", "bad body"):
        assert CODEC.open(b"0/k/x", value)[1].pending  # skipped over, not decoded


def test_open_checks_signatures_as_decode_does() -> None:
    signed = CheckpointCodec(b"0123456789abcdef-key")
    value = signed.encode(b"0/k/x", 2, {"v": 1})
    claim_number, body = signed.open(b"0/k/x", value)
    assert claim_number == 2 and body.pending and body.value() == {"v": 1} and not body.pending
    for bad, key, reason in (
        (CODEC.encode(b"0/k/x", 2, {"v": 1}), b"0/k/x", "unsigned"),
        (value[:-1] + bytes((value[-1] ^ 1,)), b"0/k/x", "bad_signature"),
        (value, b"0/k/y", "bad_signature"),  # signed for another key
        (
            envelope({"claim": 2, "body": 1}, CheckpointCodec(b"another-key-01234")),
            b"0/k/x",
            "bad_signature",
        ),
        (value[:5] + b"\x00" + value[6:], b"0/k/x", "unsigned"),
    ):
        for read in (signed.open, signed.decode):
            with pytest.raises(RecordRejected) as info:
                read(key, bad)
            assert info.value.reason == reason


def test_a_lazy_body_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_decodes(monkeypatch)
    _, body = CODEC.open(b"0/k/x", CODEC.encode(b"0/k/x", 1, ["state"]))
    assert calls == []
    assert body.value() == ["state"] and body.value() == ["state"] and len(calls) == 1
    _, bad = CODEC.open(b"0/k/x", envelope({"claim": 1, "body": BAD_BODY}))
    for _ in range(2):
        with pytest.raises(RecordRejected, match="malformed"):
            bad.value()
    assert len(calls) == 2


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The values every msgpack decode of the checkpoint codec returns, from now on."""
    calls: list[object] = []
    unpack = checkpoints_module._unpack

    def counted(data: bytes | memoryview) -> object:
        try:
            out = unpack(data)
        except RecordRejected as exc:
            calls.append(exc)
            raise
        calls.append(out)
        return out

    monkeypatch.setattr(checkpoints_module, "_unpack", counted)
    return calls


def test_only_the_winning_record_of_a_key_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [
        claim(0, 1),
        rec(key_record(0, "a"), "a1"),
        rec(key_record(0, "b"), "b1"),
        rec(key_record(0, "a"), "a2"),
        (key_record(0, "b"), None),
        rec(key_record(0, "c"), "c1"),
        rec(key_record(0, "b"), "b2"),
        rec(key_record(0, "a"), "a3"),
        rec(marker_record(0), marker_body(10, "w", 3)),
        rec(key_record(0, "c"), "c-zombie", 0),  # fenced out: never wins
        rec(key_record(0, "d"), "d1"),
        (key_record(0, "d"), None),
    ]
    calls = count_decodes(monkeypatch)
    folded = fold_records(records, [0], CODEC)
    assert list(folded[0].keys.items()) == [("a", "a3"), ("c", "c1"), ("b", "b2")]
    assert folded[0].offset == 10
    keys_decoded = [c for c in calls if isinstance(c, str)]
    assert sorted(keys_decoded) == ["a3", "b2", "c1"]
    assert len(calls) == 3 + 2  # the winners, the claim and the marker


def eager_fold(records: list, codec: CheckpointCodec, rejected: Counter[str]) -> dict:
    """fold_records with every key record decoded as it is read (the outcome to keep)."""

    class Eager(CheckpointCodec):
        def open(self, record_key: bytes, value: bytes) -> tuple[int, LazyBody]:
            claim_number, body = codec.decode(record_key, value)
            return claim_number, LazyBody.decoded(body)

    return fold_records(records, [0], Eager(), rejected)


def test_a_bad_winner_falls_back_to_the_key_s_previous_record() -> None:
    bad = envelope({"claim": 1, "body": BAD_BODY})
    records = [
        claim(0, 1),
        rec(key_record(0, "a"), "a1"),
        rec(key_record(0, "b"), "b1"),
        rec(key_record(0, "a"), "a2"),
        (key_record(0, "a"), bad),  # the winner of "a": falls back to a2
        (key_record(0, "b"), None),
        (key_record(0, "b"), bad),  # after the tombstone, nothing to fall back to
        rec(key_record(0, "c"), "c1"),
        (key_record(0, "c"), bad),
        (key_record(0, "c"), bad),  # both bad: c1
        rec(key_record(0, "e"), "e1"),
        rec(key_record(0, "e"), None),  # a null state deletes the key, as before
        (key_record(0, "e"), bad),
        rec(marker_record(0), marker_body(10, "w", 3)),
    ]
    rejected: Counter[str] = Counter()
    folded = fold_records(records, [0], CODEC, rejected)
    assert list(folded[0].keys.items()) == [("a", "a2"), ("c", "c1")]
    assert rejected == {"malformed": 5}
    expected: Counter[str] = Counter()
    assert list(eager_fold(records, CODEC, expected)[0].keys.items()) == [("a", "a2"), ("c", "c1")]
    assert expected == rejected


def test_the_lazy_fold_restores_what_decoding_every_record_restores() -> None:
    partition_of = {"a": 0, "b": 0, "c": 0}
    stream = events(list(partition_of), 900, seed=3, partition_of=partition_of)
    monitor = DriftMonitor(SETTINGS)
    records = [claim(0, 1)]
    for lo in range(0, len(stream), 300):
        monitor.process(stream[lo : lo + 300])
        for key in monitor.take_changed(0):
            records.append(rec(key_record(0, key), monitor.snapshot(keys=[key])))
        records.append(rec(marker_record(0), marker_body(lo + 300, "w", 3)))
    rejected: Counter[str] = Counter()
    lazy = fold_records(records, [0], CODEC, rejected)[0]
    eager = eager_fold(records, CODEC, rejected)[0]
    assert list(lazy.keys) == list(eager.keys) and rejected == {}
    for key in lazy.keys:
        back, again = DriftMonitor(SETTINGS), DriftMonitor(SETTINGS)
        assert back.restore(lazy.keys[key]) == again.restore(eager.keys[key]) == 1
        assert digest(back) == digest(again)
