"""Smoke tests for the session's Kafka broker: round trip and restart without data loss."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer

if TYPE_CHECKING:
    from .conftest import KafkaBroker, TopicFactory

KEYS = 17
DEADLINE_S = 60.0


def _message(i: int) -> tuple[str, str]:
    return f"agent-{i % KEYS}", f"event-{i:05d}"


def _make_producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        retries=10,
        max_in_flight_requests_per_connection=1,
    )


def _produce(producer: KafkaProducer, topic: str, start: int, count: int) -> None:
    futures = []
    for i in range(start, start + count):
        key, value = _message(i)
        futures.append(producer.send(topic, key=key.encode(), value=value.encode()))
    producer.flush(timeout=DEADLINE_S)
    for future in futures:
        future.get(timeout=DEADLINE_S)


async def _consume(bootstrap: str, topic: str, expected: int) -> list[tuple[str, str, int, int]]:
    """Read ``topic`` from the beginning until ``expected`` records (plus a short drain)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    records: list[tuple[str, str, int, int]] = []

    async def poll(timeout_ms: int) -> None:
        for messages in (await consumer.getmany(timeout_ms=timeout_ms)).values():
            records.extend(
                ((m.key or b"").decode(), (m.value or b"").decode(), m.partition, m.offset)
                for m in messages
            )

    await consumer.start()
    try:
        async with asyncio.timeout(DEADLINE_S):
            while len(records) < expected:
                await poll(1000)
        await poll(500)
    finally:
        await consumer.stop()
    return records


def _check(records: list[tuple[str, str, int, int]], total: int) -> None:
    assert len(records) == total
    assert sorted((key, value) for key, value, _, _ in records) == sorted(
        _message(i) for i in range(total)
    )
    assert len({(partition, offset) for _, _, partition, offset in records}) == total
    by_key: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
    partitions_of_key: defaultdict[str, set[int]] = defaultdict(set)
    for key, value, partition, offset in records:
        by_key[key].append((offset, value))
        partitions_of_key[key].add(partition)
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
    for values in by_key.values():
        in_offset_order = [value for _, value in sorted(values)]
        assert in_offset_order == sorted(in_offset_order)


def test_round_trip_1000_keyed_messages(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory
) -> None:
    topic = topic_factory("roundtrip", partitions=4)
    producer = _make_producer(kafka_broker.bootstrap)
    try:
        _produce(producer, topic, 0, 1000)
    finally:
        producer.close()

    records = asyncio.run(_consume(kafka_broker.bootstrap, topic, 1000))

    _check(records, 1000)
    assert {partition for _, _, partition, _ in records} == {0, 1, 2, 3}


def test_restart_keeps_data_and_address(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory
) -> None:
    topic = topic_factory("restart", partitions=4)
    bootstrap = kafka_broker.bootstrap
    producer = _make_producer(bootstrap)
    try:
        _produce(producer, topic, 0, 500)
        kafka_broker.restart()
        assert kafka_broker.bootstrap == bootstrap
        _produce(producer, topic, 500, 500)
        assert topic_factory("after-restart", partitions=1) != topic
    finally:
        producer.close()

    records = asyncio.run(_consume(bootstrap, topic, 1000))

    _check(records, 1000)
