from __future__ import annotations

import math

import msgspec
import pytest

from stream.telemetry.genai import SpanFilter, SpanMapping
from stream.telemetry.otlp import SpanObservation


def obs(i: int, **fields: object) -> SpanObservation:
    base: dict[str, object] = {
        "service.name": "support-bot",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-x",
    }
    base.update(fields)
    return SpanObservation("ab" * 16, f"{i:016x}", 1_764_547_200.5 + i, base)  # type: ignore[arg-type]


def test_genai_defaults_map_a_chat_span_to_a_flat_event() -> None:
    span = obs(
        1,
        **{
            "gen_ai.usage.input_tokens": 512,
            "gen_ai.usage.output_tokens": 180,
            "duration_ms": 812.4,
            "gen_ai.response.finish_reasons": ["stop"],
            "status.code": "ok",
            "gen_ai.provider.name": "openai",
            "gen_ai.input.messages": "a long prompt that is not carried",
        },
    )
    mapped = SpanMapping().map([span])
    assert mapped.skipped == {}
    (event,) = mapped.events
    assert event.key == "support-bot/gpt-x"
    assert event.event_id == "ab" * 16 + "0000000000000001"
    assert msgspec.json.decode(event.to_json()) == {
        "event_id": event.event_id,
        "ts": 1_764_547_201_500.0,
        "service.name": "support-bot",
        "gen_ai.request.model": "gpt-x",
        "gen_ai.usage.input_tokens": 512,
        "gen_ai.usage.output_tokens": 180,
        "duration_ms": 812.4,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.provider.name": "openai",
        "status.code": "ok",
    }
    assert mapped.missing == {"error.type": 1}


def test_tool_spans_are_filtered_and_keyless_spans_skipped_not_errors() -> None:
    spans = [
        obs(1, **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}),
        obs(2, **{"gen_ai.request.model": None, "duration_ms": 5.0}),
        obs(3, **{"gen_ai.request.model": ""}),
        obs(4),  # a chat span with none of the features
        obs(5, duration_ms=12.0),
    ]
    mapped = SpanMapping(categorical_features=()).map(spans)
    assert mapped.skipped == {"filtered": 1, "missing_key": 2, "no_features": 1}
    assert [e.event_id[-1] for e in mapped.events] == ["5"]
    assert mapped.missing == {"gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1}


def test_non_numeric_and_non_finite_numeric_features_are_missing() -> None:
    spans = [
        obs(1, duration_ms=math.inf, **{"gen_ai.usage.output_tokens": "many"}),
        obs(2, duration_ms=True, **{"gen_ai.usage.output_tokens": 7}),
    ]
    mapped = SpanMapping(categorical_features=()).map(spans)
    assert [e.doc.get("gen_ai.usage.output_tokens") for e in mapped.events] == [7]
    assert mapped.skipped == {"no_features": 1}


def test_spans_without_times_take_the_fallback_time() -> None:
    span = SpanObservation(
        "ab" * 16,
        "01" * 8,
        None,
        {
            "service.name": "s",
            "gen_ai.request.model": "m",
            "gen_ai.operation.name": "chat",
            "duration_ms": 1.0,
        },
    )
    (event,) = SpanMapping().map([span], fallback_time=12.0).events
    assert event.doc["ts"] == 12_000.0


def test_filter_parsing_and_no_filter() -> None:
    f = SpanFilter.parse(" gen_ai.operation.name = chat, embeddings ")
    assert f == SpanFilter("gen_ai.operation.name", frozenset({"chat", "embeddings"}))
    for bad in ("", "name", "name=", "=chat"):
        with pytest.raises(ValueError, match="FIELD=VALUE"):
            SpanFilter.parse(bad)
    tool = obs(1, duration_ms=3.0, **{"gen_ai.operation.name": "execute_tool"})
    assert len(SpanMapping(span_filter=None).map([tool]).events) == 1


def test_mapping_needs_a_key_and_a_feature() -> None:
    with pytest.raises(ValueError, match="key_fields"):
        SpanMapping(key_fields=())
    with pytest.raises(ValueError, match="feature"):
        SpanMapping(features=(), categorical_features=())
