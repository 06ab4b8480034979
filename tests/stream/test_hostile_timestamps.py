"""Timestamps a drift event cannot carry are rejected at parse time (``bad_timestamp``).

A drift event states its time as an ISO 8601 string, so an accepted event time must be a
datetime (years 1-9999). Before this check, ``{"ts": 10**19}`` was accepted and the first drift
or refresh event of its key raised in ``DriftEvent.to_json``, inside the worker's agent.
"""

from __future__ import annotations

import msgspec
import pytest

from stream.settings import load_settings
from stream.telemetry.records import DriftEvent, Invalid, Telemetry, TelemetryParser

GOOD = {
    "agent_id": "support-bot",
    "response_latency_ms": 812.4,
    "token_count": 512,
    "retry_count": 0,
    "error_rate": 0.02,
}
LAST_SECOND_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


@pytest.fixture
def parser() -> TelemetryParser:
    return TelemetryParser(load_settings(environ={}))


def event_at(seconds: float) -> DriftEvent:
    return DriftEvent(
        type="drift_started",
        key="support-bot",
        feature="token_count",
        detector="incremental_ks",
        event_time=seconds,
        statistic=0.5,
        p_value=1e-9,
        threshold=0.3,
        reference_size=1000,
        window_size=200,
        statistic_location=512.0,
        statistic_sign=1,
        topic="agent-telemetry",
        partition=0,
        window_first_offset=0,
        window_last_offset=199,
        observations=1200,
    )


@pytest.mark.parametrize(
    "ts",
    [
        10**19,  # year ~316 million (an int64 that every JSON reader keeps exact)
        1e300,
        LAST_SECOND_MS + 1000,
        "9999-12-31T23:59:59-01:00",  # 10000-01-01 in UTC
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
    ],
)
def test_unrepresentable_event_times_are_bad_timestamps(
    parser: TelemetryParser, ts: object
) -> None:
    r = parser.parse(msgspec.json.encode({**GOOD, "ts": ts}))
    assert isinstance(r, Invalid) and r.reason == "bad_timestamp", r


@pytest.mark.parametrize(
    "ts",
    [0, 1_779_350_400_123, LAST_SECOND_MS, "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"],
)
def test_accepted_event_times_serialise_in_drift_events(
    parser: TelemetryParser, ts: object
) -> None:
    r = parser.parse(msgspec.json.encode({**GOOD, "ts": ts}))
    assert isinstance(r, Telemetry), r
    doc = msgspec.json.decode(event_at(r.ts).to_json())
    assert doc["event_time_ms"] == round(r.ts * 1000)


@pytest.mark.parametrize("seconds", [1e17, float("inf"), float("nan")])
def test_unrepresentable_kafka_timestamps_are_bad_timestamps(
    parser: TelemetryParser, seconds: float
) -> None:
    r = parser.parse(msgspec.json.encode(GOOD), partition=2, offset=9, timestamp=seconds)
    assert isinstance(r, Invalid) and r.reason == "bad_timestamp", r
    assert (r.partition, r.offset) == (2, 9)


def test_a_kafka_timestamp_is_used_when_the_message_has_none(parser: TelemetryParser) -> None:
    r = parser.parse(msgspec.json.encode(GOOD), timestamp=1_779_350_400.5)
    assert isinstance(r, Telemetry) and r.ts == 1_779_350_400.5
    # an unusable record timestamp does not matter when the message carries its own
    r = parser.parse(msgspec.json.encode({**GOOD, "ts": 1_779_350_400_123}), timestamp=1e17)
    assert isinstance(r, Telemetry) and r.ts == pytest.approx(1_779_350_400.123)
