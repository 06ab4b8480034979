from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from stream.telemetry.otlp import MAX_DEPTH, OtlpError, decode_spans

TRACE = bytes(range(1, 17))
START = 1_764_547_200_000_000_000  # 2025-12-01T00:00:00Z in ns


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def chat_span(i: int, *, output_tokens: int = 180, end_offset_ns: int = 812_400_000) -> Span:
    return Span(
        trace_id=TRACE,
        span_id=bytes([0, 0, 0, 0, 0, 0, 0, i]),
        name="chat gpt-x",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START + i,
        end_time_unix_nano=START + i + end_offset_ns,
        attributes=[
            kv("gen_ai.operation.name", AnyValue(string_value="chat")),
            kv("gen_ai.request.model", AnyValue(string_value="gpt-x")),
            kv("gen_ai.usage.input_tokens", AnyValue(int_value=512)),
            kv("gen_ai.usage.output_tokens", AnyValue(int_value=output_tokens)),
            kv("gen_ai.request.temperature", AnyValue(double_value=0.25)),
            kv("gen_ai.response.streamed", AnyValue(bool_value=True)),
            kv(
                "gen_ai.response.finish_reasons",
                AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="stop")])),
            ),
            kv(
                "gen_ai.extra",
                AnyValue(kvlist_value=KeyValueList(values=[kv("a", AnyValue(int_value=-(2**63)))])),
            ),
            kv("blob", AnyValue(bytes_value=b"\x00\xff")),
            kv("service.name", AnyValue(string_value="span-level-override")),
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )


def proto_request(spans: list[Span], service: str = "support-bot") -> bytes:
    resource = Resource(
        attributes=[
            kv("service.name", AnyValue(string_value=service)),
            kv("deployment.environment", AnyValue(string_value="prod")),
        ]
    )
    req = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
    )
    return req.SerializeToString()


def json_span(i: int) -> dict[str, Any]:
    """The same span as :func:`chat_span`, written per the OTLP/JSON encoding rules."""
    return {
        "traceId": TRACE.hex(),
        "spanId": bytes([0, 0, 0, 0, 0, 0, 0, i]).hex().upper(),  # hex is case-insensitive
        "name": "chat gpt-x",
        "kind": 3,
        "startTimeUnixNano": str(START + i),
        "endTimeUnixNano": str(START + i + 812_400_000),
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-x"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "512"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 180}},
            {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.25}},
            {"key": "gen_ai.response.streamed", "value": {"boolValue": True}},
            {
                "key": "gen_ai.response.finish_reasons",
                "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}},
            },
            {
                "key": "gen_ai.extra",
                "value": {
                    "kvlistValue": {"values": [{"key": "a", "value": {"intValue": str(-(2**63))}}]}
                },
            },
            {"key": "blob", "value": {"bytesValue": "AP8="}},
            {"key": "service.name", "value": {"stringValue": "span-level-override"}},
        ],
        "status": {"code": 2, "message": "boom"},
    }


def json_request(spans: list[dict[str, Any]], service: str = "support-bot") -> bytes:
    return msgspec.json.encode(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": service}},
                            {"key": "deployment.environment", "value": {"stringValue": "prod"}},
                        ]
                    },
                    "scopeSpans": [{"scope": {"name": "genai"}, "spans": spans}],
                }
            ]
        }
    )


EXPECTED_FIELDS = {
    "deployment.environment": "prod",
    "service.name": "span-level-override",  # span attributes win over resource attributes
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "gpt-x",
    "gen_ai.usage.input_tokens": 512,
    "gen_ai.usage.output_tokens": 180,
    "gen_ai.request.temperature": 0.25,
    "gen_ai.response.streamed": True,
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.extra": {"a": -(2**63)},
    "blob": b"\x00\xff",
    "duration_ms": 812.4,
    "span.name": "chat gpt-x",
    "span.kind": "client",
    "status.code": "error",
}


def test_protobuf_request_decodes_to_flat_observations() -> None:
    spans = decode_spans(proto_request([chat_span(1), chat_span(2)]), "otlp_proto")
    assert [s.span_id for s in spans] == ["0000000000000001", "0000000000000002"]
    first = spans[0]
    assert first.trace_id == TRACE.hex()
    assert first.span_uid == TRACE.hex() + "0000000000000001"
    assert dict(first.fields) == EXPECTED_FIELDS
    assert first.time == pytest.approx((START + 1 + 812_400_000) / 1e9)


def test_json_request_decodes_like_the_protobuf_one() -> None:
    from_json = decode_spans(json_request([json_span(1), json_span(2)]), "otlp_json")
    from_proto = decode_spans(proto_request([chat_span(1), chat_span(2)]), "otlp_proto")
    assert from_json == from_proto
    assert dict(from_json[0].fields) == EXPECTED_FIELDS


