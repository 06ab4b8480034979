"""OpenTelemetry GenAI spans as the Collector's Kafka exporter writes them, with a drift.

:class:`GenAISpanGenerator` makes chat spans (``gen_ai.operation.name = chat``: provider, model,
input and output token usage, finish reasons, latency as end - start, an occasional error) and
tool spans (``execute_tool`` with ``gen_ai.tool.name``) for several services (``service.name``
on the resource) and models, and batches them into ``ExportTraceServiceRequest`` records --
encoded ``otlp_proto`` or ``otlp_json``, with nil Kafka keys, as the Collector sends them.

A :class:`GenAIDrift` changes one (service, model) stream from a given span on: its output
tokens or latency by a relative ``magnitude``, or its finish reasons (``magnitude`` of the
stream's chat spans stop with ``length``).

``driftwatch simulate --format otlp_proto|otlp_json`` runs it (see :func:`add_options`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import msgspec
import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

__all__ = [
    "GENAI_DRIFT_KINDS",
    "GenAIDrift",
    "GenAISpanGenerator",
    "add_options",
    "encode",
    "to_otlp_json",
]

GenAIDriftKind = Literal["output_tokens", "latency", "finish_reasons"]
GENAI_DRIFT_KINDS: tuple[str, ...] = get_args(GenAIDriftKind)

SERVICES: Final = ("support-bot", "billing-agent", "search-agent")
#: model -> (provider, mean output tokens, mean latency per output token in ms)
MODELS: Final = {
    "gpt-4o-mini": ("openai", 180.0, 9.0),
    "claude-sonnet-4": ("anthropic", 320.0, 14.0),
    "llama-3.1-70b": ("aws.bedrock", 240.0, 11.0),
}
TOOLS: Final = ("search_kb", "lookup_order", "send_email")
FINISH_REASONS: Final = (("stop",), ("length",), ("tool_calls",))
FINISH_SHARES: Final = (0.86, 0.06, 0.08)


@dataclass(frozen=True, slots=True)
class GenAIDrift:
    """From span ``start`` on, change the chat spans of ``service`` on ``model``."""

    service: str
    model: str
    kind: GenAIDriftKind
    magnitude: float
    start: int

    def __post_init__(self) -> None:
        if self.kind not in GENAI_DRIFT_KINDS:
            raise ValueError(f"drift kind must be one of {GENAI_DRIFT_KINDS}, got {self.kind!r}")
        if self.kind == "finish_reasons" and not 0 < self.magnitude <= 1:
            raise ValueError(f"a finish_reasons drift needs 0 < magnitude <= 1: {self.magnitude}")


def _kv(key: str, value: str | int | float | Sequence[str]) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    items = [AnyValue(string_value=v) for v in value]
    return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=items)))


class GenAISpanGenerator:
    """Seeded GenAI spans; ``spans_made`` counts the spans generated so far.

    Parameters
    ----------
    services, models
        ``service.name`` values and ``gen_ai.request.model`` values (from :data:`MODELS`).
    tool_share : float
        Fraction of spans that are tool calls.
    seed : int
        Seed of everything random.
    drift : GenAIDrift, optional
        The drift to inject.
    drifts : sequence of GenAIDrift
        More drifts (on other streams; for a span, the first matching drift applies).
    start_ns : int
        Start time of the first span (ns since the epoch); spans are ``step_ns`` apart.
    """

    def __init__(
        self,
        services: Sequence[str] = SERVICES,
        models: Sequence[str] = tuple(MODELS),
        *,
        tool_share: float = 0.3,
        seed: int = 0,
        drift: GenAIDrift | None = None,
        drifts: Sequence[GenAIDrift] = (),
        start_ns: int = 1_764_547_200_000_000_000,
        step_ns: int = 5_000_000,
    ) -> None:
        unknown = sorted(set(models) - set(MODELS))
        if unknown or not models or not services:
            raise ValueError(f"models must be among {sorted(MODELS)}, got {list(models)}")
        if not 0 <= tool_share < 1:
            raise ValueError(f"tool_share must be in [0, 1), got {tool_share!r}")
        self.services = tuple(services)
        self.models = tuple(models)
        self.tool_share = tool_share
        self.drift = drift
        self.drifts: tuple[GenAIDrift, ...] = (*(() if drift is None else (drift,)), *drifts)
        self.start_ns = start_ns
        self.step_ns = step_ns
        self.spans_made = 0
        self._rng = np.random.default_rng(seed)

    def span(self) -> tuple[str, Span]:
        """The next span and its service."""
        rng = self._rng
        i = self.spans_made
        self.spans_made += 1
        service = self.services[int(rng.integers(len(self.services)))]
        model = self.models[int(rng.integers(len(self.models)))]
        start = self.start_ns + i * self.step_ns
        trace_id = rng.bytes(16)
        span_id = rng.bytes(8)
        if rng.random() < self.tool_share:
            tool = TOOLS[int(rng.integers(len(TOOLS)))]
            duration = int(rng.lognormal(np.log(40e6), 0.5))
            attrs = [_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", tool)]
            return service, Span(
                trace_id=trace_id,
                span_id=span_id,
                name=f"execute_tool {tool}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=start + duration,
                attributes=attrs,
            )
        provider, mean_out, ms_per_token = MODELS[model]
        active = next(
            (d for d in self.drifts if i >= d.start and (service, model) == (d.service, d.model)),
            None,
        )
        kind = None if active is None else active.kind
        magnitude = 0.0 if active is None else active.magnitude
        if kind == "output_tokens":
            mean_out *= 1 + magnitude
        output_tokens = int(rng.poisson(mean_out))
        input_tokens = int(rng.poisson(600))
        latency_ms = 250.0 + ms_per_token * output_tokens * rng.lognormal(0.0, 0.25)
        if kind == "latency":
            latency_ms *= 1 + magnitude
        if kind == "finish_reasons" and rng.random() < magnitude:
            finish: tuple[str, ...] = ("length",)
        else:
            finish = FINISH_REASONS[int(rng.choice(len(FINISH_REASONS), p=FINISH_SHARES))]
        attrs = [
            _kv("gen_ai.operation.name", "chat"),
            _kv("gen_ai.provider.name", provider),
            _kv("gen_ai.request.model", model),
            _kv("gen_ai.usage.input_tokens", input_tokens),
            _kv("gen_ai.usage.output_tokens", output_tokens),
            _kv("gen_ai.response.finish_reasons", finish),
        ]
        status = Status()
        if rng.random() < 0.02:
            attrs.append(_kv("error.type", "timeout"))
            status = Status(code=Status.STATUS_CODE_ERROR)
        return service, Span(
            trace_id=trace_id,
            span_id=span_id,
            name=f"chat {model}",
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=start + int(latency_ms * 1e6),
            attributes=attrs,
            status=status,
        )

    def request(self, spans: int) -> ExportTraceServiceRequest:
        """An export request holding the next ``spans`` spans, one ResourceSpans per service."""
        by_service: dict[str, list[Span]] = {}
        for _ in range(spans):
            service, span = self.span()
            by_service.setdefault(service, []).append(span)
        return ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[_kv("service.name", service)]),
                    scope_spans=[ScopeSpans(spans=group)],
                )
                for service, group in by_service.items()
            ]
        )


def _any_json(value: AnyValue) -> dict[str, Any]:
    which = value.WhichOneof("value")
    if which == "string_value":
        return {"stringValue": value.string_value}
    if which == "int_value":
        return {"intValue": str(value.int_value)}  # int64 as a decimal string
    if which == "double_value":
        return {"doubleValue": value.double_value}
    if which == "bool_value":
        return {"boolValue": value.bool_value}
    if which == "array_value":
        return {"arrayValue": {"values": [_any_json(v) for v in value.array_value.values]}}
    raise ValueError(f"the generator does not write {which} attributes")


def _attrs_json(attributes: Sequence[KeyValue]) -> list[dict[str, Any]]:
    return [{"key": kv.key, "value": _any_json(kv.value)} for kv in attributes]


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The request in the OTLP/JSON encoding (camelCase, hex ids, int64 as strings)."""
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": _attrs_json(rs.resource.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": ss.scope.name},
                        "spans": [
                            {
                                "traceId": s.trace_id.hex(),
                                "spanId": s.span_id.hex(),
                                "name": s.name,
                                "kind": int(s.kind),
                                "startTimeUnixNano": str(s.start_time_unix_nano),
                                "endTimeUnixNano": str(s.end_time_unix_nano),
                                "attributes": _attrs_json(s.attributes),
                                "status": {"code": int(s.status.code)} if s.status.code else {},
                            }
                            for s in ss.spans
                        ],
                    }
                    for ss in rs.scope_spans
                ],
            }
            for rs in request.resource_spans
        ]
    }
    return msgspec.json.encode(doc)


