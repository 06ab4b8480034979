"""Record values in, telemetry events out: the worker's decoding for every ``TELEMETRY_FORMAT``.

* ``json``: one flat or nested JSON object per record, validated by
  :class:`~stream.telemetry.records.TelemetryParser` with the **sparse** rules: an event feeds
  the features it has, a missing feature is counted per feature, and an event without the key
  fields, without any feature, or failing ``span_filter`` is skipped and counted, not
  dead-lettered.
* ``otlp_json`` / ``otlp_proto``: one OTLP trace export request per record, decoded by
  :func:`~stream.telemetry.otlp.decode_spans` and mapped by
  :class:`~stream.telemetry.genai.SpanMapping` -- the same code ``driftwatch ingest`` runs --
  into one event per span that passes the span filter. A record that is not a valid export
  request (or larger than ``max_otlp_bytes``) is dead-lettered whole. All spans of a record
  carry the record's partition and offset.

Field names resolve as in the ingest stage (span attributes, then resource attributes, then the
derived ``duration_ms``, ``span.name``, ``span.kind``, ``status.code``), so a worker reading OTLP
directly and one reading the ingest stage's events see the same observations.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal, Protocol

from stream.settings import Settings
from stream.telemetry.genai import SpanFilter, SpanMapping
from stream.telemetry.otlp import OtlpError, decode_spans
from stream.telemetry.records import Invalid, Skipped, Telemetry, TelemetryParser

__all__ = ["Record", "RecordDecoder"]


class Record(Protocol):
    """What the decoder reads of a record (a Kafka consumer record, a ``RawMessage``)."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> float | int | None: ...


