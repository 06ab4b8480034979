"""The worker's record decoder: every TELEMETRY_FORMAT, the sparse and skip rules."""

from __future__ import annotations

import math
from collections import Counter

import msgspec
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream.exceptions import ConfigError
from stream.ingest.stage import explode
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.settings import DEFAULT_SPAN_FILTER, load_settings
from stream.telemetry.decoding import RecordDecoder
from stream.telemetry.genai import GENAI_FILTER, SpanFilter, SpanMapping
from stream.telemetry.records import Invalid, Telemetry
from stream.tools.genai import GenAISpanGenerator, encode

KEYS = "service.name,gen_ai.request.model"
TOKENS = "gen_ai.usage.output_tokens"
FINISH = "gen_ai.response.finish_reasons"


def _settings(fmt: str, **extra: object):  # type: ignore[no-untyped-def]
    return load_settings(
        environ={},
        telemetry_format=fmt,
        key_fields=tuple(KEYS.split(",")),
        features=(TOKENS, "duration_ms"),
        categorical_features=(FINISH,),
        **extra,
    )


def _chat_and_tools(req) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    ops = [
        kv.value.string_value
        for rs in req.resource_spans
        for s in rs.scope_spans[0].spans
        for kv in s.attributes
        if kv.key == "gen_ai.operation.name"
    ]
    return ops.count("chat"), ops.count("execute_tool")


@pytest.mark.parametrize("fmt", ["otlp_proto", "otlp_json"])
def test_otlp_records_become_one_event_per_chat_span_as_ingest_maps_them(fmt: str) -> None:
    req = GenAISpanGenerator(seed=3, tool_share=0.4).request(120)
    chat, tools = _chat_and_tools(req)
    decoder = RecordDecoder.from_settings(_settings(fmt))
    got = decoder.decode(encode(req, fmt), partition=2, offset=17, timestamp=5.0)
    assert isinstance(got, list) and len(got) == chat
    assert decoder.skipped == Counter({"filtered": tools})
    # the oracle: the ingest stage's events of the same record, read back as flat JSON
    mapping = SpanMapping(
        key_fields=tuple(KEYS.split(",")),
        features=(TOKENS, "duration_ms"),
        categorical_features=(FINISH,),
        span_filter=SpanFilter.parse(GENAI_FILTER),
    )
    flat = explode([RawMessage(None, encode(req, fmt), 2, 17)], fmt, mapping).events  # type: ignore[arg-type]
    assert len(flat) == chat
    for ev, want in zip(got, flat, strict=True):
        assert isinstance(ev, Telemetry)
        doc = msgspec.json.decode(want.to_json())
        assert ev.key == want.key
        assert ev.values == (float(doc[TOKENS]), doc["duration_ms"])
        assert ev.categories == (doc[FINISH],)
        assert (ev.partition, ev.offset) == (2, 17)
        assert ev.ts == pytest.approx(doc["ts"] / 1000.0)


def test_a_malformed_or_oversized_request_is_invalid_whole() -> None:
    decoder = RecordDecoder.from_settings(_settings("otlp_proto", max_otlp_bytes=1_000_000))
    bad = decoder.decode(b"\x0a\xff\xff not protobuf")
    assert isinstance(bad, Invalid) and bad.reason == "invalid_protobuf"
    assert isinstance(decoder.decode(None), Invalid)
    req = GenAISpanGenerator(seed=1).request(5000)
    raw = encode(req, "otlp_proto")
    assert len(raw) > 1_000_000
    big = decoder.decode(raw)
    assert isinstance(big, Invalid) and big.reason == "oversized"
    assert not decoder.skipped


def test_json_is_sparse_nested_and_counts_what_it_skips_or_misses() -> None:
    settings = load_settings(
        environ={}, features=("usage.output_tokens", "latency_ms"), categorical_features=("model",)
    )
    decoder = RecordDecoder.from_settings(settings)
    lines = [
        {"agent_id": "a", "usage": {"output_tokens": 7}, "model": "m1"},  # latency missing
        {"agent_id": "a", "latency_ms": 3.5},  # tokens and model missing
        {"agent_id": "a", "other": 1},  # no feature: skipped
        {"usage": {"output_tokens": 7}},  # no key: skipped
        {"agent_id": "a", "latency_ms": "slow"},  # wrong type: still invalid
    ]
    out = [decoder.decode(msgspec.json.encode(d)) for d in lines]
    first, second = out[0], out[1]
    assert isinstance(first, list) and first[0].values[0] == 7.0 and math.isnan(first[0].values[1])
    assert first[0].categories == ("m1",)
    assert isinstance(second, list) and second[0].categories == (None,)
    assert out[2] == [] and out[3] == []
    assert isinstance(out[4], Invalid) and out[4].reason == "non_numeric"
    skipped, missing = decoder.take_counts()
    assert skipped == Counter({"no_features": 1, "missing_key": 1})
    assert missing == Counter({"latency_ms": 1, "usage.output_tokens": 1, "model": 1})
    assert decoder.take_counts() == (Counter(), Counter())


