"""A batch decoded in one pass gives what record-by-record decoding gives.

:meth:`RecordDecoder.decode_batch` (the consumer's path, through
:meth:`BatchProcessor.handle_records` on Kafka records) against :meth:`RecordDecoder.decode`
of each record: the same events in the same order, the same records rejected with the same
reasons and details, the same skipped and missing counts. The messages mix the simulator's
telemetry with hostile and unusual values (big integers, wrong types, missing keys and
features, non-finite numbers, no timestamp, tombstones, invalid JSON).
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage, raw_message
from stream.settings import load_settings
from stream.telemetry.decoding import RecordDecoder
from stream.telemetry.records import Invalid, Telemetry, TelemetryParser
from tests.support.pipeline import simulated_messages

_ODD: list[Any] = [
    None,
    "",
    "agent-9",
    7,
    2**64,
    10**30,
    -(2**63) - 1,
    1.5,
    -0.0,
    1e300,
    True,
    [1, 2],
    {"k": 1},
    "2026-05-21T10:00:00Z",
    "yesterday",
    1779350400123,
    -5,
]
_FIELDS = (
    "ts",
    "agent_id",
    "response_latency_ms",
    "token_count",
    "retry_count",
    "error_rate",
    "predicted_label",
    "true_label",
    "tool",
)


def _values(rng: random.Random, count: int) -> list[bytes | None]:
    base = [m.value for m in simulated_messages(count, agents=5, seed=rng.randrange(1000))]
    out: list[bytes | None] = []
    for raw in base:
        roll = rng.random()
        if roll < 0.5:
            out.append(raw)
            continue
        if roll < 0.53:
            out.append(rng.choice([None, b"{oops", b"[]", b"\xff\xfe", b"1e999", b""]))
            continue
        doc = msgspec.json.decode(raw or b"{}")
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(_FIELDS)
            if rng.random() < 0.3:
                doc.pop(name, None)
            else:
                doc[name] = rng.choice(_ODD)
        out.append(msgspec.json.encode(doc))
    return out


def _records(values: list[bytes | None]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord("t", i % 3, 100 + i, 1_779_350_400_000 + 7 * i, 0, b"k", v, None, 0, 0, ())
        for i, v in enumerate(values)
    ]


def _one_by_one(
    decoder: RecordDecoder, messages: list[RawMessage]
) -> tuple[list[Telemetry], list[tuple[int, Invalid]]]:
    events: list[Telemetry] = []
    rejected: list[tuple[int, Invalid]] = []
    for i, m in enumerate(messages):
        r = decoder.decode(m.value, partition=m.partition, offset=m.offset, timestamp=m.timestamp)
        if isinstance(r, Invalid):
            rejected.append((i, r))
        else:
            events.extend(r)
    return events, rejected


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"categorical_features": ("tool",)},
        {"key_fields": ("agent_id", "tool")},
        {"span_filter": "tool=search,crm"},
        {"features": ("token_count", "usage.output_tokens")},
    ],
)
def test_a_batch_decodes_as_its_records_do_one_by_one(config: dict[str, Any]) -> None:
    rng = random.Random(len(str(config)))
    settings = load_settings(environ={}, **config)
    values = _values(rng, 3000)
    records = _records(values)
    one = RecordDecoder.from_settings(settings)
    batch = RecordDecoder.from_settings(settings)
    expected = _one_by_one(one, [raw_message(r) for r in records])
    got = batch.decode_batch(records, 1000.0)
    assert got == expected
    assert batch.take_counts() == one.take_counts()
    assert expected[0] and expected[1]  # both paths were exercised
    # raw messages (timestamps in seconds) decode the same as the records they came from
    again = RecordDecoder.from_settings(settings)
    assert again.decode_batch([raw_message(r) for r in records]) == expected


def test_the_short_way_of_a_typed_read_is_the_full_validation() -> None:
    parser = TelemetryParser(load_settings(environ={}), sparse=True)
    assert parser._short
    rng = random.Random(3)
    for raw in _values(rng, 2000):
        if raw is None:
            continue
        try:
            values = msgspec.structs.astuple(parser._typed.decode(raw))
        except msgspec.DecodeError:
            continue
        assert parser._typed_event(values, 1, 2, 3.0) == parser._validate(values, 1, 2, 3.0)


def _processor() -> tuple[BatchProcessor, CollectorRegistry]:
    settings = load_settings(environ={}, window_size=50, reference_size=50, ert=10_000)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    monitor = DriftMonitor(settings, metrics=metrics)
    return BatchProcessor(TelemetryParser(settings, sparse=True), monitor, metrics, "t"), registry


def test_kafka_records_are_handled_as_their_raw_messages() -> None:
    rng = random.Random(5)
    records = _records(_values(rng, 1500))
    by_records, reg_records = _processor()
    by_messages, reg_messages = _processor()
    a = by_records.handle_records(records)
    b = by_messages.handle([raw_message(r) for r in records])
    assert a.processed == b.processed > 0
    assert a.drift_events == b.drift_events
    assert a.skipped == b.skipped and a.missing == b.missing
    assert [(d.message, d.reason, d.detail) for d in a.dead_letters] == [
        (d.message, d.reason, d.detail) for d in b.dead_letters
    ]
    assert a.dead_letters
    for name in ("driftwatch_invalid_events_total", "driftwatch_skipped_total"):
        for reason in ("invalid_json", "missing_key", "no_features", "bad_timestamp"):
            labels = {"reason": reason}
            assert reg_records.get_sample_value(name, labels) == reg_messages.get_sample_value(
                name, labels
            )
    assert a.dead_letters[0].message == raw_message(records[a.dead_letters[0].message.offset - 100])
