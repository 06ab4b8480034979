"""One frozen, typed settings object, read from environment variables and/or a TOML file.

Precedence: explicit keyword overrides > environment variables (``DRIFTWATCH_*``) > the file
named by ``DRIFTWATCH_CONFIG`` (or passed as ``path``) > defaults. Every value is validated at
start; a bad one raises :class:`~stream.exceptions.ConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from stream.exceptions import ConfigError

__all__ = [
    "DEFAULT_ERT",
    "DEFAULT_FEATURES",
    "DETECTORS",
    "DetectorName",
    "Settings",
    "load_settings",
]

DetectorName = Literal["incremental_ks", "windowed_ks", "adwin", "kswin", "page_hinkley"]
DETECTORS: tuple[str, ...] = get_args(DetectorName)
DEFAULT_FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")
#: Observations between false alarms per stream when neither ert, a fleet budget nor alpha is set.
DEFAULT_ERT = 10_000.0
ENV_PREFIX = "DRIFTWATCH_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the worker, the simulator and the CLI can be configured with.

    Each field is read from the environment variable ``DRIFTWATCH_<FIELD NAME IN CAPITALS>``
    or from the same key (lower case) in the TOML file. Tuples are comma-separated in the
    environment; ``feature_detectors`` is ``feature=detector,...``.
    """

    # Kafka
    bootstrap_servers: str = "localhost:9092"
    app_id: str = "driftwatch"
    telemetry_topic: str = "agent-telemetry"
    drift_topic: str = "driftwatch.drift-events"
    dead_letter_topic: str = "driftwatch.dead-letter"
    control_topic: str = "driftwatch.control"
    topic_partitions: int = 6
    # Telemetry
    key_fields: tuple[str, ...] = ("agent_id",)
    features: tuple[str, ...] = DEFAULT_FEATURES
    timestamp_field: str = "ts"
    max_message_bytes: int = 65_536
    # Detection
    detector: DetectorName = "incremental_ks"
    feature_detectors: Mapping[str, DetectorName] = field(default_factory=dict)
    window_size: int = 200
    window_duration: float | None = None
    ert: float | None = None
    fleet_false_alarms_per_day: float | None = None
    fleet_events_per_second: float | None = None
    alpha: float | None = None
    resolve_ratio: float = 0.6
    resolve_after: int | None = None
    reference_mode: Literal["warmup", "file"] = "warmup"
    reference_size: int = 1000
    reference_file: str | None = None
    # Processing
    batch_size: int = 1000
    batch_timeout: float = 0.5
    max_tracked_keys: int = 10_000
    max_metric_keys: int = 500
    # Metrics
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9464
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str = "var/driftwatch"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def effective_ert(self) -> float | None:
        """Per-stream expected run time (observations between false alarms), or None for alpha.

        From the fleet budget when both fleet settings are given: every telemetry event feeds
        ``len(features)`` streams, so the fleet sees ``fleet_events_per_second * len(features)``
        observations a second, and ``ert = that * 86,400 / fleet_false_alarms_per_day``.
        """
        if self.fleet_false_alarms_per_day is not None and self.fleet_events_per_second:
            per_day = self.fleet_events_per_second * len(self.features) * 86_400.0
            return per_day / self.fleet_false_alarms_per_day
        if self.ert is not None:
            return self.ert
        return None if self.alpha is not None else DEFAULT_ERT

    def detector_for(self, feature: str) -> DetectorName:
        """The detector configured for ``feature``."""
        return self.feature_detectors.get(feature, self.detector)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def kafka_url(self) -> str:
        """The broker list as Faust wants it."""
        return ";".join(f"kafka://{b.strip()}" for b in self.bootstrap_servers.split(","))


def _check(ok: bool, name: str, value: object, reason: str) -> None:
    if not ok:
        raise ConfigError(name, value, reason)