def encode(request: ExportTraceServiceRequest, fmt: str) -> bytes:
    """The record value for ``fmt`` (``otlp_proto`` or ``otlp_json``)."""
    if fmt == "otlp_proto":
        return request.SerializeToString()
    if fmt == "otlp_json":
        return to_otlp_json(request)
    raise ValueError(f"format must be otlp_proto or otlp_json, got {fmt!r}")


def records(
    generator: GenAISpanGenerator, count: int | None, spans_per_record: int, fmt: str
) -> Iterator[bytes]:
    """Encoded export requests until ``count`` spans were made (None: without end)."""
    while count is None or generator.spans_made < count:
        take = (
            spans_per_record
            if count is None
            else min(spans_per_record, count - generator.spans_made)
        )
        yield encode(generator.request(take), fmt)


# ---------------------------------------------------------------------- command line
def add_options(p: argparse.ArgumentParser) -> None:
    """The ``simulate`` options for OTLP output (``--format otlp_proto|otlp_json``)."""
    g = p.add_argument_group("OTLP GenAI spans (--format otlp_proto|otlp_json)")
    g.add_argument("--spans-per-record", type=int, default=50, help="spans per export request")
    g.add_argument("--services", default=",".join(SERVICES), help="service.name values")
    g.add_argument("--models", default=",".join(MODELS), help=f"among {', '.join(MODELS)}")
    g.add_argument("--tool-share", type=float, default=0.3, help="fraction of tool spans")
    g.add_argument("--genai-drift", choices=GENAI_DRIFT_KINDS, help="what drifts")
    g.add_argument("--drift-service", default=SERVICES[0])
    g.add_argument("--drift-model", default=next(iter(MODELS)))


