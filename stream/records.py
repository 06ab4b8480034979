"""Event schemas: telemetry in, drift events out, and the reasons a message is rejected.

Telemetry messages are flat JSON objects, for example::

    {"ts": 1779350400123, "agent_id": "support-bot", "model": "m-2026-05", "tool": "search",
     "response_latency_ms": 812.4, "token_count": 512, "retry_count": 0, "error_rate": 0.02,
     "predicted_label": "refund", "true_label": "refund"}

``ts`` is epoch milliseconds or an ISO 8601 string; when absent, the Kafka record timestamp
is used. Parsing never raises: it returns a :class:`Telemetry` or an :class:`Invalid` with a
reason from :data:`INVALID_REASONS`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from stream.settings import Settings

__all__ = [
    "INVALID_REASONS",
    "SCHEMA_VERSION",
    "DriftEvent",
    "Invalid",
    "Telemetry",
    "TelemetryParser",
    "event_id",
]

SCHEMA_VERSION = 1

#: Why a message can be rejected (the ``reason`` label of ``driftwatch_invalid_events_total``).
INVALID_REASONS = (
    "oversized",
    "invalid_json",
    "not_an_object",
    "missing_key",
    "missing_feature",
    "non_numeric",
    "non_finite",
    "bad_timestamp",
)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One valid telemetry event."""

    key: str
    ts: float  # event time, seconds since the epoch
    values: tuple[float, ...]  # one per monitored feature, in settings order
    partition: int
    offset: int
    predicted_label: str | None = None
    true_label: str | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A rejected message: the reason, a human-readable detail, and where it came from."""

    reason: str
    detail: str
    partition: int
    offset: int


def _as_seconds(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw) / 1000.0
        return value if math.isfinite(value) and value >= 0 else None
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return None


class TelemetryParser:
    """Validates raw messages against the configured key fields and features."""

    def __init__(self, settings: Settings) -> None:
        self.key_fields = settings.key_fields
        self.features = settings.features
        self.timestamp_field = settings.timestamp_field
        self.max_bytes = settings.max_message_bytes

    def parse(
        self, raw: bytes | None, *, partition: int = 0, offset: int = 0, timestamp: float = 0.0
    ) -> Telemetry | Invalid:
        """Parse one message value; ``timestamp`` (seconds) is the Kafka record's."""
        if raw is None:
            return Invalid("invalid_json", "empty message (tombstone)", partition, offset)
        if len(raw) > self.max_bytes:
            return Invalid(
                "oversized", f"{len(raw)} bytes > limit {self.max_bytes}", partition, offset
            )
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Invalid("invalid_json", str(exc)[:200], partition, offset)
        if not isinstance(doc, dict):
            return Invalid("not_an_object", f"JSON {type(doc).__name__}", partition, offset)
        parts = []
        for name in self.key_fields:
            part = doc.get(name)
            if part is None or part == "" or isinstance(part, dict | list):
                return Invalid("missing_key", f"key field {name!r} missing", partition, offset)
            parts.append(str(part))
        values = []
        for name in self.features:
            v = doc.get(name)
            if v is None:
                return Invalid("missing_feature", f"feature {name!r} missing", partition, offset)
            if isinstance(v, bool) or not isinstance(v, int | float):
                return Invalid(
                    "non_numeric", f"feature {name!r} is {type(v).__name__}", partition, offset
                )
            f = float(v)
            if not math.isfinite(f):
                return Invalid("non_finite", f"feature {name!r} is {v!r}", partition, offset)
            values.append(f)
        raw_ts = doc.get(self.timestamp_field)
        if raw_ts is None:
            ts = timestamp
        else:
            parsed = _as_seconds(raw_ts)
            if parsed is None:
                return Invalid(
                    "bad_timestamp", f"{self.timestamp_field}={raw_ts!r}"[:200], partition, offset
                )
            ts = parsed
        pred, true = doc.get("predicted_label"), doc.get("true_label")
        return Telemetry(
            "/".join(parts),
            ts,
            tuple(values),
            partition,
            offset,
            None if pred is None else str(pred),
            None if true is None else str(true),
        )


def event_id(*parts: object) -> str:
    """A deterministic id: the same inputs always give the same id (for deduplication)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return digest[:32]


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A drift episode starting or ending for one (key, feature); see README "Drift events"."""

    type: str
    key: str
    feature: str
    detector: str
    event_time: float
    statistic: float
    p_value: float
    threshold: float
    reference_size: int
    window_size: int
    statistic_location: float
    statistic_sign: int
    topic: str
    partition: int
    window_first_offset: int
    window_last_offset: int
    observations: int

    @property
    def event_id(self) -> str:
        return event_id(
            self.type,
            self.key,
            self.feature,
            self.detector,
            self.topic,
            self.partition,
            self.window_last_offset,
        )

    @property
    def direction(self) -> str:
        if self.statistic_sign > 0:
            return "increase"
        if self.statistic_sign < 0:
            return "decrease"
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "type": self.type,
            "event_time": datetime.fromtimestamp(self.event_time, UTC).isoformat(
                timespec="milliseconds"
            ),
            "event_time_ms": round(self.event_time * 1000),
            "key": self.key,
            "feature": self.feature,
            "detector": self.detector,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "threshold": _num(self.threshold),
            "reference_size": self.reference_size,
            "window_size": self.window_size,
            "largest_gap": {
                "location": _num(self.statistic_location),
                "direction": self.direction,
            },
            "source": {
                "topic": self.topic,
                "partition": self.partition,
                "window_first_offset": self.window_first_offset,
                "window_last_offset": self.window_last_offset,
            },
            "observations": self.observations,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @property
    def kafka_key(self) -> bytes:
        return f"{self.key}|{self.feature}".encode()
