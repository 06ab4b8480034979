"""Checkpoint rounds, claims and restores of the telemetry partitions a worker is given.

:class:`Checkpointer` writes the detector state of the monitor's keys to the compacted
checkpoint topic and reads it back, in the record layout of :mod:`stream.worker.checkpoints`:

- a *round* writes the keys changed since the previous round, then each partition's marker (the
  next offset to read), then commits that offset to the telemetry group;
- on assignment it reads the checkpoint partitions holding the assigned partitions, restores the
  keys of the partitions whose state is not in memory, and writes a new claim of every assigned
  partition (the fence against the workers that had them before).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.settings import Settings
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
from stream.worker.clients import CHECKPOINT_MAX_BYTES, KafkaClients, Out

__all__ = ["Checkpointer"]

log = logging.getLogger("driftwatch")

#: Seconds a batch of checkpoint records (keys, markers or claims) may take to be acknowledged.
SEND_TIMEOUT = 60.0


class Checkpointer:
    """Writes and restores the checkpoints of one worker's telemetry partitions.

    Parameters
    ----------
    settings : Settings
        Checkpoint topic, whether checkpoints are on, the signing key, the telemetry topic.
    monitor : DriftMonitor
        Holds the keys' state.
    metrics : Metrics
        Checkpoint rounds, bytes, rejected records and restored keys.
    clients : KafkaClients
        Sends the records, reads the checkpoint topic and commits offsets.
    """

    def __init__(
        self, settings: Settings, monitor: DriftMonitor, metrics: Metrics, clients: KafkaClients
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.metrics = metrics
        self.clients = clients
        self.writer = uuid.uuid4().hex  # this process, in the markers it writes
        self.codec = CheckpointCodec(settings.checkpoint_signing_key())
        #: The checkpoint topic's partition count (set once the topic is known).
        self.partitions = 0
        self.last_round = time.monotonic()
        self._claims: dict[int, int] = {}  # partition -> claim number of this worker's writes

    def due(self) -> bool:
        """Whether ``checkpoint_interval`` has passed since the last round."""
        return time.monotonic() - self.last_round >= self.settings.checkpoint_interval

    def _target(self, partition: int) -> int:
        """The checkpoint partition holding telemetry partition ``partition``."""
        return partition % self.partitions

    def _encode(self, record_key: bytes, partition: int, body: Any) -> bytes:
        return self.codec.encode(record_key, self._claims.get(partition, 0), body)

    # ------------------------------------------------------------------ rounds
    async def round(
        self,
        positions: Mapping[int, int],
        commit: Callable[[Mapping[int, int]], Awaitable[None]],
        *,
        final: bool = False,
    ) -> None:
        """Write the changed keys and markers of ``positions``' partitions, then ``commit``.

        A failed round is counted and logged: the previous checkpoint stays valid, only the
        replay after a crash grows.
        """
        self.last_round = time.monotonic()
        if not positions:
            return
        parts = sorted(positions)
        started = time.perf_counter()
        try:
            if self.settings.checkpoints:
                await self.write(positions)
            await commit(positions)
        except Exception as exc:
            self.metrics.checkpoints.labels("failed").inc()
            log.warning("checkpoint of partitions %s failed: %r", parts, exc)
            return
        self.metrics.checkpoints.labels("written").inc(len(parts))
        self.metrics.checkpoint_seconds.observe(time.perf_counter() - started)
        if final:
            log.info("checkpoint of partitions %s at %s", parts, [positions[p] for p in parts])

    async def write(self, positions: Mapping[int, int]) -> None:
        """Write the changed and evicted keys of ``positions``' partitions, then their markers.

        Keys whose records were not all acknowledged are marked changed again (the next round
        writes them), whatever interrupted the round.
        """
        topic = self.settings.checkpoint_topic_name
        parts = sorted(positions)
        records: list[Out] = []
        targets: list[int | None] = []
        for key, partition in self.monitor.take_evicted():
            if partition in positions and key not in self.monitor.keys:
                records.append((topic, key_record(partition, key), None, None))
                targets.append(self._target(partition))
        changed = 0
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
                changed += 1
                size += len(blob)
                records.append((topic, record_key, blob, None))
                targets.append(self._target(p))
            await asyncio.wait_for(self.clients.send_all(records, targets), SEND_TIMEOUT)
            markers: list[Out] = [
                (
                    topic,
                    marker_record(p),
                    self._encode(
                        marker_record(p), p, marker_body(positions[p], self.writer, changed)
                    ),
                    None,
                )
                for p in parts
            ]
            await asyncio.wait_for(
                self.clients.send_all(markers, [self._target(p) for p in parts]), SEND_TIMEOUT
            )
        except BaseException:
            for _, key in taken:  # write them again next round
                state = self.monitor.keys.get(key)
                if state is not None:
                    state.changed = True
            raise
        self.metrics.checkpoint_bytes.inc(size)

    # ------------------------------------------------------------------ assignment
    async def claim(self, partitions: Collection[int]) -> None:
        """Claim ``partitions`` with the next claim number (writers of older ones are ignored).

        If the claims cannot be written, this worker keeps writing under the previous ones:
        readers would refuse records of a claim nobody wrote.
        """
        topic = self.settings.checkpoint_topic_name
        ordered = sorted(partitions)
        previous = {p: self._claims.get(p, 0) for p in ordered}
        for p in ordered:
            self._claims[p] = previous[p] + 1
        claims: list[Out] = [
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
                self.clients.send_all(claims, [self._target(p) for p in ordered]), SEND_TIMEOUT
            )
        except Exception as exc:
            self._claims.update(previous)
            log.warning("claim of partitions %s not written: %r", ordered, exc)

    async def restore(
        self, partitions: Collection[int], restore: Collection[int]
    ) -> dict[int, int]:
        """Read the claims of ``partitions``; restore the keys of ``restore``.

        Return the marker offset of each partition of ``restore`` that has one (where reading
        resumes); the others have no checkpoint.
        """
        started = time.perf_counter()
        loaded = await self._load(partitions)
        keys = 0
        offsets: dict[int, int] = {}
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
                offsets[p] = cp.offset
        self.metrics.restored_keys.inc(keys)
        log.info(
            "restored %d keys of partitions %s in %.2fs (resuming at %s)",
            keys,
            sorted(partitions),
            time.perf_counter() - started,
            {p: cp.offset for p, cp in sorted(loaded.items())},
        )
        return offsets

    async def _load(self, partitions: Collection[int]) -> dict[int, PartitionCheckpoint]:
        """Read the checkpoint topic's partitions holding ``partitions``, start to end."""
        records = await self.clients.read_to_end(
            self.settings.checkpoint_topic_name,
            {self._target(p) for p in partitions},
            max_record_bytes=CHECKPOINT_MAX_BYTES,
        )
        rejected: collections.Counter[str] = collections.Counter()
        folded = fold_records(records, partitions, self.codec, rejected)
        for reason, n in rejected.items():
            self.metrics.checkpoint_records_rejected.labels(reason).inc(n)
        return folded
