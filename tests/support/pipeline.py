"""Simulated telemetry for the pipeline (as the processor's raw messages, or sent to Kafka), and
reading topics back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import msgspec

from stream.monitoring.processor import RawMessage
from stream.tools.simulation import DriftSpec, TelemetrySimulator

#: The first event time of the simulated streams (2026-05-21T08:00:00Z).
START_MS = 1_779_350_400_000
#: What the tests' producers use unless told otherwise.
PRODUCER_CONFIG: Mapping[str, Any] = {"acks": "all", "linger_ms": 5}

Record = tuple[bytes | None, bytes]


def simulated_messages(
    count: int,
    *,
    agents: int = 4,
    seed: int = 0,
    drift: DriftSpec | None = None,
    step_ms: float = 10.0,
) -> list[RawMessage]:
    """``count`` simulated events as raw messages of partition 0, offsets from 0."""
    sim = TelemetrySimulator(agents, seed=seed, drift=drift)
    return [
        RawMessage(ev["agent_id"].encode(), msgspec.json.encode(ev), 0, i)
        for i, ev in enumerate(sim.events(count, start_ms=START_MS, step_ms=step_ms))
    ]


def telemetry_records(events: Iterable[dict[str, Any]]) -> Iterator[Record]:
    """Events as Kafka records: keyed by agent, the value their JSON."""
    for ev in events:
        yield ev["agent_id"].encode(), msgspec.json.encode(ev)


def produce(topic: str, records: Iterable[Record], **config: Any) -> int:
    """Send ``records`` to ``topic`` and flush; the number sent.

    ``config`` goes to ``KafkaProducer`` (``bootstrap_servers`` at least), over
    :data:`PRODUCER_CONFIG`.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(**{**PRODUCER_CONFIG, **config})
    sent = 0
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def consume(topic: str, expected: int, timeout: float = 30.0, **config: Any) -> list[Any]:
    """The records of ``topic`` from the beginning, until ``expected`` of them or ``timeout``
    seconds without one; ``config`` goes to ``KafkaConsumer`` (``bootstrap_servers`` at least)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        **config,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000),
    )
    records: list[Any] = []
    try:
        for record in consumer:
            records.append(record)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def read_partitions(
    bootstrap: str, topic: str, partitions: int, want: int, timeout: float = 120.0
) -> list[Any]:
    """The records of partitions ``0 .. partitions-1`` of ``topic`` from the beginning, polled
    until there are ``want`` of them or ``timeout`` seconds have passed."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                got.extend(recs)
    finally:
        consumer.close()
    return got


def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    give_up: Callable[[], bool] = lambda: False,
) -> list[Any]:
    """Every record of ``topic`` once its end offsets add up to ``expected``, on timeout, or
    as soon as ``give_up()``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        deadline = time.monotonic() + timeout
        while sum(consumer.end_offsets(partitions).values()) < expected:
            if time.monotonic() >= deadline or give_up():
                break
            time.sleep(0.2)
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: list[Any] = []
        end = sum(consumer.end_offsets(partitions).values())
        while len(records) < end:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        consumer.close()
