"""OTLP trace export requests in, one flat observation per span out.

The OpenTelemetry Collector's Kafka exporter writes one ``ExportTraceServiceRequest`` per record
(``otlp_proto`` by default, or ``otlp_json``). :func:`decode_spans` turns such a record value into
:class:`SpanObservation` objects, one per span, each with a flat ``fields`` mapping:

* **Resource attributes**, then **span attributes** over them (a field name resolves to the
  span's attribute when the span has one, else to its resource's, e.g. ``service.name``).
* **Derived fields** (they take precedence over attributes of the same name):
  ``duration_ms`` (end - start, when both times are set and end >= start), ``span.name``,
  ``span.kind`` (``internal``, ``server``, ``client``, ``producer``, ``consumer``,
  ``unspecified``) and ``status.code`` (``unset``, ``ok``, ``error``).
* The event time is the span's end time (its start time when the end is unset), in seconds.

Attribute values keep their type: ``stringValue`` -> str, ``intValue`` -> int (OTLP/JSON carries
64-bit integers as decimal strings; numbers are accepted too), ``doubleValue`` -> float,
``boolValue`` -> bool, ``bytesValue`` -> bytes, ``arrayValue`` -> list, ``kvlistValue`` -> dict.
Ids are lower-case hex in both encodings, and ``trace_id + span_id`` is the span's id for
deduplication.

A record that is not a valid export request (bad JSON or protobuf, wrong shapes, ids of the
wrong length, more than ``max_spans`` spans, nesting deeper than :data:`MAX_DEPTH`) raises
:class:`OtlpError` for the whole record: it is dead-lettered whole, with the reason.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_DEPTH",
    "MAX_SPANS",
    "OTLP_INVALID_REASONS",
    "SPAN_KINDS",
    "STATUS_CODES",
    "TELEMETRY_FORMATS",
    "OtlpError",
    "SpanObservation",
    "TelemetryFormat",
    "decode_spans",
]

TelemetryFormat = Literal["json", "otlp_json", "otlp_proto"]
TELEMETRY_FORMATS: tuple[str, ...] = get_args(TelemetryFormat)

#: Default record size limits per format (the Collector's producer default is 1,000,000 bytes).
DEFAULT_MAX_BYTES: Final[Mapping[str, int]] = {
    "json": 65_536,
    "otlp_json": 4_194_304,
    "otlp_proto": 4_194_304,
}
#: Spans one export request may hold.
MAX_SPANS: Final = 100_000
#: Deepest nesting of array and key-value list attribute values.
MAX_DEPTH: Final = 8

#: Why a whole record is rejected (dead-letter reasons).
OTLP_INVALID_REASONS = ("oversized", "invalid_json", "invalid_protobuf", "invalid_otlp")

SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_CODES: Final = ("unset", "ok", "error")

AttributeValue = str | int | float | bool | bytes | list[Any] | dict[str, Any]


class OtlpError(ValueError):
    """A record that is not a valid OTLP trace export request; dead-letter it whole.

    ``reason`` is one of :data:`OTLP_INVALID_REASONS`; ``detail`` says what was wrong. The
    operator should check the exporter's ``encoding`` against ``TELEMETRY_FORMAT``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail[:200]


@dataclass(frozen=True, slots=True)
class SpanObservation:
    """One span as a flat observation."""

    trace_id: str
    span_id: str
    time: float | None  # event time, seconds since the epoch (None: the span has no times)
    fields: Mapping[str, AttributeValue]

    @property
    def span_uid(self) -> str:
        """``trace_id + span_id``: the same span always has the same id (for deduplication)."""
        return self.trace_id + self.span_id


def decode_spans(
    raw: bytes,
    fmt: Literal["otlp_json", "otlp_proto"],
    *,
    max_bytes: int | None = None,
    max_spans: int = MAX_SPANS,
) -> list[SpanObservation]:
    """Decode one export request into its spans (in order), or raise :class:`OtlpError`."""
    limit = DEFAULT_MAX_BYTES[fmt] if max_bytes is None else max_bytes
    if len(raw) > limit:
        raise OtlpError("oversized", f"{len(raw)} bytes > limit {limit}")
    spans = _from_json(raw) if fmt == "otlp_json" else _from_proto(raw)
    out: list[SpanObservation] = []
    for obs in spans:
        out.append(obs)
        if len(out) > max_spans:
            raise OtlpError("invalid_otlp", f"more than {max_spans} spans in one request")
    return out


def _observation(
    resource: dict[str, AttributeValue],
    attributes: dict[str, AttributeValue],
    *,
    trace_id: str,
    span_id: str,
    name: str,
    kind: int,
    status: int,
    start_ns: int,
    end_ns: int,
) -> SpanObservation:
    if len(trace_id) != 32 or len(span_id) != 16:
        raise OtlpError(
            "invalid_otlp", f"trace id {trace_id!r} / span id {span_id!r}: need 16 / 8 bytes"
        )
    fields = {**resource, **attributes}
    if start_ns > 0 and end_ns >= start_ns:
        fields["duration_ms"] = (end_ns - start_ns) / 1e6
    fields["span.name"] = name
    fields["span.kind"] = SPAN_KINDS[kind] if 0 <= kind < len(SPAN_KINDS) else str(kind)
    fields["status.code"] = STATUS_CODES[status] if 0 <= status < len(STATUS_CODES) else str(status)
    stamp = end_ns if end_ns > 0 else start_ns
    return SpanObservation(trace_id, span_id, stamp / 1e9 if stamp > 0 else None, fields)