class RecordDecoder:
    """Decodes one record value into telemetry events, counting what it skips.

    Parameters
    ----------
    parser : TelemetryParser
        Validates each event (a JSON record, or a span mapped to a flat event).
    fmt : {"json", "otlp_json", "otlp_proto"}
        How record values are encoded.
    mapping : SpanMapping, optional
        The span mapping of the OTLP formats (key fields, features, span filter).
    max_otlp_bytes : int
        Largest OTLP record accepted.

    Attributes
    ----------
    skipped : Counter
        Events (or spans) skipped since last taken, by reason (``filtered``, ``missing_key``,
        ``no_features``); see :meth:`take_counts`.
    missing : Counter
        Valid events lacking a feature since last taken, by feature.
    """

    def __init__(
        self,
        parser: TelemetryParser,
        *,
        fmt: Literal["json", "otlp_json", "otlp_proto"] = "json",
        mapping: SpanMapping | None = None,
        max_otlp_bytes: int = 4_194_304,
    ) -> None:
        if fmt != "json" and mapping is None:
            raise ValueError(f"format {fmt!r} needs a span mapping, got none")
        self.parser = parser
        self.fmt = fmt
        self.mapping = mapping
        self.max_otlp_bytes = max_otlp_bytes
        self.skipped: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordDecoder:
        """The decoder the worker runs with ``settings`` (sparse rules in every format)."""
        spec = settings.span_filter_spec
        span_filter = SpanFilter.parse(spec) if spec.strip() else None
        if settings.telemetry_format == "json":
            filt = None if span_filter is None else (span_filter.field, span_filter.values)
            return cls(TelemetryParser(settings, sparse=True, span_filter=filt))
        mapping = SpanMapping(
            key_fields=settings.key_fields,
            features=settings.features,
            categorical_features=settings.categorical_features,
            span_filter=span_filter,
        )
        return cls(
            TelemetryParser(settings, sparse=True),
            fmt=settings.telemetry_format,
            mapping=mapping,
            max_otlp_bytes=settings.max_otlp_bytes,
        )

    def decode(
        self, raw: bytes | None, *, partition: int = 0, offset: int = 0, timestamp: float = 0.0
    ) -> list[Telemetry] | Invalid:
        """The events of one record, or the :class:`Invalid` that dead-letters it whole.

        Never raises for bad input. Skipped events and missing features are counted in
        :attr:`skipped` and :attr:`missing`.
        """
        if self.fmt == "json":
            r = self.parser.parse(raw, partition=partition, offset=offset, timestamp=timestamp)
            if isinstance(r, Skipped):
                self.skipped[r.reason] += 1
                return []
            if isinstance(r, Invalid):
                return r
            self._count_missing(r)
            return [r]
        return self._decode_otlp(raw, partition, offset, timestamp)

    def decode_batch(
        self, records: Sequence[Record], timestamp_unit: float = 1.0
    ) -> tuple[list[Telemetry], list[tuple[int, Invalid]]]:
        """The events of ``records``, in order, and each record dead-lettered whole.

        What :meth:`decode` gives record by record, in one pass: the events of every record,
        then ``(position in records, Invalid)`` of each record rejected. A record's timestamp
        in seconds is ``(record.timestamp or 0) / timestamp_unit`` (1000 for Kafka's
        milliseconds). Skipped events and missing features are counted as by :meth:`decode`.
        """
        events: list[Telemetry] = []
        rejected: list[tuple[int, Invalid]] = []
        if self.fmt != "json":
            for i, r in enumerate(records):
                out = self._decode_otlp(
                    r.value, r.partition, r.offset, (r.timestamp or 0) / timestamp_unit
                )
                if isinstance(out, Invalid):
                    rejected.append((i, out))
                else:
                    events.extend(out)
            return events, rejected
        parse = self.parser.parse_record
        skipped = self.skipped
        check_categories = bool(self.parser.categorical_features)
        count_missing = self._count_missing
        for i, r in enumerate(records):
            ev = parse(r.value, r.partition, r.offset, (r.timestamp or 0) / timestamp_unit)
            if type(ev) is Telemetry:
                events.append(ev)
                total = sum(ev.values)  # NaN whenever one is NaN
                if total != total or check_categories:
                    count_missing(ev)
            elif isinstance(ev, Skipped):
                skipped[ev.reason] += 1
            else:
                assert isinstance(ev, Invalid)
                rejected.append((i, ev))
        return events, rejected

    def _decode_otlp(
        self, raw: bytes | None, partition: int, offset: int, timestamp: float
    ) -> list[Telemetry] | Invalid:
        assert self.mapping is not None and self.fmt != "json"
        if raw is None:
            return Invalid("invalid_otlp", "empty message (tombstone)", partition, offset)
        try:
            spans = decode_spans(raw, self.fmt, max_bytes=self.max_otlp_bytes)
        except OtlpError as exc:
            return Invalid(exc.reason, exc.detail, partition, offset)
        mapped = self.mapping.map(spans, fallback_time=timestamp)
        out: list[Telemetry] = []
        for event in mapped.events:
            r = self.parser.parse_doc(
                event.doc, partition=partition, offset=offset, timestamp=timestamp
            )
            if isinstance(r, Skipped):  # not reached: the mapping skips these first
                self.skipped[r.reason] += 1
            elif isinstance(r, Invalid):
                # a span the mapping kept but the parser refuses (e.g. a time beyond year
                # 9999): the request is malformed, dead-letter it whole
                return Invalid(r.reason, f"span {event.event_id}: {r.detail}", partition, offset)
            else:
                out.append(r)
        self.skipped.update(mapped.skipped)
        for ev in out:
            self._count_missing(ev)
        return out

    def _count_missing(self, ev: Telemetry) -> None:
        total = sum(ev.values)  # NaN whenever one is NaN (the loop then finds which)
        if total != total:
            for name, v in zip(self.parser.features, ev.values, strict=True):
                if math.isnan(v):
                    self.missing[name] += 1
        for name, c in zip(self.parser.categorical_features, ev.categories, strict=True):
            if c is None:
                self.missing[name] += 1

    def take_counts(self) -> tuple[Counter[str], Counter[str]]:
        """``(skipped, missing)`` since last taken (and reset them)."""
        out = (self.skipped, self.missing)
        self.skipped, self.missing = Counter(), Counter()
        return out
