"""The values application settings take: their literal types, choices and defaults."""

from __future__ import annotations

from typing import Literal, get_args

from detectors.registry import DetectorName

__all__ = [
    "DEFAULT_ERT",
    "DEFAULT_FEATURES",
    "DEFAULT_SPAN_FILTER",
    "DETECTORS",
    "OTLP_BYTES_RANGE",
    "TELEMETRY_FORMATS",
    "TelemetryFormat",
]

DETECTORS: tuple[str, ...] = get_args(DetectorName)
#: How telemetry record values are encoded (see :mod:`stream.telemetry.decoding`).
TelemetryFormat = Literal["json", "otlp_json", "otlp_proto"]
TELEMETRY_FORMATS: tuple[str, ...] = get_args(TelemetryFormat)
#: The span filter of the OTLP formats when ``span_filter`` is not set (GenAI inference spans).
DEFAULT_SPAN_FILTER = "gen_ai.operation.name=chat,text_completion,generate_content"
#: Bounds of ``max_otlp_bytes`` (the Collector's Kafka producer sends up to 1,000,000 bytes).
OTLP_BYTES_RANGE = (1_000_000, 64 * 2**20)
DEFAULT_FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")
#: Observations between false alarms of a stream under the default worker budget until its
#: event rate is measured (see stream.monitoring.rates).
DEFAULT_ERT = 10_000.0