def test_a_json_span_filter_skips_the_events_it_does_not_keep() -> None:
    settings = load_settings(environ={}, features=("x",), span_filter="op=chat,completion")
    decoder = RecordDecoder.from_settings(settings)
    kept = [
        decoder.decode(msgspec.json.encode({"agent_id": "a", "x": 1, "op": op}))
        for op in ("chat", "tool", "completion")
    ]
    assert [len(k) for k in kept if isinstance(k, list)] == [1, 0, 1]
    assert decoder.skipped == Counter({"filtered": 1})


def test_missing_features_are_counted_exactly_whatever_the_magnitudes() -> None:
    # values near the float limits make the features' sum overflow to +-inf: the count of
    # missing ones must not depend on it
    settings = load_settings(environ={})
    features = settings.features
    decoder = RecordDecoder.from_settings(settings)
    rng = np.random.default_rng(20261202)
    expected: Counter[str] = Counter()
    for i in range(3_000):
        doc: dict[str, object] = {"agent_id": f"a{i % 7}", "timestamp": 1_779_350_400_000 + i}
        present = rng.random(len(features)) < 0.7
        if not present.any():
            present[rng.integers(len(features))] = True
        for name, here in zip(features, present, strict=True):
            if here:
                doc[name] = float(rng.choice([1.5, -3.0, 1.7e308, -1.7e308, 0.0]))
            else:
                expected[name] += 1
        out = decoder.decode(msgspec.json.encode(doc), offset=i)
        assert isinstance(out, list) and len(out) == 1
    skipped, missing = decoder.take_counts()
    assert skipped == Counter() and missing == expected


def test_the_processor_counts_skipped_and_missing_in_its_metrics() -> None:
    settings = _settings("otlp_json", window_size=50, reference_size=60, alpha=0.001)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    processor = BatchProcessor(
        RecordDecoder.from_settings(settings), DriftMonitor(settings, metrics=metrics), metrics, "t"
    )
    gen = GenAISpanGenerator(seed=8, tool_share=0.5)
    reqs = [gen.request(40) for _ in range(3)]
    msgs = [RawMessage(None, encode(r, "otlp_json"), 0, i) for i, r in enumerate(reqs)]
    msgs.append(RawMessage(None, b'{"resourceSpans": 7}', 0, 3))
    outcome = processor.handle(msgs)
    chat = sum(_chat_and_tools(r)[0] for r in reqs)
    tools = sum(_chat_and_tools(r)[1] for r in reqs)
    assert outcome.processed == chat and [d.reason for d in outcome.dead_letters] == [
        "invalid_otlp"
    ]
    get = registry.get_sample_value
    assert get("driftwatch_skipped_total", {"reason": "filtered"}) == tools
    assert get("driftwatch_observations_total", {"feature": TOKENS}) == chat
    assert get("driftwatch_observations_total", {"feature": FINISH}) == chat
    # chat spans without an error have no error.type: not monitored here, so not missing
    assert get("driftwatch_missing_features_total", {"feature": TOKENS}) is None


def test_settings_of_the_telemetry_format() -> None:
    assert load_settings(environ={}).span_filter_spec == ""
    assert load_settings(environ={}, telemetry_format="otlp_proto").span_filter_spec == (
        DEFAULT_SPAN_FILTER
    )
    env = {
        "DRIFTWATCH_TELEMETRY_FORMAT": "otlp_json",
        "DRIFTWATCH_CATEGORICAL_FEATURES": "gen_ai.response.finish_reasons, gen_ai.request.model",
        "DRIFTWATCH_SPAN_FILTER": "*",
        "DRIFTWATCH_MAX_OTLP_BYTES": "2000000",
    }
    s = load_settings(environ=env)
    assert s.categorical_features == ("gen_ai.response.finish_reasons", "gen_ai.request.model")
    assert s.span_filter_spec == "" and s.max_otlp_bytes == 2_000_000
    bad: list[dict[str, object]] = [
        {"telemetry_format": "avro"},
        {"max_otlp_bytes": 999_999},
        {"max_otlp_bytes": 65 * 2**20},
        {"span_filter": "no-equals-sign"},
        {"categorical_features": ("token_count",)},
        {"categorical_features": ("a", "a")},
        {"categorical_features": ("a|b",)},
        {"categorical_features": ("accuracy",)},
    ]
    for change in bad:
        with pytest.raises(ConfigError) as err:
            load_settings(environ={}, **change)
        assert err.value.setting == next(iter(change))


def test_the_fleet_budget_counts_categorical_streams() -> None:
    base = {"fleet_false_alarms_per_day": 1.0, "fleet_events_per_second": 10.0}
    numeric = load_settings(environ={}, features=("a", "b"), **base)
    both = load_settings(environ={}, features=("a", "b"), categorical_features=("c", "d"), **base)
    assert numeric.effective_ert == 10.0 * 2 * 86_400
    assert both.effective_ert == 10.0 * 4 * 86_400
