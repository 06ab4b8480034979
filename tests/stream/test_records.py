from __future__ import annotations

import math

import msgspec
import pytest

from stream.exceptions import ConfigError
from stream.settings import load_settings
from stream.telemetry.records import (
    INVALID_REASONS,
    DriftEvent,
    Invalid,
    Telemetry,
    TelemetryParser,
)

GOOD = {
    "ts": 1779350400123,
    "agent_id": "support-bot",
    "model": "m-2026-05",
    "response_latency_ms": 812.4,
    "token_count": 512,
    "retry_count": 0,
    "error_rate": 0.02,
    "predicted_label": "refund",
    "true_label": "refund",
}


@pytest.fixture
def parser() -> TelemetryParser:
    return TelemetryParser(load_settings(environ={}, max_message_bytes=1024))


def test_valid_event(parser: TelemetryParser) -> None:
    r = parser.parse(msgspec.json.encode(GOOD), partition=3, offset=42)
    assert isinstance(r, Telemetry)
    assert r.key == "support-bot"
    assert r.ts == pytest.approx(1779350400.123)
    assert r.values == (812.4, 512.0, 0.0, 0.02)
    assert (r.partition, r.offset) == (3, 42)
    assert r.predicted_label == r.true_label == "refund"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-05-21T08:00:00Z", 1779350400.0),
        ("2026-05-21T10:00:00+02:00", 1779350400.0),
        ("2026-05-21T08:00:00", 1779350400.0),
        (None, 99.5),  # absent: the Kafka record timestamp
    ],
)
def test_timestamps(parser: TelemetryParser, ts: object, expected: float) -> None:
    doc = {**GOOD, "ts": ts} if ts is not None else {k: v for k, v in GOOD.items() if k != "ts"}
    r = parser.parse(msgspec.json.encode(doc), timestamp=99.5)
    assert isinstance(r, Telemetry) and r.ts == pytest.approx(expected)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (
            msgspec.json.encode(GOOD)[:-1] + b', "note": "caf\xe9"}',
            "invalid_json",
        ),  # unread, not UTF-8
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": 1e400}', "missing_key"),  # valid syntax; 1e400 is only read if a field needs it
        (
            msgspec.json.encode(GOOD).replace(b'"token_count":512', b'"token_count":1e400'),
            "invalid_json",
        ),
        (None, "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"text"', "not_an_object"),
        (msgspec.json.encode({k: v for k, v in GOOD.items() if k != "agent_id"}), "missing_key"),
        (msgspec.json.encode({**GOOD, "agent_id": ""}), "missing_key"),
        (msgspec.json.encode({**GOOD, "agent_id": {"x": 1}}), "missing_key"),
        (
            msgspec.json.encode({k: v for k, v in GOOD.items() if k != "token_count"}),
            "missing_feature",
        ),
        (msgspec.json.encode({**GOOD, "token_count": "512"}), "non_numeric"),
        (msgspec.json.encode({**GOOD, "retry_count": True}), "non_numeric"),
        (msgspec.json.encode({**GOOD, "error_rate": [0.1]}), "non_numeric"),
        (msgspec.json.encode({**GOOD, "ts": "yesterday"}), "bad_timestamp"),
        (msgspec.json.encode({**GOOD, "ts": -5}), "bad_timestamp"),
        (msgspec.json.encode({**GOOD, "pad": "x" * 2000}), "oversized"),
    ],
)
def test_invalid_messages_get_a_reason(parser: TelemetryParser, raw: bytes, reason: str) -> None:
    r = parser.parse(raw, partition=1, offset=7)
    assert isinstance(r, Invalid), r
    assert r.reason == reason and r.reason in INVALID_REASONS
    assert (r.partition, r.offset) == (1, 7)


def test_an_unread_field_is_checked_for_syntax_only() -> None:
    parser = TelemetryParser(load_settings(environ={}))
    r = parser.parse(msgspec.json.encode(GOOD)[:-1] + b', "extra": {"big": 1e400, "n": [1, 2]}}')
    assert isinstance(r, Telemetry) and r.values == parser.parse(msgspec.json.encode(GOOD)).values  # type: ignore[union-attr]
    bad = parser.parse(msgspec.json.encode(GOOD)[:-1] + b', "extra": {"big": 1e4x}}')
    assert isinstance(bad, Invalid) and bad.reason == "invalid_json"


