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
from dataclasses import dataclass
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
from stream.worker.rounds import CHUNK_BYTES, Chunk, ChunkSender, RoundStats

__all__ = ["Checkpointer"]

log = logging.getLogger("driftwatch")

#: Seconds a batch of checkpoint records (keys, markers or claims) may take to be acknowledged.
SEND_TIMEOUT = 60.0


@dataclass(slots=True)
class _Encoded:
    """An encoded round: its keys, the chunks being sent, its markers, what it holds."""

    taken: list[tuple[int, str]]
    sender: ChunkSender
    markers: Chunk
    stats: RoundStats


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
        self._inflight: asyncio.Future[None] | None = None  # a round finishing in the background

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
        background: bool = False,
    ) -> None:
        """Write the changed keys and markers of ``positions``' partitions, then ``commit``.

        With ``background``, return once the keys are encoded (the part that needs the
        monitor still): the chunks still in flight, the markers and the commit finish in a
        task while processing goes on. The next round, a claim and a restore wait for it.
        A failed round is counted and logged: the previous checkpoint stays valid, only the
        replay after a crash grows.
        """
        await self.settle()
        self.last_round = time.monotonic()
        if not positions:
            return
        started = time.perf_counter()
        try:
            encoded = await self._encode_round(positions) if self.settings.checkpoints else None
        except Exception as exc:
            self._failed(positions, exc)
            return
        finish = self._finish(encoded, positions, commit, started, final)
        if background:
            self._inflight = asyncio.ensure_future(finish)
        else:
            await finish

    async def settle(self) -> None:
        """Wait for the round finishing in the background, if any."""
        task = self._inflight
        if task is None:
            return
        try:
            await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight = None

    async def write(self, positions: Mapping[int, int]) -> RoundStats:
        """Write the changed and evicted keys of ``positions``' partitions, then their markers.

        Keys whose records were not all acknowledged are marked changed again (the next round
        writes them), whatever interrupted the round.
        """
        return await self._complete(await self._encode_round(positions))

    async def _finish(
        self,
        encoded: _Encoded | None,
        positions: Mapping[int, int],
        commit: Callable[[Mapping[int, int]], Awaitable[None]],
        started: float,
        final: bool,
    ) -> None:
        parts = sorted(positions)
        try:
            stats = RoundStats(len(parts)) if encoded is None else await self._complete(encoded)
            await commit(positions)
        except Exception as exc:
            self._failed(positions, exc)
            return
        self.metrics.checkpoints.labels("written").inc(len(parts))
        elapsed = time.perf_counter() - started
        self.metrics.checkpoint_seconds.observe(elapsed)
        log.info("%s", stats.line(elapsed))
        if final:
            log.info("checkpoint of partitions %s at %s", parts, [positions[p] for p in parts])

    def _failed(self, positions: Mapping[int, int], exc: Exception) -> None:
        self.metrics.checkpoints.labels("failed").inc()
        log.warning("checkpoint of partitions %s failed: %r", sorted(positions), exc)

    async def _encode_round(self, positions: Mapping[int, int]) -> _Encoded:
        """Encode the round's records, in slices; full chunks start being sent meanwhile."""
        topic = self.settings.checkpoint_topic_name
        parts = sorted(positions)
        stats = RoundStats(len(parts))
        slices = LoopSlices()  # heartbeats and timers run between slices of a long round
        sender = ChunkSender(self._send)
        chunk = Chunk()
        for key, partition in self.monitor.take_evicted():
            if partition in positions and key not in self.monitor.keys:
                chunk.add((topic, key_record(partition, key), None, None), self._target(partition))
                stats.tombstones += 1
        taken = [(p, key) for p in parts for key in self.monitor.take_changed(p)]
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
                stats.keys += 1
                stats.bytes += len(blob)
                chunk.add((topic, record_key, blob, None), self._target(p))
                if chunk.size >= CHUNK_BYTES:
                    await slices.wait(sender.add(chunk))
                    chunk = Chunk()
            await slices.wait(sender.add(chunk))
            markers = Chunk()
            for p in parts:  # encoded now: the claims may change once the monitor moves on
                body = marker_body(positions[p], self.writer, stats.keys)
                markers.add(
                    (topic, marker_record(p), self._encode(marker_record(p), p, body), None),
                    self._target(p),
                )
        except BaseException:
            await sender.cancel()
            self._changed_again(taken)
            raise
        stats.held = slices.longest
        return _Encoded(taken, sender, markers, stats)

    async def _complete(self, encoded: _Encoded) -> RoundStats:
        """Wait for the round's chunks, then send its markers."""
        try:
            await encoded.sender.drain()
            await self._send(encoded.markers)
        except BaseException:
            await encoded.sender.cancel()
            self._changed_again(encoded.taken)
            raise
        self.metrics.checkpoint_bytes.inc(encoded.stats.bytes)
        return encoded.stats

    def _changed_again(self, taken: list[tuple[int, str]]) -> None:
        """Mark ``taken`` keys changed: the next round writes them again."""
        for _, key in taken:
            state = self.monitor.keys.get(key)
            if state is not None:
                state.changed = True

    async def _send(self, chunk: Chunk) -> None:
        if chunk.records:
            await asyncio.wait_for(
                self.clients.send_all(chunk.records, chunk.targets), SEND_TIMEOUT
            )

    # ------------------------------------------------------------------ assignment
    async def claim(self, partitions: Collection[int]) -> None:
        """Claim ``partitions`` with the next claim number (writers of older ones are ignored).

        If the claims cannot be written, this worker keeps writing under the previous ones:
        readers would refuse records of a claim nobody wrote.
        """
        await self.settle()
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
        await self.settle()
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
