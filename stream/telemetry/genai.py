"""From span observations to the flat telemetry events the worker reads (GenAI mapping).

The default mapping follows the OpenTelemetry GenAI semantic conventions:

==============================  =============================================================
stream key                      ``service.name`` (resource), ``gen_ai.request.model``
numeric features                ``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``,
                                ``duration_ms`` (end - start)
categorical features            ``gen_ai.response.finish_reasons`` (an array: see
                                :func:`detectors.categorical.category_of`), ``error.type``,
                                ``gen_ai.provider.name``, ``status.code``
span filter                     ``gen_ai.operation.name`` in ``chat``, ``text_completion``,
                                ``generate_content`` (tool spans, ``execute_tool``, are skipped)
==============================  =============================================================

Rules (the same for every format):

* A span that fails the filter is skipped with reason ``filtered``; one without a key field
  with reason ``missing_key``; one with none of the features with reason ``no_features``.
  Skipped spans are counted, never dead-lettered.
* **Sparse events**: an event carries the features its span has; a feature that is absent (or,
  for a numeric feature, not a finite number) is left out of the event and counted in
  :attr:`Mapped.missing`, not an error.
* The event's ``event_id`` is ``trace_id + span_id``, so a span delivered twice has one id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from stream.settings import DEFAULT_SPAN_FILTER
from stream.telemetry.otlp import AttributeValue, SpanObservation

__all__ = [
    "GENAI_CATEGORICAL_FEATURES",
    "GENAI_FEATURES",
    "GENAI_FILTER",
    "GENAI_KEY_FIELDS",
    "SKIP_REASONS",
    "FlatEvent",
    "Mapped",
    "SpanFilter",
    "SpanMapping",
]

GENAI_KEY_FIELDS: Final = ("service.name", "gen_ai.request.model")
GENAI_FEATURES: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "duration_ms")
GENAI_CATEGORICAL_FEATURES: Final = (
    "gen_ai.response.finish_reasons",
    "error.type",
    "gen_ai.provider.name",
    "status.code",
)
GENAI_FILTER: Final = DEFAULT_SPAN_FILTER

#: Why a span is skipped (the ``reason`` label of ``driftwatch_skipped_total``).
SKIP_REASONS: Final = ("filtered", "missing_key", "no_features")

#: Longest stream key and categorical value kept (longer ones are cut).
MAX_VALUE_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class SpanFilter:
    """Keep the spans whose ``field`` (as a string) is one of ``values``."""

    field: str
    values: frozenset[str]

    @classmethod
    def parse(cls, spec: str) -> SpanFilter:
        """``"gen_ai.operation.name=chat,text_completion"`` -> a filter; ValueError if malformed."""
        name, sep, rest = spec.partition("=")
        values = frozenset(v.strip() for v in rest.split(",") if v.strip())
        if not sep or not name.strip() or not values:
            raise ValueError(f"a span filter is FIELD=VALUE[,VALUE...], got {spec!r}")
        return cls(name.strip(), values)

    def accepts(self, fields: Mapping[str, AttributeValue]) -> bool:
        value = fields.get(self.field)
        return value is not None and str(value) in self.values


@dataclass(frozen=True, slots=True)
class FlatEvent:
    """One span as a flat JSON telemetry event, keyed by its stream key."""

    key: str
    event_id: str
    doc: dict[str, Any]

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.doc)


@dataclass(frozen=True, slots=True)
class Mapped:
    """What a batch of spans became: events, skipped spans by reason, missing features."""

    events: list[FlatEvent] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)


def _finite_number(v: AttributeValue | None) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v if math.isfinite(v) else None


def _categorical(v: AttributeValue | None) -> Any:
    if v is None or isinstance(v, bytes | dict):
        return None
    if isinstance(v, list):
        return [str(x)[:MAX_VALUE_CHARS] for x in v if not isinstance(x, list | dict | bytes)]
    return v if isinstance(v, bool | int | float) else str(v)[:MAX_VALUE_CHARS]


@dataclass(frozen=True, slots=True)
class SpanMapping:
    """Which span fields make the stream key and the features, and which spans count."""

    key_fields: tuple[str, ...] = GENAI_KEY_FIELDS
    features: tuple[str, ...] = GENAI_FEATURES
    categorical_features: tuple[str, ...] = GENAI_CATEGORICAL_FEATURES
    span_filter: SpanFilter | None = field(default_factory=lambda: SpanFilter.parse(GENAI_FILTER))

    def __post_init__(self) -> None:
        if not self.key_fields:
            raise ValueError("key_fields must name at least one field")
        if not (self.features or self.categorical_features):
            raise ValueError("give at least one numeric or categorical feature")

    def map(self, spans: Iterable[SpanObservation], *, fallback_time: float = 0.0) -> Mapped:
        """Flat events for the spans that count; ``fallback_time`` (s) for spans without times."""
        out = Mapped()
        for obs in spans:
            reason = self._event(obs, fallback_time, out)
            if reason is not None:
                out.skipped[reason] = out.skipped.get(reason, 0) + 1
        return out

    def _event(self, obs: SpanObservation, fallback_time: float, out: Mapped) -> str | None:
        fields = obs.fields
        if self.span_filter is not None and not self.span_filter.accepts(fields):
            return "filtered"
        parts = []
        for name in self.key_fields:
            part = fields.get(name)
            if part is None or part == "" or isinstance(part, list | dict | bytes):
                return "missing_key"
            parts.append(str(part)[:MAX_VALUE_CHARS])
        ts = obs.time if obs.time is not None else fallback_time
        doc: dict[str, Any] = {"event_id": obs.span_uid, "ts": round(ts * 1000.0, 3)}
        doc.update(zip(self.key_fields, parts, strict=True))
        missing = []
        for name in self.features:
            number = _finite_number(fields.get(name))
            if number is None:
                missing.append(name)
            else:
                doc[name] = number
        for name in self.categorical_features:
            value = _categorical(fields.get(name))
            if value is None:
                missing.append(name)
            else:
                doc[name] = value
        if len(missing) == len(self.features) + len(self.categorical_features):
            return "no_features"
        for name in missing:
            out.missing[name] = out.missing.get(name, 0) + 1
        out.events.append(FlatEvent("/".join(parts), obs.span_uid, doc))
        return None


def parse_names(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"a, b"`` or ``["a", "b"]`` -> ``("a", "b")`` (empty names dropped)."""
    items = spec.split(",") if isinstance(spec, str) else spec
    return tuple(s.strip() for s in items if s.strip())
