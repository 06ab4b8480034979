"""Consumer lag: end offset minus next offset to process; series removed on revoke."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor
from stream.settings import load_settings
from stream.telemetry.records import TelemetryParser
from stream.worker.consumer import TelemetryConsumer
from stream.worker.lag import LagTracker, consumer_lag, refresh_every

TOPIC = "agent-telemetry"


def _lag(registry: CollectorRegistry, partition: int) -> float | None:
    return registry.get_sample_value(
        "driftwatch_consumer_lag", {"topic": TOPIC, "partition": str(partition)}
    )


def test_lag_is_the_end_offset_minus_the_next_offset_to_process() -> None:
    # position 10 (offsets 0..9 processed), end 25 (offsets up to 24 written): 15 to go
    assert consumer_lag({0: 10, 1: 7, 2: 3}, {0: 25, 1: 7, 3: 9}) == {0: 15, 1: 0}
    # an end behind the position (a truncated or recreated topic) reads 0, not negative
    assert consumer_lag({0: 10}, {0: 4}) == {0: 0}


def test_tracker_sets_assigned_partitions_and_forgets_the_rest() -> None:
    registry = CollectorRegistry()
    tracker = LagTracker(Metrics(registry).consumer_lag, TOPIC)
    tracker.refresh({0: 5, 1: 5, 2: 5}, {0: 9, 1: 6, 2: 5}, {0, 1, 2})
    assert [_lag(registry, p) for p in (0, 1, 2)] == [4.0, 1.0, 0.0]
    tracker.refresh({0: 5, 1: 5, 2: 5}, {0: 12, 1: 6, 2: 5}, {0, 1})  # 2 went elsewhere
    assert [_lag(registry, p) for p in (0, 1, 2)] == [7.0, 1.0, None]
    tracker.forget({0})
    assert _lag(registry, 0) is None and _lag(registry, 1) == 1.0
    tracker.forget({7})  # never exported: nothing to do


class _FakeKafka:
    """The two consumer calls the lag needs, answered from a dict of end offsets."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends
        self.committed: list[dict[TopicPartition, int]] = []

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp.partition] for tp in tps}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets)


def _consumer(registry: CollectorRegistry, fake: _FakeKafka) -> TelemetryConsumer:
    settings = load_settings(environ={}, checkpoints=False)
    metrics = Metrics(registry)
    processor = BatchProcessor(
        TelemetryParser(settings), DriftMonitor(settings), metrics, settings.telemetry_topic
    )
    consumer = TelemetryConsumer(settings, processor, metrics)
    consumer.clients.consumer = fake  # type: ignore[assignment]
    return consumer


def test_the_consumer_refreshes_from_end_offsets_and_drops_revoked_series() -> None:
    async def scenario() -> None:
        registry = CollectorRegistry()
        fake = _FakeKafka({0: 100, 1: 50, 2: 80})
        consumer = _consumer(registry, fake)
        consumer.assigned = {0, 1, 2}
        consumer.positions = {0: 40, 1: 50, 2: 0}
        await consumer.refresh_lag()
        assert [_lag(registry, p) for p in (0, 1, 2)] == [60.0, 0.0, 80.0]
        # nothing processed meanwhile (a delivery being retried): the lag keeps rising
        fake.ends[0] = 130
        await consumer.refresh_lag()
        assert _lag(registry, 0) == 90.0
        await consumer.on_revoked({1, 2})
        assert fake.committed  # the revoked partitions were committed first
        assert [_lag(registry, p) for p in (0, 1, 2)] == [90.0, None, None]
        await consumer.refresh_lag()
        assert _lag(registry, 1) is None  # not brought back by the next refresh

    asyncio.run(scenario())


def test_refresh_every_survives_failures_and_stops() -> None:
    async def scenario() -> int:
        stopping = asyncio.Event()
        calls = 0

        async def refresh() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("broker away")
            if calls == 3:
                stopping.set()

        await asyncio.wait_for(refresh_every(0.001, refresh, stopping), timeout=30)
        return calls

    assert asyncio.run(scenario()) == 3


def test_an_empty_assignment_exports_nothing() -> None:
    registry = CollectorRegistry()
    tracker = LagTracker(Metrics(registry).consumer_lag, TOPIC)
    assert tracker.refresh({}, {}, ()) == {}
    assert _lag(registry, 0) is None
