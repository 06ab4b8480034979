"""One batch of raw Kafka messages -> drift events and dead letters (no I/O here).

A message that cannot be parsed, or whose processing fails, becomes a dead letter carrying the
original bytes and the reason; it never stops the batch, let alone the worker.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import msgspec

from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.telemetry.decoding import Record, RecordDecoder
from stream.telemetry.records import DriftEvent, TelemetryParser

#: Largest dead-letter value written: Kafka's default request and message limits are about
#: 1 MB, and a message the broker accepted must not be lost because its copy is too large.
DEAD_LETTER_MAX_BYTES = 960_000

__all__ = [
    "DEAD_LETTER_MAX_BYTES",
    "BatchOutcome",
    "BatchProcessor",
    "DeadLetter",
    "KafkaRecord",
    "RawMessage",
]

log = logging.getLogger(__name__)


class RawMessage(msgspec.Struct, frozen=True, gc=False):
    """What the processor needs of a Kafka record (a struct: built for every record read).

    Bytes and numbers only, so never in a reference cycle: not tracked by the garbage collector.
    """

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: float = 0.0  # seconds


class KafkaRecord(Record, Protocol):
    """A record as Kafka consumers give it (aiokafka's ``ConsumerRecord``): the decoder's
    :class:`~stream.telemetry.decoding.Record` with its key, timestamp in ms."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def timestamp(self) -> int | None: ...


def raw_message(record: KafkaRecord) -> RawMessage:
    """The :class:`RawMessage` of a Kafka record (its timestamp in seconds)."""
    return RawMessage(
        record.key, record.value, record.partition, record.offset, (record.timestamp or 0) / 1000.0
    )


_R = TypeVar("_R", RawMessage, KafkaRecord)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected message, to be written unchanged to the dead-letter topic.

    A value larger than a Kafka producer request allows (``DEAD_LETTER_MAX_BYTES``) is cut to
    that size; the headers then carry its full length and SHA-256, and the source offset points
    at the original.
    """

    message: RawMessage
    reason: str
    detail: str

    @property
    def value(self) -> bytes:
        """The bytes to write: the original, or its first ``DEAD_LETTER_MAX_BYTES``."""
        return (self.message.value or b"")[:DEAD_LETTER_MAX_BYTES]

    def headers(self, topic: str) -> list[tuple[str, bytes]]:
        m = self.message
        out = [
            ("driftwatch-reason", self.reason.encode()),
            ("driftwatch-detail", self.detail.encode("utf-8", "replace")[:1000]),
            ("driftwatch-source", f"{topic}/{m.partition}/{m.offset}".encode()),
        ]
        original = m.value or b""
        if len(original) > DEAD_LETTER_MAX_BYTES:
            out.append(("driftwatch-truncated-from", str(len(original)).encode()))
            out.append(("driftwatch-sha256", hashlib.sha256(original).hexdigest().encode()))
        return out


@dataclass(slots=True)
class BatchOutcome:
    drift_events: list[DriftEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    processed: int = 0  # telemetry events fed to the monitor (spans, for the OTLP formats)
    skipped: Counter[str] = field(default_factory=Counter)  # events skipped, by reason
    missing: Counter[str] = field(default_factory=Counter)  # valid events lacking a feature


class BatchProcessor:
    """Parses, validates and monitors batches; counts everything in ``metrics``.

    ``parser`` is a :class:`~stream.telemetry.decoding.RecordDecoder` (a bare
    :class:`TelemetryParser` is wrapped in a ``json`` one).
    """

    def __init__(
        self,
        parser: RecordDecoder | TelemetryParser,
        monitor: DriftMonitor,
        metrics: Metrics,
        topic: str,
    ) -> None:
        self.decoder = parser if isinstance(parser, RecordDecoder) else RecordDecoder(parser)
        self.monitor = monitor
        self.metrics = metrics
        self.topic = topic

    def handle(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Parse, monitor and count a batch of messages (in stream order)."""
        return self._handle(messages, 1.0, _same)

    def handle_records(self, records: Sequence[KafkaRecord]) -> BatchOutcome:
        """:meth:`handle` of Kafka records as the consumer reads them (timestamps in ms).

        The records are decoded as they are: a :class:`RawMessage` is made only for a record
        that is dead-lettered.
        """
        return self._handle(records, 1000.0, raw_message)

    def _handle(
        self, messages: Sequence[_R], timestamp_unit: float, message: Callable[[_R], RawMessage]
    ) -> BatchOutcome:
        started = time.perf_counter()
        out = BatchOutcome()
        valid, rejected = self.decoder.decode_batch(messages, timestamp_unit)
        for i, r in rejected:
            out.dead_letters.append(DeadLetter(message(messages[i]), r.reason, r.detail))
        out.drift_events = self.monitor.process(valid)
        out.processed = len(valid)
        failed = self.monitor.take_failed()
        if failed:
            # the records of the failed events (each event carries its record's position)
            wanted = {(ev.partition, ev.offset) for ev, _ in failed}
            lettered_whole = {i for i, _ in rejected}
            by_position = {
                (m.partition, m.offset): m
                for i, m in enumerate(messages)
                if (m.partition, m.offset) in wanted and i not in lettered_whole
            }
            lettered: set[tuple[int, int]] = set()
            for ev, exc in failed:
                msg = message(by_position[(ev.partition, ev.offset)])
                out.processed -= 1
                if (ev.partition, ev.offset) in lettered:
                    continue  # another span of the same record: it is dead-lettered once
                lettered.add((ev.partition, ev.offset))
                log.error(
                    "processing failed for %s[%d]@%d: %r",
                    self.topic,
                    msg.partition,
                    msg.offset,
                    exc,
                )
                out.dead_letters.append(DeadLetter(msg, "processing_error", repr(exc)))
        out.skipped, out.missing = self.decoder.take_counts()
        m = self.metrics
        m.events_consumed.labels(self.topic).inc(len(messages))
        for dl in out.dead_letters:
            m.invalid_events.labels(dl.reason).inc()
        for reason, n in out.skipped.items():
            m.skipped.labels(reason).inc(n)
        for feature, n in out.missing.items():
            m.missing_features.labels(feature).inc(n)
        m.processing_latency.observe(time.perf_counter() - started)
        return out


def _same(message: RawMessage) -> RawMessage:
    return message
