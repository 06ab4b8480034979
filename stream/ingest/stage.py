"""The repartition step, without I/O: raw OTLP records in, keyed per-span events out.

The Collector's Kafka exporter writes export requests with nil keys, so one (service, model)
stream is spread over every partition of ``otlp_spans``. :func:`explode` turns a batch of such
records into flat JSON events (the format the worker reads) keyed by the stream key; written
to the telemetry topic with that key, every span of a stream lands on one partition, hence on
one worker. A record that is not a valid export request becomes a :class:`DeadLetter` (whole,
with the reason); spans that do not count are skipped and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from stream.monitoring.processor import DeadLetter, RawMessage
from stream.telemetry.genai import FlatEvent, SpanMapping
from stream.telemetry.otlp import OtlpError, decode_spans

__all__ = ["EVENT_ID_HEADER", "IngestBatch", "IngestStats", "explode"]

#: Header carrying each produced event's dedupe id (``trace_id + span_id``; also in the JSON).
EVENT_ID_HEADER = "driftwatch-event-id"


@dataclass(slots=True)
class IngestBatch:
    """What one batch of raw records became."""

    events: list[FlatEvent] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    spans: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class IngestStats:
    """Running totals of an ingest instance (what its metrics and logs report)."""

    records: int = 0
    spans: int = 0
    events: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)

    def add(self, records: int, batch: IngestBatch) -> None:
        self.records += records
        self.spans += batch.spans
        self.events += len(batch.events)
        self.dead_letters.update(dl.reason for dl in batch.dead_letters)
        self.skipped.update(batch.skipped)
        self.missing.update(batch.missing)

    def summary(self) -> str:
        def fmt(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"

        return (
            f"{self.records} records, {self.spans} spans -> {self.events} events; "
            f"skipped: {fmt(self.skipped)}; dead-lettered: {fmt(self.dead_letters)}; "
            f"missing features: {fmt(self.missing)}"
        )


def explode(
    messages: Sequence[RawMessage],
    fmt: Literal["otlp_json", "otlp_proto"],
    mapping: SpanMapping,
    *,
    max_bytes: int | None = None,
) -> IngestBatch:
    """Decode and map a batch of raw records (in order); never raises for bad input."""
    out = IngestBatch()
    for msg in messages:
        if msg.value is None:
            out.dead_letters.append(DeadLetter(msg, "invalid_otlp", "empty message (tombstone)"))
            continue
        try:
            spans = decode_spans(msg.value, fmt, max_bytes=max_bytes)
        except OtlpError as exc:
            out.dead_letters.append(DeadLetter(msg, exc.reason, exc.detail))
            continue
        mapped = mapping.map(spans, fallback_time=msg.timestamp)
        out.spans += len(spans)
        out.events += mapped.events
        out.skipped.update(mapped.skipped)
        out.missing.update(mapped.missing)
    return out
