from __future__ import annotations

import math

import msgspec

from stream.settings import load_settings
from stream.telemetry.records import Invalid, Skipped, Telemetry, TelemetryParser, lookup

FEATURES = ("usage.output_tokens", "latency_ms")


def parser(*, sparse: bool = True) -> TelemetryParser:
    settings = load_settings(environ={}, key_fields=("agent.id", "model"), features=FEATURES)
    return TelemetryParser(settings, sparse=sparse, categorical_features=("finish_reasons",))


def parse(doc: object, *, sparse: bool = True) -> Telemetry | Invalid:
    return parser(sparse=sparse).parse(
        msgspec.json.encode(doc), partition=2, offset=9, timestamp=5.0
    )


def test_dotted_paths_reach_into_nested_objects() -> None:
    got = parse(
        {
            "agent": {"id": "bot-1"},
            "model": "m",
            "usage": {"output_tokens": 7},
            "latency_ms": 3.5,
            "finish_reasons": ["stop"],
            "ts": 1000,
        }
    )
    assert isinstance(got, Telemetry)
    assert (got.key, got.values, got.categories, got.ts) == (
        "bot-1/m",
        (7.0, 3.5),
        (["stop"],),
        1.0,
    )


def test_a_flat_dotted_key_wins_over_the_nested_path() -> None:
    doc = {"agent.id": "flat", "agent": {"id": "nested"}, "model": "m", "latency_ms": 1}
    got = parse(doc)
    assert isinstance(got, Telemetry) and got.key == "flat/m"
    assert lookup({"a": {"b": 1}}, "a.b.c") is None and lookup({"a": 3}, "a.b") is None


def test_sparse_events_feed_the_features_they_have() -> None:
    got = parse({"agent": {"id": "a"}, "model": "m", "latency_ms": 2.0})
    assert isinstance(got, Telemetry)
    assert math.isnan(got.values[0]) and got.values[1] == 2.0
    assert got.categories == (None,)
    only_category = parse({"agent": {"id": "a"}, "model": "m", "finish_reasons": "stop"})
    assert isinstance(only_category, Telemetry) and only_category.categories == ("stop",)


def test_sparse_skips_keyless_and_featureless_events() -> None:
    keyless = parse({"model": "m", "latency_ms": 2.0})
    assert isinstance(keyless, Skipped) and keyless.reason == "missing_key"
    bare = parse({"agent": {"id": "a"}, "model": "m"})
    assert isinstance(bare, Skipped) and bare.reason == "no_features"
    assert (bare.partition, bare.offset) == (2, 9)


def test_wrong_types_stay_invalid_when_sparse() -> None:
    got = parse({"agent": {"id": "a"}, "model": "m", "latency_ms": "slow"})
    assert type(got) is Invalid and got.reason == "non_numeric"


def test_not_sparse_keeps_the_strict_rules() -> None:
    got = parse({"agent": {"id": "a"}, "model": "m", "latency_ms": 2.0}, sparse=False)
    assert type(got) is Invalid and got.reason == "missing_feature"
    keyless = parse({"model": "m", "latency_ms": 2.0}, sparse=False)
    assert type(keyless) is Invalid and keyless.reason == "missing_key"
