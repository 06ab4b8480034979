"""The telemetry consumer: batches from Kafka, detection, acknowledged output, checkpoints.

Faust's per-event ``Stream`` costs tens of microseconds an event before any work is done, more
than the detectors themselves, so telemetry is read in batches with ``aiokafka``'s ``getmany``
by this service (its Kafka clients are :class:`~stream.worker.clients.KafkaClients`), which
the Faust app starts and stops with the worker (the control topic is an ordinary Faust agent).
The service owns its consumer group (``<app_id>.telemetry``) so that it
can tie detector state to offsets:

1. a batch is processed and its drift events and dead letters are sent; the batch counts as done
   once the broker has acknowledged them all (a failed send is retried, never skipped);
2. every ``checkpoint_interval`` seconds, on a rebalance and on shutdown, the keys changed since
   the last round are written to the compacted checkpoint topic, then each partition's marker
   (the next offset to read), then that offset is committed (by the
   :class:`~stream.worker.checkpointer.Checkpointer`, in the records of
   :mod:`stream.worker.checkpoints`);
3. on partition assignment the keys of the new partitions are restored from the checkpoint topic
   and reading resumes at the marker; events a restored key already holds are skipped.

So after a crash each key's windows hold every event exactly once, and drift events sent after
the last round are sent again with the same ``event_id`` (consumers deduplicate on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, DeadLetter
from stream.settings import Settings
from stream.telemetry.records import DriftEvent
from stream.worker.checkpointer import Checkpointer
from stream.worker.clients import KafkaClients, Out
from stream.worker.lag import LAG_INTERVAL, LagTracker, refresh_every
from stream.worker.rebalance import hold_revoked, plan_assignment, resume_positions

__all__ = ["TelemetryConsumer"]

log = logging.getLogger("driftwatch")

_T = TypeVar("_T")


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
        self.clients = KafkaClients(settings)
        self.checkpointer = Checkpointer(settings, self.monitor, metrics, self.clients)
        self.positions: dict[int, int] = {}  # partition -> next offset to read (processed)
        self.assigned: set[int] = set()
        self._held: dict[int, int] = {}  # revoked partitions whose state is still in memory
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rebalances = 0  # a batch fetched before a rebalance is dropped, not processed
        self._ready = asyncio.Event()  # set once the first assignment's state is in place
        self.lag = LagTracker(metrics.consumer_lag, settings.telemetry_topic)
        self._lag_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Connect, make sure the checkpoint topic exists, join the group and start reading."""
        self.checkpointer.partitions = await self.clients.start(_Rebalance(self))
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
        if self.clients.consumer is not None:
            async with self._lock:
                await self._round(self.assigned, final=True)
            await self.clients.stop_consumer()
        await self.clients.stop_producer()

    async def _run(self) -> None:
        timeout_ms = int(self.settings.batch_timeout * 1000)
        while not self._stopping.is_set():
            rebalances = self._rebalances
            batch = await self.clients.getmany(timeout_ms, self.settings.batch_size)
            async with self._lock:
                if rebalances != self._rebalances:
                    # the partitions moved while this batch was fetched: read again from where
                    # each partition's state stands
                    self._seek_to_positions()
                    continue
                if batch:
                    await self._handle(batch)
                if self.checkpointer.due():
                    # the sending and the commit go on while the next batches are processed
                    await self._round(self.assigned, background=True)

    # ------------------------------------------------------------------ processing
    async def _handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        assigned = self.assigned
        messages: list[Any] = list(
            itertools.chain.from_iterable(
                records for tp, records in batch.items() if tp.partition in assigned
            )
        )
        if not messages:
            return
        outcome = self.processor.handle_records(messages)
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
        for tp, records in batch.items():
            if records and tp.partition in self.assigned:
                self.positions[tp.partition] = records[-1].offset + 1

    async def _deliver(self, events: list[DriftEvent], dead_letters: list[DeadLetter]) -> None:
        """Send drift events and dead letters; return once the broker acknowledged them all."""
        s = self.settings
        pending: list[Out] = [(s.drift_topic, de.kafka_key, de.to_json(), None) for de in events]
        pending += [
            (s.dead_letter_topic, dl.message.key, dl.value, dl.headers(s.telemetry_topic))
            for dl in dead_letters
        ]
        for de in events:
            log.info("%s", de.log_line())
        await self.clients.send_all(pending)

    async def refresh_lag(self) -> None:
        """Set ``driftwatch_consumer_lag`` from the log end offsets of the assigned partitions."""
        assigned = set(self.assigned)
        if self.clients.consumer is None or not assigned:
            self.lag.refresh({}, {}, ())
            return
        ends = await self.clients.end_offsets(assigned)
        # no await from here on: a rebalance cannot come between reading and setting
        self.lag.refresh(self.positions, ends, self.assigned)

    # ------------------------------------------------------------------ checkpoints
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

    async def _round(
        self, partitions: Iterable[int], *, final: bool = False, background: bool = False
    ) -> None:
        """A checkpoint round of those of ``partitions`` this worker has a position for."""
        positions = {p: self.positions[p] for p in sorted(partitions) if p in self.positions}
        await self.checkpointer.round(
            positions, self.clients.commit, final=final, background=background
        )

    # ------------------------------------------------------------------ rebalancing
    async def on_revoked(self, partitions: set[int]) -> None:
        """Before a rebalance: checkpoint and commit what this worker is giving up."""
        async with self._lock:
            self._rebalances += 1
            await self._round(partitions)
            self._held = hold_revoked(self._held, partitions, self.positions)
            self.assigned -= partitions
            self.lag.forget(partitions)

    async def on_assigned(self, partitions: set[int]) -> None:
        """After a rebalance: keep, restore or start the state of each assigned partition."""
        async with self._lock:
            self._rebalances += 1
            committed_now = {
                p: await self.clients.committed(p) for p in sorted(partitions & set(self._held))
            }
            plan = plan_assignment(partitions, self._held, committed_now)
            self._held = {}
            if plan.drop:
                dropped = self.monitor.drop_partitions(plan.drop)
                log.info("partitions %s dropped from memory (%d keys)", sorted(plan.drop), dropped)
            checkpoints = self.settings.checkpoints and bool(partitions)
            markers = (
                await self.checkpointer.restore(partitions, plan.restore) if checkpoints else {}
            )
            self.positions, unknown = resume_positions(plan, self.positions, markers)
            for p in sorted(unknown):
                # no checkpoint marker: start from the committed offset, or the beginning
                self.positions[p] = await self.clients.start_offset(p)
            self.assigned = set(partitions)
            self._seek_to_positions()
            if checkpoints:
                await self.checkpointer.claim(partitions)
            self._ready.set()
            log.info(
                "assigned partitions %s (%d kept in memory, %d restored)",
                sorted(partitions),
                len(plan.keep),
                len(plan.restore),
            )

    def _seek_to_positions(self) -> None:
        self.clients.seek({p: self.positions[p] for p in self.assigned})