# ---------------------------------------------------------------------- OTLP/protobuf
def _from_proto(raw: bytes) -> Iterator[SpanObservation]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(raw)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OtlpError(
            "invalid_protobuf", str(exc) or "not an ExportTraceServiceRequest"
        ) from None
    for rs in request.resource_spans:
        resource = {kv.key: _proto_value(kv.value, 0) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield _observation(
                    resource,
                    {kv.key: _proto_value(kv.value, 0) for kv in span.attributes},
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    name=span.name,
                    kind=int(span.kind),
                    status=int(span.status.code),
                    start_ns=int(span.start_time_unix_nano),
                    end_ns=int(span.end_time_unix_nano),
                )


def _proto_value(value: AnyValue, depth: int) -> AttributeValue:
    if depth > MAX_DEPTH:
        raise OtlpError("invalid_otlp", f"attribute values nested deeper than {MAX_DEPTH}")
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return int(value.int_value)
    if which == "double_value":
        return float(value.double_value)
    if which == "bool_value":
        return bool(value.bool_value)
    if which == "bytes_value":
        return bytes(value.bytes_value)
    if which == "array_value":
        return [_proto_value(v, depth + 1) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _proto_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return ""  # an empty AnyValue (or a dictionary index, which trace exports do not use)


# ---------------------------------------------------------------------- OTLP/JSON
def _from_json(raw: bytes) -> Iterator[SpanObservation]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise OtlpError("invalid_json", str(exc)) from None
    for rs in _list(_object(doc, "request"), "resourceSpans"):
        rs = _object(rs, "resourceSpans[]")
        resource = _json_attributes(_object(_default(rs.get("resource")), "resource"))
        for ss in _list(rs, "scopeSpans"):
            for span in _list(_object(ss, "scopeSpans[]"), "spans"):
                span = _object(span, "spans[]")
                status = _object(_default(span.get("status")), "status")
                yield _observation(
                    resource,
                    _json_attributes(span),
                    trace_id=_hex_id(span.get("traceId"), "traceId"),
                    span_id=_hex_id(span.get("spanId"), "spanId"),
                    name=_string(span.get("name", ""), "name"),
                    kind=_json_int(span.get("kind", 0), "kind"),
                    status=_json_int(status.get("code", 0), "status.code"),
                    start_ns=_json_int(span.get("startTimeUnixNano", 0), "startTimeUnixNano"),
                    end_ns=_json_int(span.get("endTimeUnixNano", 0), "endTimeUnixNano"),
                )


def _object(x: Any, what: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise OtlpError("invalid_otlp", f"{what} must be an object, got {type(x).__name__}")
    return x


def _default(x: Any) -> Any:
    return {} if x is None else x  # proto3 JSON: null is the default value


def _list(parent: dict[str, Any], name: str) -> list[Any]:
    x = parent.get(name)
    if x is None:
        return []
    if not isinstance(x, list):
        raise OtlpError("invalid_otlp", f"{name} must be an array, got {type(x).__name__}")
    return x


def _string(x: Any, what: str) -> str:
    if not isinstance(x, str):
        raise OtlpError("invalid_otlp", f"{what} must be a string, got {type(x).__name__}")
    return x


def _json_int(x: Any, what: str) -> int:
    """An int64 as OTLP/JSON writes it: a decimal string (or a plain integer)."""
    if isinstance(x, str) and x.isascii() and x.lstrip("-").isdigit() and len(x) <= 20:
        return int(x)
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    raise OtlpError("invalid_otlp", f"{what} must be an integer, got {x!r}"[:200])


def _hex_id(x: Any, what: str) -> str:
    text = _string(x, what)
    try:
        return bytes.fromhex(text).hex()
    except ValueError:
        raise OtlpError("invalid_otlp", f"{what} must be hex, got {text!r}") from None


def _json_attributes(parent: dict[str, Any]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for kv in _list(parent, "attributes"):
        kv = _object(kv, "attributes[]")
        out[_string(kv.get("key"), "attribute key")] = _json_value(kv.get("value", {}), 0)
    return out


def _json_value(value: Any, depth: int) -> AttributeValue:
    if depth > MAX_DEPTH:
        raise OtlpError("invalid_otlp", f"attribute values nested deeper than {MAX_DEPTH}")
    value = _object(value, "AnyValue")
    if not value:
        return ""
    if len(value) != 1:
        raise OtlpError("invalid_otlp", f"AnyValue must have one variant, got {sorted(value)}")
    ((which, x),) = value.items()
    if which == "stringValue":
        return _string(x, which)
    if which == "intValue":
        return _json_int(x, which)
    if which == "doubleValue":
        return _json_double(x)
    if which == "boolValue":
        if not isinstance(x, bool):
            raise OtlpError("invalid_otlp", f"boolValue must be true or false, got {x!r}")
        return x
    if which == "bytesValue":
        try:
            return base64.b64decode(_string(x, which), validate=True)
        except binascii.Error:
            raise OtlpError("invalid_otlp", "bytesValue must be base64") from None
    if which == "arrayValue":
        return [_json_value(v, depth + 1) for v in _list(_object(x, which), "values")]
    if which == "kvlistValue":
        items = (_object(kv, "kvlistValue[]") for kv in _list(_object(x, which), "values"))
        return {
            _string(kv.get("key"), "key"): _json_value(kv.get("value", {}), depth + 1)
            for kv in items
        }
    raise OtlpError("invalid_otlp", f"unknown AnyValue variant {which!r}")


def _json_double(x: Any) -> float:
    # proto3 JSON writes non-finite doubles as strings
    if isinstance(x, str) and x in ("NaN", "Infinity", "-Infinity"):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[x]
    if isinstance(x, int | float) and not isinstance(x, bool):
        return float(x)
    raise OtlpError("invalid_otlp", f"doubleValue must be a number, got {x!r}"[:200])