def test_resource_attributes_fill_in_what_the_span_lacks() -> None:
    span = chat_span(1)
    del span.attributes[-1]  # no span-level service.name
    (obs,) = decode_spans(proto_request([span], service="billing"), "otlp_proto")
    assert obs.fields["service.name"] == "billing"


def test_unset_times_give_no_duration_and_no_time() -> None:
    span = Span(trace_id=TRACE, span_id=b"\x01" * 8, name="x")
    (obs,) = decode_spans(proto_request([span]), "otlp_proto")
    assert obs.time is None
    assert "duration_ms" not in obs.fields
    assert obs.fields["span.kind"] == "unspecified" and obs.fields["status.code"] == "unset"


def test_non_finite_doubles_in_json() -> None:
    span = json_span(1)
    span["attributes"] = [{"key": "x", "value": {"doubleValue": "NaN"}}]
    (obs,) = decode_spans(json_request([span]), "otlp_json")
    assert math.isnan(obs.fields["x"])  # type: ignore[arg-type]


def test_empty_request_has_no_spans() -> None:
    assert decode_spans(b"", "otlp_proto") == []
    assert decode_spans(b"{}", "otlp_json") == []


def _mutate(path: str, value: Any) -> bytes:
    span = json_span(1)
    if path == "kind":
        span["kind"] = value
    elif path == "start":
        span["startTimeUnixNano"] = value
    elif path == "traceId":
        span["traceId"] = value
    elif path == "attribute":
        span["attributes"] = [{"key": "k", "value": value}]
    elif path == "spans":
        return msgspec.json.encode({"resourceSpans": [{"scopeSpans": [{"spans": value}]}]})
    return json_request([span])


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_otlp"),
        (_mutate("spans", {"not": "a list"}), "invalid_otlp"),
        (_mutate("kind", "CLIENT"), "invalid_otlp"),
        (_mutate("start", "12.5"), "invalid_otlp"),
        (_mutate("start", "\u00b2"), "invalid_otlp"),
        (_mutate("traceId", "zz" * 16), "invalid_otlp"),
        (_mutate("traceId", "ab" * 4), "invalid_otlp"),
        (_mutate("attribute", {"intValue": "12", "stringValue": "x"}), "invalid_otlp"),
        (_mutate("attribute", {"boolValue": "yes"}), "invalid_otlp"),
        (_mutate("attribute", {"mysteryValue": 1}), "invalid_otlp"),
        (_mutate("attribute", {"bytesValue": "***"}), "invalid_otlp"),
    ],
)
def test_malformed_json_requests_are_errors_for_the_whole_record(raw: bytes, reason: str) -> None:
    with pytest.raises(OtlpError) as info:
        decode_spans(raw, "otlp_json")
    assert info.value.reason == reason


def test_malformed_protobuf_is_an_error() -> None:
    good = proto_request([chat_span(1)])
    with pytest.raises(OtlpError) as info:
        decode_spans(good[: len(good) // 2], "otlp_proto")
    assert info.value.reason == "invalid_protobuf"
    with pytest.raises(OtlpError, match="invalid_otlp"):
        decode_spans(proto_request([Span(trace_id=b"\x01" * 3, span_id=b"\x01" * 8)]), "otlp_proto")


def test_size_span_count_and_depth_are_bounded() -> None:
    raw = proto_request([chat_span(i) for i in range(5)])
    with pytest.raises(OtlpError, match="oversized"):
        decode_spans(raw, "otlp_proto", max_bytes=len(raw) - 1)
    assert len(decode_spans(raw, "otlp_proto", max_bytes=len(raw))) == 5
    with pytest.raises(OtlpError, match="more than 4 spans"):
        decode_spans(raw, "otlp_proto", max_spans=4)
    deep: dict[str, Any] = {"stringValue": "x"}
    for _ in range(MAX_DEPTH + 2):
        deep = {"arrayValue": {"values": [deep]}}
    with pytest.raises(OtlpError, match="nested deeper"):
        decode_spans(_mutate("attribute", deep), "otlp_json")


def test_default_limits_admit_a_collector_sized_request() -> None:
    spans = [chat_span(i % 250) for i in range(4_000)]
    raw = proto_request(spans)
    assert len(raw) > 1_000_000
    assert len(decode_spans(raw, "otlp_proto")) == 4_000


def test_json_nulls_are_default_values() -> None:
    span = json_span(1)
    span["status"] = None
    span["attributes"] = None
    raw = msgspec.json.encode(
        {"resourceSpans": [{"resource": None, "scopeSpans": [{"spans": [span]}]}]}
    )
    (obs,) = decode_spans(raw, "otlp_json")
    assert obs.fields["status.code"] == "unset" and "service.name" not in obs.fields
