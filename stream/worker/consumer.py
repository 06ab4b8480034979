"""The telemetry consumer: batches from Kafka, detection, acknowledged output, checkpoints.

Faust's per-event ``Stream`` costs tens of microseconds an event before any work is done, more
than the detectors themselves, so telemetry is read in batches with ``aiokafka``'s ``getmany``
by this service, which the Faust app starts and stops with the worker (the control topic is an
ordinary Faust agent). The service owns its consumer group (``<app_id>.telemetry``) so that it
can tie detector state to offsets:

1. a batch is processed and its drift events and dead letters are sent; the batch counts as done
   once the broker has acknowledged them all (a failed send is retried, never skipped);
2. every ``checkpoint_interval`` seconds, on a rebalance and on shutdown, the keys changed since
   the last round are written to the compacted checkpoint topic, then each partition's marker
   (the next offset to read), then that offset is committed (:mod:`stream.worker.checkpoints`);
3. on partition assignment the keys of the new partitions are restored from the checkpoint topic
   and reading resumes at the marker; events a restored key already holds are skipped.

So after a crash each key's windows hold every event exactly once, and drift events sent after
the last round are sent again with the same ``event_id`` (consumers deduplicate on it).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.metrics import Metrics
from stream.monitor import DriftMonitor
from stream.processor import BatchProcessor, DeadLetter, RawMessage
from stream.settings import Settings
from stream.telemetry.records import DriftEvent
from stream.worker.checkpoints import (
    CheckpointCodec,
    LoopSlices,
    PartitionCheckpoint,
    claim_record,
    fold_records,
    key_record,
    marker_body,
    marker_record,
)
from stream.worker.kafka import aiokafka_client_config
from stream.worker.lag import LAG_INTERVAL, LagTracker, refresh_every
from stream.worker.rebalance import plan_assignment

__all__ = ["TelemetryConsumer"]

log = logging.getLogger("driftwatch")

_T = TypeVar("_T")

#: Largest checkpoint record (one key's snapshot): the topic and the producer allow this much.
CHECKPOINT_MAX_BYTES = 8 * 1024 * 1024
RETRY_BACKOFF = 1.0  # seconds between attempts to deliver output the broker refused

#: A record to send: topic, key, value (None: a tombstone), headers.
_Out = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: TelemetryConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.owner.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.owner.on_assigned({tp.partition for tp in assigned})


class TelemetryConsumer:
    """Consumes telemetry for ``processor`` with checkpoints tied to committed offsets.

    Parameters
    ----------
    settings : Settings
        Topics, batch size and timeout, checkpoint interval, Kafka connection and security.
    processor : BatchProcessor
        Parses and monitors batches (its monitor holds the state that is checkpointed).
    metrics : Metrics
        Consumer lag and checkpoint metrics.
    """

    def __init__(self, settings: Settings, processor: BatchProcessor, metrics: Metrics) -> None:
        self.settings = settings
        self.processor = processor
        self.monitor: DriftMonitor = processor.monitor
        self.metrics = metrics
        self.writer = uuid.uuid4().hex  # this process, in the markers it writes
        self.positions: dict[int, int] = {}  # partition -> next offset to read (processed)
        self.assigned: set[int] = set()
        self._held: dict[int, int] = {}  # revoked partitions whose state is still in memory
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_round = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._checkpoint_partitions = 0
        self._rebalances = 0  # a batch fetched before a rebalance is dropped, not processed
        self._ready = asyncio.Event()  # set once the first assignment's state is in place
        self._claims: dict[int, int] = {}  # partition -> claim number of this worker's writes
        self.codec = CheckpointCodec(settings.checkpoint_signing_key())
        self.lag = LagTracker(metrics.consumer_lag, settings.telemetry_topic)
        self._lag_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, make sure the checkpoint topic exists, join the group and start reading."""
        s = self.settings
        client = aiokafka_client_config(s)
        self._producer = AIOKafkaProducer(
            **client,
            client_id=f"{s.app_id}-telemetry-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=CHECKPOINT_MAX_BYTES + 65_536,
        )
        await self._producer.start()
        self._checkpoint_partitions = await self._ensure_topics(client)
        self._consumer = AIOKafkaConsumer(
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
        await self._consumer.start()
        self._consumer.subscribe([s.telemetry_topic], listener=_Rebalance(self))
        self._task = asyncio.create_task(self._run(), name="driftwatch-telemetry")
        self._lag_task = asyncio.create_task(
            refresh_every(LAG_INTERVAL, self.refresh_lag, self._stopping),
            name="driftwatch-consumer-lag",
        )

    async def stop(self) -> None:
        """Finish the batch in hand, write a last checkpoint and commit, leave the group."""
        self._stopping.set()
        if self._lag_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._lag_task, LAG_INTERVAL + 1.0)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.settings.batch_timeout + 30.0)
            except Exception:
                log.exception("telemetry loop ended with an error")
        if self._consumer is not None:
            async with self._lock:
                await self._round(self.assigned, final=True)
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        timeout_ms = int(self.settings.batch_timeout * 1000)
        interval = self.settings.checkpoint_interval
        while not self._stopping.is_set():
            rebalances = self._rebalances
            batch = await consumer.getmany(
                timeout_ms=timeout_ms, max_records=self.settings.batch_size
            )
            async with self._lock:
                if rebalances != self._rebalances:
                    # the partitions moved while this batch was fetched: read again from where
                    # each partition's state stands
                    self._seek_to_positions()
                    continue
                if batch:
                    await self._handle(batch)
                if time.monotonic() - self._last_round >= interval:
                    await self._round(self.assigned)

    # ------------------------------------------------------------------ processing
    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        messages = [
            RawMessage(r.key, r.value, r.partition, r.offset, (r.timestamp or 0) / 1000.0)
            for tp, records in batch.items()
            if tp.partition in self.assigned
            for r in records
        ]
        if not messages:
            return
        outcome = self.processor.handle(messages)
        delivery = asyncio.ensure_future(self._deliver(outcome.drift_events, outcome.dead_letters))
        try:
            await asyncio.shield(delivery)
        except asyncio.CancelledError:
            # The batch is applied: its output must reach the broker before any state that
            # holds it is checkpointed. Let the delivery finish; if it cannot, forget the
            # partitions' state so that the next owner replays the batch from the checkpoint.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(delivery, timeout=30.0)
            if not delivery.done() or delivery.cancelled() or delivery.exception() is not None:
                parts = {m.partition for m in messages}
                self.monitor.drop_partitions(parts)
                for p in parts:
                    self.positions.pop(p, None)
                self.assigned -= parts
                log.warning("stopped before the output of partitions %s was sent", sorted(parts))
                raise
            self._advance(batch)
            raise
        self._advance(batch)

    def _advance(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Positions after a batch whose output was delivered."""
        last: dict[int, int] = {}
        for tp, records in batch.items():
            if records and tp.partition in self.assigned:
                last[tp.partition] = records[-1].offset
        for partition, offset in last.items():
            self.positions[partition] = offset + 1

    async def _deliver(self, events: list[DriftEvent], dead_letters: list[DeadLetter]) -> None:
        """Send drift events and dead letters; return once the broker acknowledged them all."""
        s = self.settings
        pending: list[_Out] = [(s.drift_topic, de.kafka_key, de.to_json(), None) for de in events]
        pending += [
            (s.dead_letter_topic, dl.message.key, dl.value, dl.headers(s.telemetry_topic))
            for dl in dead_letters
        ]
        for de in events:
            log.info(
                "%s key=%s feature=%s D=%.4f p=%.3g",
                de.type,
                de.key,
                de.feature,
                de.statistic,
                de.p_value,
            )
        await self._send_all(pending)

    async def _send_all(
        self,
        records: list[_Out],
        partitions: list[int | None] | None = None,
    ) -> None:
        """Send ``records`` (topic, key, value, headers) until the broker acknowledged each."""
        producer = self._producer
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

    async def refresh_lag(self) -> None:
        """Set ``driftwatch_consumer_lag`` from the log end offsets of the assigned partitions."""
        consumer = self._consumer
        assigned = set(self.assigned)
        if consumer is None or not assigned:
            self.lag.refresh({}, {}, ())
            return
        topic = self.settings.telemetry_topic
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(assigned)])
        # no await from here on: a rebalance cannot come between reading and setting
        self.lag.refresh(
            self.positions, {tp.partition: end for tp, end in ends.items()}, self.assigned
        )

    # ------------------------------------------------------------------ checkpoints
    async def _ensure_topics(self, client: dict[str, Any]) -> int:
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
        admin = AIOKafkaAdminClient(**client, client_id=f"{s.app_id}-admin")
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
                    # 36: created meanwhile by another worker
                    errors = [e for e in response.topic_errors if e[1] not in (0, 36)]
                    if errors:
                        raise RuntimeError(f"cannot create topics: {errors}")
                    log.info("created topics %s", [t.name for t in missing])
        finally:
            await admin.close()
        if not s.checkpoints:
            return 0
        assert self._producer is not None
        partitions = await self._producer.partitions_for(s.checkpoint_topic_name)
        return len(partitions)

    def _encode(self, record_key: bytes, partition: int, body: Any) -> bytes:
        return self.codec.encode(record_key, self._claims.get(partition, 0), body)

    async def checkpoint_now(self) -> None:
        """Write a checkpoint round of every assigned partition now."""
        async with self._lock:
            await self._round(self.assigned)

    async def between_batches(self, apply: Callable[[], _T]) -> _T:
        """Run ``apply`` (e.g. a control command) between two batches, never during a
        rebalance, and not before the first assignment's state is restored."""
        await self._ready.wait()
        async with self._lock:
            return apply()

    def _checkpoint_partition(self, partition: int) -> int:
        return partition % self._checkpoint_partitions

    async def _round(self, partitions: Iterable[int], *, final: bool = False) -> None:
        """Write the changed keys and markers of ``partitions``, then commit their offsets."""
        self._last_round = time.monotonic()
        parts = [p for p in sorted(partitions) if p in self.positions]
        if not parts:
            return
        started = time.perf_counter()
        consumer = self._consumer
        assert consumer is not None
        try:
            if self.settings.checkpoints:
                await self._write_checkpoint(parts)
            topic = self.settings.telemetry_topic
            await consumer.commit({TopicPartition(topic, p): self.positions[p] for p in parts})
        except Exception as exc:
            # the previous checkpoint stays valid; only the replay after a crash grows
            self.metrics.checkpoints.labels("failed").inc()
            log.warning("checkpoint of partitions %s failed: %r", parts, exc)
            return
        self.metrics.checkpoints.labels("written").inc(len(parts))
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if final:
            log.info("checkpoint of partitions %s at %s", parts, [self.positions[p] for p in parts])

    async def _write_checkpoint(self, parts: list[int]) -> None:
        s = self.settings
        topic = s.checkpoint_topic_name
        records: list[_Out] = []
        targets: list[int | None] = []
        owned = set(parts)
        for key, partition in self.monitor.take_evicted():
            if partition in owned and key not in self.monitor.keys:
                records.append((topic, key_record(partition, key), None, None))
                targets.append(self._checkpoint_partition(partition))
        changed: list[str] = []
        size = 0
        taken = [(p, key) for p in parts for key in self.monitor.take_changed(p)]
        slices = LoopSlices()  # heartbeats and timers run between slices of a long round
        try:
            for p, key in taken:
                await slices.pause()
                record_key = key_record(p, key)
                blob = self._encode(record_key, p, self.monitor.snapshot(keys=[key]))
                if len(blob) > CHECKPOINT_MAX_BYTES:
                    log.error(
                        "key %r: snapshot of %d bytes exceeds %d; not checkpointed",
                        key,
                        len(blob),
                        CHECKPOINT_MAX_BYTES,
                    )
                    continue
                changed.append(key)
                size += len(blob)
                records.append((topic, record_key, blob, None))
                targets.append(self._checkpoint_partition(p))
            await asyncio.wait_for(self._send_all(records, targets), timeout=60.0)
            markers: list[_Out]
            markers = [
                (
                    topic,
                    marker_record(p),
                    self._encode(
                        marker_record(p),
                        p,
                        marker_body(self.positions[p], self.writer, len(changed)),
                    ),
                    None,
                )
                for p in parts
            ]
            await asyncio.wait_for(
                self._send_all(markers, [self._checkpoint_partition(p) for p in parts]),
                timeout=60.0,
            )
        except BaseException:
            for _, key in taken:  # write them again next round
                state = self.monitor.keys.get(key)
                if state is not None:
                    state.changed = True
            raise
        self.metrics.checkpoint_bytes.inc(size)

    async def _load(self, partitions: set[int]) -> dict[int, PartitionCheckpoint]:
        """Read the checkpoint topic's partitions holding ``partitions``, start to end."""
        s = self.settings
        reader = AIOKafkaConsumer(
            **aiokafka_client_config(s),
            client_id=f"{s.app_id}-checkpoint-reader",
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=CHECKPOINT_MAX_BYTES + 65_536,
        )
        await reader.start()
        try:
            tps = [
                TopicPartition(s.checkpoint_topic_name, q)
                for q in sorted({self._checkpoint_partition(p) for p in partitions})
            ]
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
            rejected: collections.Counter[str] = collections.Counter()
            folded = fold_records(records, partitions, self.codec, rejected)
            for reason, n in rejected.items():
                self.metrics.checkpoint_records_rejected.labels(reason).inc(n)
            return folded
        finally:
            await reader.stop()

    # ------------------------------------------------------------------ rebalancing
    async def on_revoked(self, partitions: set[int]) -> None:
        """Before a rebalance: checkpoint and commit what this worker is giving up."""
        async with self._lock:
            self._rebalances += 1
            await self._round(partitions)
            for p in partitions:
                if p in self.positions:
                    self._held[p] = self.positions[p]
            self.assigned -= partitions
            self.lag.forget(partitions)

    async def on_assigned(self, partitions: set[int]) -> None:
        """After a rebalance: keep, restore or start the state of each assigned partition."""
        async with self._lock:
            self._rebalances += 1
            consumer = self._consumer
            assert consumer is not None
            topic = self.settings.telemetry_topic
            committed_now = {
                p: await consumer.committed(TopicPartition(topic, p))
                for p in partitions & set(self._held)
            }
            plan = plan_assignment(partitions, self._held, committed_now)
            if plan.drop:
                dropped = self.monitor.drop_partitions(plan.drop)
                log.info("partitions %s dropped from memory (%d keys)", sorted(plan.drop), dropped)
            keep, restore = set(plan.keep), set(plan.restore)
            self._held.clear()
            for p in restore:
                self.positions.pop(p, None)
            if self.settings.checkpoints and partitions:
                await self._restore(partitions, restore)
            for p in set(self.positions) - partitions:
                del self.positions[p]
            for p in partitions - set(self.positions):
                # no checkpoint marker: start from the committed offset, or the beginning
                tp = TopicPartition(topic, p)
                committed = await consumer.committed(tp)
                if committed is None:
                    committed = (await consumer.beginning_offsets([tp]))[tp]
                self.positions[p] = committed
            self.assigned = set(partitions)
            self._seek_to_positions()
            if self.settings.checkpoints and partitions:
                await self._claim(partitions)
            self._ready.set()
            log.info(
                "assigned partitions %s (%d kept in memory, %d restored)",
                sorted(partitions),
                len(keep),
                len(restore),
            )

    def _seek_to_positions(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        topic = self.settings.telemetry_topic
        for p in self.assigned:
            consumer.seek(TopicPartition(topic, p), self.positions[p])

    async def _claim(self, partitions: set[int]) -> None:
        """Claim ``partitions`` with the next claim number (writers of older ones are ignored)."""
        topic = self.settings.checkpoint_topic_name
        ordered = sorted(partitions)
        previous = {p: self._claims.get(p, 0) for p in ordered}
        for p in ordered:
            self._claims[p] = previous[p] + 1
        claims: list[_Out] = [
            (
                topic,
                claim_record(p),
                self._encode(claim_record(p), p, {"writer": self.writer}),
                None,
            )
            for p in ordered
        ]
        try:
            await asyncio.wait_for(
                self._send_all(claims, [self._checkpoint_partition(p) for p in ordered]), 60.0
            )
        except Exception as exc:
            # keep writing under the previous claim: readers would refuse an unwritten one
            self._claims.update(previous)
            log.warning("claim of partitions %s not written: %r", ordered, exc)

    async def _restore(self, partitions: set[int], restore: set[int]) -> None:
        """Read the claims of ``partitions``; restore the keys and positions of ``restore``."""
        started = time.perf_counter()
        loaded = await self._load(partitions)
        keys = 0
        for p, cp in sorted(loaded.items()):
            self._claims[p] = cp.claim
            if p not in restore:
                continue
            for key, body in cp.keys.items():
                try:
                    self.monitor.restore(body)
                    keys += 1
                except ValueError as exc:
                    self.metrics.checkpoint_records_rejected.labels("invalid_state").inc()
                    log.warning("partition %d key %r: state not restored: %s", p, key, exc)
            if cp.offset is not None:
                self.positions[p] = cp.offset
        self.metrics.restored_keys.inc(keys)
        log.info(
            "restored %d keys of partitions %s in %.2fs (resuming at %s)",
            keys,
            sorted(partitions),
            time.perf_counter() - started,
            {p: cp.offset for p, cp in sorted(loaded.items())},
        )
