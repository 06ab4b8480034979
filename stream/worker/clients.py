"""The telemetry consumer's Kafka clients: producer, group consumer, topics, reading to the end.

:class:`KafkaClients` starts and stops an idempotent producer (drift events, dead letters and
checkpoint records) and the consumer of the telemetry group, creates the topics the worker
writes when they are missing, sends records until the broker has acknowledged every one, and
reads partitions of a topic from start to end (the checkpoint topic, on assignment).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.settings import Settings
from stream.worker.kafka import aiokafka_client_config

__all__ = ["CHECKPOINT_MAX_BYTES", "RETRY_BACKOFF", "KafkaClients", "Out"]

log = logging.getLogger("driftwatch")

#: Largest checkpoint record (one key's snapshot): the topic and the producer allow this much.
CHECKPOINT_MAX_BYTES = 8 * 1024 * 1024
RETRY_BACKOFF = 1.0  # seconds between attempts to deliver output the broker refused
#: Error code of a topic that another worker created meanwhile.
_TOPIC_ALREADY_EXISTS = 36

#: A record to send: topic, key, value (None: a tombstone), headers.
Out = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]


class KafkaClients:
    """The producer and the telemetry group's consumer of one worker.

    Parameters
    ----------
    settings : Settings
        Kafka connection, topics, group, batch size and session timeout.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self, listener: ConsumerRebalanceListener) -> int:
        """Connect, create missing topics, join the group; return the checkpoint partitions.

        The checkpoint topic's partition count is 0 with checkpoints off.
        """
        s = self.settings
        client = aiokafka_client_config(s)
        self.producer = AIOKafkaProducer(
            **client,
            client_id=f"{s.app_id}-telemetry-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=CHECKPOINT_MAX_BYTES + 65_536,
        )
        await self.producer.start()
        checkpoint_partitions = await self.ensure_topics()
        self.consumer = AIOKafkaConsumer(
            **client,
            client_id=f"{s.app_id}-telemetry",
            group_id=s.telemetry_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.batch_size,
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(s.session_timeout * 1000 / 4),
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe([s.telemetry_topic], listener=listener)
        return checkpoint_partitions

    async def stop_consumer(self) -> None:
        """Leave the group."""
        if self.consumer is not None:
            await self.consumer.stop()

    async def stop_producer(self) -> None:
        """Flush and close the producer."""
        if self.producer is not None:
            await self.producer.stop()

    async def send_all(
        self, records: list[Out], partitions: list[int | None] | None = None
    ) -> None:
        """Send ``records`` (to ``partitions``, if given) until the broker acknowledged each."""
        producer = self.producer
        assert producer is not None
        todo = list(range(len(records)))
        while todo:
            futures = []
            for i in todo:
                topic, key, value, headers = records[i]
                part = None if partitions is None else partitions[i]
                futures.append(
                    await producer.send(topic, value, key=key, partition=part, headers=headers)
                )
            results = await asyncio.gather(*futures, return_exceptions=True)
            failed = [i for i, r in zip(todo, results, strict=True) if isinstance(r, Exception)]
            if failed:
                err = next(r for r in results if isinstance(r, Exception))
                log.warning(
                    "%d of %d records not delivered (%r); retrying", len(failed), len(todo), err
                )
                await asyncio.sleep(RETRY_BACKOFF)
            todo = failed

    async def ensure_topics(self) -> int:
        """Create the output topics and the compacted checkpoint topic if they are missing.

        Return the checkpoint topic's partition count (0 with checkpoints off). Brokers with
        ``auto.create.topics.enable=false`` would otherwise refuse the first drift event.
        """
        s = self.settings
        wanted = [
            NewTopic(s.drift_topic, s.topic_partitions, s.topic_replication_factor),
            NewTopic(s.dead_letter_topic, s.topic_partitions, s.topic_replication_factor),
        ]
        if s.checkpoints:
            wanted.append(
                NewTopic(
                    s.checkpoint_topic_name,
                    num_partitions=s.topic_partitions,
                    replication_factor=s.topic_replication_factor,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "max.message.bytes": str(CHECKPOINT_MAX_BYTES + 65_536),
                        "segment.ms": "600000",
                        "min.cleanable.dirty.ratio": "0.2",
                    },
                )
            )
        admin = AIOKafkaAdminClient(**aiokafka_client_config(s), client_id=f"{s.app_id}-admin")
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t.name not in existing]
            if missing:
                try:
                    response = await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another worker created them meanwhile
                else:
                    errors = [
                        e for e in response.topic_errors if e[1] not in (0, _TOPIC_ALREADY_EXISTS)
                    ]
                    if errors:
                        raise RuntimeError(f"cannot create topics: {errors}")
                    log.info("created topics %s", [t.name for t in missing])
        finally:
            await admin.close()
        if not s.checkpoints:
            return 0
        assert self.producer is not None
        return len(await self.producer.partitions_for(s.checkpoint_topic_name))

    async def read_to_end(
        self, topic: str, partitions: Iterable[int], *, max_record_bytes: int
    ) -> list[tuple[bytes | None, bytes | None]]:
        """The (key, value) records of ``partitions`` of ``topic``, start to end, in log order
        per partition (read without a group)."""
        s = self.settings
        reader = AIOKafkaConsumer(
            **aiokafka_client_config(s),
            client_id=f"{s.app_id}-checkpoint-reader",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=max_record_bytes + 65_536,
        )
        await reader.start()
        try:
            tps = [TopicPartition(topic, q) for q in sorted(set(partitions))]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            records: list[tuple[bytes | None, bytes | None]] = []
            remaining = {tp for tp in tps if ends[tp] > 0}
            while remaining:
                got = await reader.getmany(*remaining, timeout_ms=1000)
                for recs in got.values():
                    records.extend((r.key, r.value) for r in recs)
                for tp in list(remaining):
                    if await reader.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            return records
        finally:
            await reader.stop()

    # ---------------------------------------------------------- the telemetry group's offsets
    def _telemetry(self, partition: int) -> TopicPartition:
        return TopicPartition(self.settings.telemetry_topic, partition)

    def _group(self) -> AIOKafkaConsumer:
        assert self.consumer is not None
        return self.consumer

    async def commit(self, positions: Mapping[int, int]) -> None:
        """Commit the next offset to read of each telemetry partition in ``positions``."""
        await self._group().commit({self._telemetry(p): o for p, o in positions.items()})

    async def committed(self, partition: int) -> int | None:
        """The group's committed offset of a telemetry partition (None: nothing committed)."""
        offset: int | None = await self._group().committed(self._telemetry(partition))
        return offset

    async def start_offset(self, partition: int) -> int:
        """Where a telemetry partition without a checkpoint starts: committed, or beginning."""
        committed = await self.committed(partition)
        if committed is not None:
            return committed
        tp = self._telemetry(partition)
        beginning: int = (await self._group().beginning_offsets([tp]))[tp]
        return beginning

    async def end_offsets(self, partitions: Iterable[int]) -> dict[int, int]:
        """The log end offset of each telemetry partition."""
        ends = await self._group().end_offsets([self._telemetry(p) for p in sorted(partitions)])
        return {tp.partition: end for tp, end in ends.items()}

    def seek(self, positions: Mapping[int, int]) -> None:
        """Read each telemetry partition in ``positions`` next from its position."""
        consumer = self._group()
        for p, offset in positions.items():
            consumer.seek(self._telemetry(p), offset)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        """The next batch of telemetry records, by partition."""
        batch: dict[TopicPartition, list[Any]] = await self._group().getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return batch
