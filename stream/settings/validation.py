"""Validation of the application settings (the Kafka and metrics sections validate themselves)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from detectors.registry import KINDS, validate_options
from stream.exceptions import ConfigError
from stream.settings.checks import check, check_file, read_secret_file
from stream.settings.values import DETECTORS, OTLP_BYTES_RANGE, TELEMETRY_FORMATS

if TYPE_CHECKING:
    from stream.settings.model import Settings

__all__ = ["validate"]


def _validate_signing(s: Settings) -> None:
    for name in ("checkpoint_signing_key_file", "control_signing_key_file"):
        check_file(name, getattr(s, name))
        path = getattr(s, name)
        if path is not None:
            check(
                len(read_secret_file(name, path).encode()) >= 16,
                name,
                path,
                "the key must be at least 16 bytes",
            )


def validate(s: Settings) -> None:
    """Check the application settings of ``s`` (its sections check themselves)."""
    for name in ("app_id", "telemetry_topic", "drift_topic", "dead_letter_topic", "control_topic"):
        value = getattr(s, name)
        check(bool(value) and value.strip() == value, name, value, "must be a non-empty name")
    check(len(s.key_fields) >= 1, "key_fields", s.key_fields, "name at least one field")
    check(s.control_max_streams >= 1, "control_max_streams", s.control_max_streams, "must be >= 1")
    check(len(s.features) >= 1, "features", s.features, "name at least one feature")
    check(len(set(s.features)) == len(s.features), "features", s.features, "duplicates")
    check(
        not any("|" in f for f in s.features),
        "features",
        s.features,
        "'|' separates key and feature in drift event keys",
    )
    clash = set(s.features) & (set(s.key_fields) | {s.timestamp_field})
    check(not clash, "features", s.features, f"also used as key or timestamp: {sorted(clash)}")
    check(s.detector in DETECTORS, "detector", s.detector, f"one of {', '.join(DETECTORS)}")
    for feature, det in s.feature_detectors.items():
        check(feature in s.features, "feature_detectors", feature, "is not a monitored feature")
        check(det in DETECTORS, "feature_detectors", det, f"one of {', '.join(DETECTORS)}")
    for name in (
        "topic_partitions",
        "window_size",
        "reference_size",
        "batch_size",
        "max_tracked_keys",
        "max_metric_keys",
        "max_message_bytes",
    ):
        value = getattr(s, name)
        check(isinstance(value, int) and value >= 1, name, value, "must be an integer >= 1")
    check(
        s.resolve_after is None or s.resolve_after >= 1,
        "resolve_after",
        s.resolve_after,
        "must be an integer >= 1",
    )
    check(s.alpha is None or 0.0 < s.alpha < 1.0, "alpha", s.alpha, "must be in (0, 1)")
    check(s.ert is None or s.ert > 1, "ert", s.ert, "must be > 1 observation")
    fleet = (s.fleet_false_alarms_per_day, s.fleet_events_per_second)
    check(
        (fleet[0] is None) == (fleet[1] is None),
        "fleet_false_alarms_per_day",
        fleet,
        "set it together with fleet_events_per_second",
    )
    check(
        fleet[0] is None or (fleet[0] > 0 and fleet[1] > 0),  # type: ignore[operator]
        "fleet_false_alarms_per_day",
        fleet,
        "both fleet settings must be > 0",
    )
    ert = s.effective_ert
    shortest = 5 * (s.window_size + (s.resolve_after or s.window_size))
    check(
        ert is None or ert >= shortest,
        "ert",
        ert,
        f"too short for window_size={s.window_size}: use ert >= {shortest} (or a fleet budget "
        "allowing fewer false alarms, or a smaller window)",
    )
    chosen = [name for name, v in (("alpha", s.alpha), ("ert", s.ert)) if v is not None]
    if fleet[0] is not None:
        chosen.append("fleet budget")
    check(len(chosen) <= 1, "alpha", chosen, "choose one of alpha, ert or the fleet budget")
    budget = s.false_alarms_per_day
    check(
        budget is None or (math.isfinite(budget) and budget > 0),
        "false_alarms_per_day",
        budget,
        "must be a number of false alarms a day > 0",
    )
    check(
        budget is None or not chosen,
        "false_alarms_per_day",
        budget,
        f"the worker budget derives each stream's ert: do not set it with {', '.join(chosen)}",
    )
    check(0.0 < s.resolve_ratio <= 1.0, "resolve_ratio", s.resolve_ratio, "must be in (0, 1]")
    check(
        s.guarantee is None or (math.isfinite(s.guarantee) and 0.0 < s.guarantee < 1.0),
        "guarantee",
        s.guarantee,
        "must be a probability in (0, 1), e.g. 0.9",
    )
    check(
        s.guarantee is None or s.alpha is None,
        "guarantee",
        s.guarantee,
        "the guarantee calibrates an ert: it does not apply to the alpha rule",
    )
    check(
        s.window_duration is None or (math.isfinite(s.window_duration) and s.window_duration > 0),
        "window_duration",
        s.window_duration,
        "must be a number of seconds > 0",
    )
    check(
        s.window_duration is None or s.alpha is not None,
        "window_duration",
        s.window_duration,
        "time-based windows use the alpha rule (ert calibration needs count windows): set alpha",
    )
    check(s.batch_timeout > 0, "batch_timeout", s.batch_timeout, "must be > 0 seconds")
    check(
        math.isfinite(s.checkpoint_interval) and s.checkpoint_interval > 0,
        "checkpoint_interval",
        s.checkpoint_interval,
        "must be a number of seconds > 0",
    )
    check(
        math.isfinite(s.session_timeout) and 6.0 <= s.session_timeout <= 300.0,
        "session_timeout",
        s.session_timeout,
        "must be 6..300 seconds (the broker's default group session bounds)",
    )
    check(
        s.topic_replication_factor >= 1,
        "topic_replication_factor",
        s.topic_replication_factor,
        "must be >= 1",
    )
    check(s.reference_mode in ("warmup", "file"), "reference_mode", s.reference_mode, "warmup|file")
    if s.reference_mode == "file":
        check(bool(s.reference_file), "reference_file", s.reference_file, "needed in file mode")
    check(
        s.log_level in ("debug", "info", "warning", "error"),
        "log_level",
        s.log_level,
        "one of debug, info, warning, error",
    )
    _validate_telemetry(s)
    _validate_detectors(s)
    _validate_signing(s)


def _validate_telemetry(s: Settings) -> None:
    """The telemetry format, categorical features, span filter and OTLP size limit."""
    check(
        s.telemetry_format in TELEMETRY_FORMATS,
        "telemetry_format",
        s.telemetry_format,
        f"one of {', '.join(TELEMETRY_FORMATS)}",
    )
    cats = s.categorical_features
    check(len(set(cats)) == len(cats), "categorical_features", cats, "duplicates")
    check(
        not any("|" in f for f in cats),
        "categorical_features",
        cats,
        "'|' separates key and feature in drift event keys",
    )
    clash = set(cats) & (set(s.features) | set(s.key_fields) | {s.timestamp_field, "accuracy"})
    check(
        not clash,
        "categorical_features",
        cats,
        f"also used as a numeric feature, key, timestamp or 'accuracy': {sorted(clash)}",
    )
    spec = s.span_filter
    if spec is not None and spec.strip() not in ("", "*"):
        name, sep, rest = spec.partition("=")
        check(
            bool(sep and name.strip() and any(v.strip() for v in rest.split(","))),
            "span_filter",
            spec,
            "FIELD=VALUE[,VALUE...] (or '*': every span counts)",
        )
    low, high = OTLP_BYTES_RANGE
    check(
        isinstance(s.max_otlp_bytes, int) and low <= s.max_otlp_bytes <= high,
        "max_otlp_bytes",
        s.max_otlp_bytes,
        f"must be an integer in [{low:,}, {high:,}]",
    )


def _validate_detectors(s: Settings) -> None:
    """Each feature's detector kind must accept the options (the registry's check, without a
    reference): the KS kinds' window and alarm rule, the ERTs river's calibration covers."""
    options = s.detector_options()
    for feature in s.features:
        name = s.detector_for(feature)
        try:
            validate_options(name, options)
        except ValueError as exc:
            river = not KINDS[name].needs_reference
            raise ConfigError(
                "ert" if options.ert is not None else "detector",
                options.ert if options.ert is not None else name,
                f"{name} on feature {feature!r}: {exc}"
                + (" (or set alpha for river's defaults)" if river else ""),
            ) from None