def run(
    args: argparse.Namespace,
    send: Callable[[bytes | None, bytes], None],
    *,
    drift_start: int,
    paced: bool = True,
) -> int:
    """Generate ``--count`` spans (or run on) and send each record with a nil key.

    ``drift_start`` is the index of the first drifted span; ``paced`` holds the sending to
    ``--rate`` (timestamps are spaced by it either way).
    """
    rate = args.rate or 10_000.0
    drift = None
    if args.genai_drift:
        drift = GenAIDrift(
            args.drift_service,
            args.drift_model,
            args.genai_drift,
            args.drift_magnitude,
            start=drift_start,
        )
    start_ns = (args.start_ms if args.start_ms is not None else int(time.time() * 1000)) * 10**6
    gen = GenAISpanGenerator(
        [s.strip() for s in args.services.split(",") if s.strip()],
        [m.strip() for m in args.models.split(",") if m.strip()],
        tool_share=args.tool_share,
        seed=args.seed,
        drift=drift,
        start_ns=start_ns,
        step_ns=int(1e9 / rate),
    )
    started = time.monotonic()
    n = 0
    for value in records(gen, args.count, args.spans_per_record, args.format):
        send(None, value)
        n += 1
        if paced and args.rate:
            ahead = gen.spans_made / args.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    print(f"simulate: done, {gen.spans_made} spans in {n} records", file=sys.stderr)
    return 0