def test_huge_integers_are_parsed_as_floats() -> None:
    parser = TelemetryParser(load_settings(environ={}))
    raw = msgspec.json.encode(GOOD).replace(
        b'"token_count":512', b'"token_count":' + b"1" + b"0" * 30
    )
    r = parser.parse(raw)
    assert isinstance(r, Telemetry)  # 1e30 is a finite float; the detector copes
    assert r.values[1] == 1e30


def test_composite_keys() -> None:
    parser = TelemetryParser(load_settings(environ={}, key_fields=("agent_id", "model")))
    r = parser.parse(msgspec.json.encode(GOOD))
    assert isinstance(r, Telemetry) and r.key == "support-bot/m-2026-05"


def _event(**changes: object) -> DriftEvent:
    base = {
        "type": "drift_started",
        "key": "support-bot",
        "feature": "response_latency_ms",
        "detector": "incremental_ks",
        "event_time": 1779350400.123,
        "statistic": 0.31,
        "p_value": 1e-7,
        "threshold": 0.2,
        "reference_size": 1000,
        "window_size": 500,
        "statistic_location": 900.5,
        "statistic_sign": 1,
        "topic": "agent-telemetry",
        "partition": 2,
        "window_first_offset": 10,
        "window_last_offset": 990,
        "observations": 1500,
    }
    base.update(changes)
    return DriftEvent(**base)  # type: ignore[arg-type]


def test_drift_event_schema_and_deterministic_id() -> None:
    a, b = _event(), _event()
    assert a.event_id == b.event_id
    assert _event(window_last_offset=991).event_id != a.event_id
    assert _event(app_id="other").event_id != a.event_id  # another deployment
    assert _event(input_id="sha256:00").event_id != a.event_id  # another input
    assert _event(topic="recreated").event_id != a.event_id
    assert doc_app(a) == "driftwatch"
    doc = msgspec.json.decode(a.to_json())
    assert doc["schema_version"] == 1
    assert doc["type"] == "drift_started"
    assert doc["event_time"] == "2026-05-21T08:00:00.123+00:00"
    assert doc["largest_gap"] == {"location": 900.5, "direction": "increase"}
    assert doc["source"] == {
        "input": "agent-telemetry",
        "topic": "agent-telemetry",
        "partition": 2,
        "window_first_offset": 10,
        "window_last_offset": 990,
    }
    assert a.kafka_key == b"support-bot|response_latency_ms"
    assert msgspec.json.decode(_event(p_value=math.nan).to_json())["p_value"] is None


def doc_app(e: DriftEvent) -> object:
    return msgspec.json.decode(e.to_json())["app_id"]


def test_keys_are_unambiguous() -> None:
    settings = load_settings(environ={}, key_fields=("tenant", "agent_id"))
    parser = TelemetryParser(settings)
    base = {"response_latency_ms": 1.0, "token_count": 1, "retry_count": 0, "error_rate": 0.0}

    def key(tenant: object, agent: object) -> str:
        got = parser.parse(msgspec.json.encode({**base, "tenant": tenant, "agent_id": agent}))
        assert isinstance(got, Telemetry), got
        return got.key

    assert key("a/b", "c") != key("a", "b/c")
    assert key("a\\", "b") != key("a", "\\b")
    assert len({key("a/b", "c"), key("a", "b/c"), key("a\\", "b"), key("a", "\\b")}) == 4
    single = TelemetryParser(load_settings(environ={}))
    for big in (b"100000000000000000000000", b"100000000000000000000001", b"1.5"):
        doc = b'{"agent_id": ' + big + b', "response_latency_ms": 1, "token_count": 1, '
        doc += b'"retry_count": 0, "error_rate": 0}'
        got = single.parse(doc)
        assert isinstance(got, Invalid) and got.reason == "bad_key"
    ok = single.parse(msgspec.json.encode({**base, "agent_id": 2**63 - 1}))
    assert isinstance(ok, Telemetry) and ok.key == str(2**63 - 1)
    with pytest.raises(ConfigError, match="separates key and feature"):
        load_settings(environ={}, features=("a|b",))