def _validate(s: Settings) -> None:
    for name in ("app_id", "telemetry_topic", "drift_topic", "dead_letter_topic", "control_topic"):
        value = getattr(s, name)
        _check(bool(value) and value.strip() == value, name, value, "must be a non-empty name")
    _check(bool(s.bootstrap_servers.strip()), "bootstrap_servers", s.bootstrap_servers, "empty")
    _check(len(s.key_fields) >= 1, "key_fields", s.key_fields, "name at least one field")
    _check(len(s.features) >= 1, "features", s.features, "name at least one feature")
    _check(len(set(s.features)) == len(s.features), "features", s.features, "duplicates")
    clash = set(s.features) & (set(s.key_fields) | {s.timestamp_field})
    _check(not clash, "features", s.features, f"also used as key or timestamp: {sorted(clash)}")
    _check(s.detector in DETECTORS, "detector", s.detector, f"one of {', '.join(DETECTORS)}")
    for feature, det in s.feature_detectors.items():
        _check(feature in s.features, "feature_detectors", feature, "is not a monitored feature")
        _check(det in DETECTORS, "feature_detectors", det, f"one of {', '.join(DETECTORS)}")
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
        _check(isinstance(value, int) and value >= 1, name, value, "must be an integer >= 1")
    _check(
        s.resolve_after is None or s.resolve_after >= 1,
        "resolve_after",
        s.resolve_after,
        "must be an integer >= 1",
    )
    _check(s.alpha is None or 0.0 < s.alpha < 1.0, "alpha", s.alpha, "must be in (0, 1)")
    _check(s.ert is None or s.ert > 1, "ert", s.ert, "must be > 1 observation")
    fleet = (s.fleet_false_alarms_per_day, s.fleet_events_per_second)
    _check(
        (fleet[0] is None) == (fleet[1] is None),
        "fleet_false_alarms_per_day",
        fleet,
        "set it together with fleet_events_per_second",
    )
    _check(
        fleet[0] is None or (fleet[0] > 0 and fleet[1] > 0),  # type: ignore[operator]
        "fleet_false_alarms_per_day",
        fleet,
        "both fleet settings must be > 0",
    )
    chosen = [name for name, v in (("alpha", s.alpha), ("ert", s.ert)) if v is not None]
    if fleet[0] is not None:
        chosen.append("fleet budget")
    _check(len(chosen) <= 1, "alpha", chosen, "choose one of alpha, ert or the fleet budget")
    _check(0.0 < s.resolve_ratio <= 1.0, "resolve_ratio", s.resolve_ratio, "must be in (0, 1]")
    _check(
        s.window_duration is None or (math.isfinite(s.window_duration) and s.window_duration > 0),
        "window_duration",
        s.window_duration,
        "must be a number of seconds > 0",
    )
    _check(
        s.window_duration is None or s.alpha is not None,
        "window_duration",
        s.window_duration,
        "time-based windows use the alpha rule (ert calibration needs count windows): set alpha",
    )
    _check(s.batch_timeout > 0, "batch_timeout", s.batch_timeout, "must be > 0 seconds")
    _check(0 <= s.metrics_port <= 65535, "metrics_port", s.metrics_port, "must be a TCP port")
    _check(
        s.reference_mode in ("warmup", "file"), "reference_mode", s.reference_mode, "warmup|file"
    )
    if s.reference_mode == "file":
        _check(bool(s.reference_file), "reference_file", s.reference_file, "needed in file mode")
    _check(
        s.log_level in ("debug", "info", "warning", "error"),
        "log_level",
        s.log_level,
        "one of debug, info, warning, error",
    )


def _convert(name: str, raw: Any, annotation: str) -> Any:
    """Turn an environment string or a TOML value into the field's type."""
    try:
        if annotation.startswith("tuple"):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(i.strip() for i in items if str(i).strip())
        if annotation.startswith("Mapping"):
            if isinstance(raw, Mapping):
                return dict(raw)
            pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
            return {k.strip(): v.strip() for k, v in pairs}
        if annotation in ("int", "int | None"):
            if raw in ("", None) and "None" in annotation:
                return None
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if annotation in ("float", "float | None"):
            if raw in ("", None) and "None" in annotation:
                return None
            return float(raw)
        if annotation == "str | None":
            return raw or None
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, raw, f"cannot be read as {annotation}") from None


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and keyword overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = path or env.get(f"{ENV_PREFIX}CONFIG") or None
    known = {f.name: str(f.type) for f in fields(Settings)}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config", str(p), "file not found") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("config", str(p), f"not readable as TOML: {exc}") from None
        section = data.get("driftwatch", data)
        for key, raw in section.items():
            if key not in known:
                raise ConfigError(key, raw, f"unknown setting in {p}")
            values[key] = _convert(key, raw, known[key])
    for name, annotation in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _convert(ENV_PREFIX + name.upper(), raw, annotation)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError("settings", values, str(exc)) from None
