"""One frozen, typed settings object, read from environment variables and/or a TOML file.

Precedence: explicit keyword overrides > environment variables (``DRIFTWATCH_*``) > the file
named by ``DRIFTWATCH_CONFIG`` (or passed as ``path``) > defaults. Every value is validated at
start; a bad one raises :class:`~stream.exceptions.ConfigError` naming the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from detectors.budget import DEFAULT_FALSE_ALARMS_PER_DAY
from detectors.registry import DetectorName
from detectors.river_calibration import check_river_ert
from stream.exceptions import ConfigError

__all__ = [
    "DEFAULT_ERT",
    "DEFAULT_FEATURES",
    "DETECTORS",
    "OTHER_VARIABLES",
    "REDACTED",
    "SASL_MECHANISMS",
    "SECRET_SETTINGS",
    "SECURITY_PROTOCOLS",
    "TELEMETRY_FORMATS",
    "DetectorName",
    "SaslMechanism",
    "SecurityProtocol",
    "Settings",
    "TelemetryFormat",
    "load_settings",
]

DETECTORS: tuple[str, ...] = get_args(DetectorName)
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
#: How telemetry record values are encoded (see :mod:`stream.telemetry.decoding`).
TelemetryFormat = Literal["json", "otlp_json", "otlp_proto"]
TELEMETRY_FORMATS: tuple[str, ...] = get_args(TelemetryFormat)
#: The span filter of the OTLP formats when ``span_filter`` is not set (GenAI inference spans).
DEFAULT_SPAN_FILTER = "gen_ai.operation.name=chat,text_completion,generate_content"
#: Bounds of ``max_otlp_bytes`` (the Collector's Kafka producer sends up to 1,000,000 bytes).
OTLP_BYTES_RANGE = (1_000_000, 64 * 2**20)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)
#: Settings whose values are secrets: never shown in reprs or error messages.
SECRET_SETTINGS = frozenset({"sasl_password", "metrics_basic_auth_password"})
#: What an error message shows instead of a secret.
REDACTED = "<redacted>"
DEFAULT_FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")
#: Observations between false alarms of a stream under the default worker budget until its
#: event rate is measured (see stream.monitoring.rates).
DEFAULT_ERT = 10_000.0
ENV_PREFIX = "DRIFTWATCH_"
#: ``DRIFTWATCH_*`` variables that are not settings but are read elsewhere: the settings file,
#: and the local broker of ``scripts/kafka_local.py`` and the integration tests.
OTHER_VARIABLES = frozenset(
    {
        "DRIFTWATCH_CONFIG",
        "DRIFTWATCH_KAFKA_CACHE",
        "DRIFTWATCH_KAFKA_DIR",
        "DRIFTWATCH_KAFKA_BOOTSTRAP",
    }
)


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
    # Kafka security
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    # Telemetry
    key_fields: tuple[str, ...] = ("agent_id",)
    features: tuple[str, ...] = DEFAULT_FEATURES
    timestamp_field: str = "ts"
    max_message_bytes: int = 65_536
    telemetry_format: TelemetryFormat = "json"
    categorical_features: tuple[str, ...] = ()
    span_filter: str | None = None
    max_otlp_bytes: int = 4_194_304
    # Detection
    detector: DetectorName = "incremental_ks"
    feature_detectors: Mapping[str, DetectorName] = field(default_factory=dict)
    window_size: int = 200
    window_duration: float | None = None
    ert: float | None = None
    fleet_false_alarms_per_day: float | None = None
    fleet_events_per_second: float | None = None
    false_alarms_per_day: float | None = None
    alpha: float | None = None
    resolve_ratio: float = 0.6
    resolve_after: int | None = None
    reference_mode: Literal["warmup", "file"] = "warmup"
    reference_size: int = 1000
    reference_file: str | None = None
    # Processing
    batch_size: int = 5000
    batch_timeout: float = 0.5
    checkpoints: bool = True
    checkpoint_topic: str | None = None
    checkpoint_interval: float = 10.0
    checkpoint_signing_key_file: str | None = None
    control_signing_key_file: str | None = None
    control_max_streams: int = 1000
    wait_for_calibration: bool = False
    topic_replication_factor: int = 1
    session_timeout: float = 10.0
    max_tracked_keys: int = 10_000
    max_metric_keys: int = 500
    # Metrics
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9464
    metrics_tls_certfile: str | None = None
    metrics_tls_keyfile: str | None = None
    metrics_basic_auth_username: str | None = None
    metrics_basic_auth_password: str | None = field(default=None, repr=False)
    metrics_basic_auth_password_file: str | None = None
    metrics_cache_seconds: float = 5.0
    metrics_max_connections: int = 256
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str = "var/driftwatch"

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def effective_ert(self) -> float | None:
        """Per-stream expected run time (observations between false alarms), or None.

        None with ``alpha``, and with the default whole-worker budget (:attr:`worker_budget`),
        where each stream's ERT is derived from its measured event rate.

        From the fleet budget when both fleet settings are given: every telemetry event feeds
        ``len(features) + len(categorical_features)`` streams (every stream that can alarm), so
        the fleet sees ``fleet_events_per_second`` times that many observations a second, and
        ``ert = that * 86,400 / fleet_false_alarms_per_day``.
        """
        if self.fleet_false_alarms_per_day is not None and self.fleet_events_per_second:
            streams = len(self.features) + len(self.categorical_features)
            per_day = self.fleet_events_per_second * streams * 86_400.0
            return per_day / self.fleet_false_alarms_per_day
        return self.ert

    @property
    def worker_budget(self) -> float | None:
        """False alarms a day for the whole worker, when each stream's ERT is derived from it.

        The default: used when none of ``alpha``, ``ert`` or the fleet budget is set. Each
        stream's ERT then comes from its measured event rate (see
        :mod:`stream.monitoring.rates`) and :attr:`effective_ert` is None.
        """
        if self.alpha is not None or self.ert is not None:
            return None
        if self.fleet_false_alarms_per_day is not None:
            return None
        if self.false_alarms_per_day is not None:
            return self.false_alarms_per_day
        return DEFAULT_FALSE_ALARMS_PER_DAY

    @property
    def span_filter_spec(self) -> str:
        """The span filter in force (``""``: every event counts): ``span_filter`` (``*`` for
        every event), else :data:`DEFAULT_SPAN_FILTER` for the OTLP formats and none for
        ``json``."""
        if self.span_filter is not None:
            return "" if self.span_filter.strip() in ("", "*") else self.span_filter
        return "" if self.telemetry_format == "json" else DEFAULT_SPAN_FILTER

    def detector_for(self, feature: str) -> DetectorName:
        """The detector configured for ``feature``."""
        return self.feature_detectors.get(feature, self.detector)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def checkpoint_topic_name(self) -> str:
        """The compacted topic holding the worker's state: ``checkpoint_topic`` or
        ``<app_id>.checkpoints``."""
        return self.checkpoint_topic or f"{self.app_id}.checkpoints"

    @property
    def telemetry_group(self) -> str:
        """The consumer group that reads telemetry (the Faust app's own group is ``app_id``)."""
        return f"{self.app_id}.telemetry"

    @property
    def kafka_url(self) -> str:
        """The broker list as Faust wants it."""
        return ";".join(f"kafka://{b.strip()}" for b in self.bootstrap_servers.split(","))

    @property
    def uses_sasl(self) -> bool:
        """Whether Kafka connections authenticate with SASL."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_ssl(self) -> bool:
        """Whether Kafka connections are encrypted with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def sasl_secret(self) -> str | None:
        """The SASL password: ``sasl_password``, or read from ``sasl_password_file``."""
        return _secret(self, "sasl_password", "sasl_password_file")

    def checkpoint_signing_key(self) -> bytes | None:
        """The HMAC key of checkpoint records, read from ``checkpoint_signing_key_file``."""
        path = self.checkpoint_signing_key_file
        return (
            None
            if path is None
            else _read_secret_file("checkpoint_signing_key_file", path).encode()
        )

    def control_signing_key(self) -> bytes | None:
        """The HMAC key of control commands, read from ``control_signing_key_file``."""
        path = self.control_signing_key_file
        return (
            None if path is None else _read_secret_file("control_signing_key_file", path).encode()
        )

    def metrics_basic_auth_secret(self) -> str | None:
        """The metrics password: ``metrics_basic_auth_password`` or read from its file."""
        return _secret(self, "metrics_basic_auth_password", "metrics_basic_auth_password_file")


def _check(ok: bool, name: str, value: object, reason: str) -> None:
    if not ok:
        raise ConfigError(name, value, reason)


def _shown(name: str, value: object) -> object:
    """``value`` as an error message may show it: secrets (by setting name) are redacted."""
    key = name.lower().removeprefix(ENV_PREFIX.lower())
    if value is None or not (key in SECRET_SETTINGS or "password" in key or "secret" in key):
        return value
    if key.endswith("_file"):
        return value  # a path, not the secret
    return REDACTED


def _read_secret_file(name: str, path: str) -> str:
    """The secret in ``path`` without its trailing line break (errors name the path only)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(name, path, f"cannot be read: {reason}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ConfigError(name, path, "the file is empty")
    return secret


def _secret(s: Settings, value_name: str, file_name: str) -> str | None:
    value: str | None = getattr(s, value_name)
    path: str | None = getattr(s, file_name)
    if path:
        return _read_secret_file(file_name, path)
    return value


def _check_file(s: Settings, name: str) -> None:
    path = getattr(s, name)
    if path is not None:
        _check(bool(path.strip()), name, path, "must be a file path")
        _check(Path(path).is_file(), name, path, "file not found")


def _validate_security(s: Settings) -> None:
    _check(
        s.security_protocol in SECURITY_PROTOCOLS,
        "security_protocol",
        s.security_protocol,
        f"one of {', '.join(SECURITY_PROTOCOLS)}",
    )
    _check(
        s.sasl_mechanism in SASL_MECHANISMS,
        "sasl_mechanism",
        s.sasl_mechanism,
        f"one of {', '.join(SASL_MECHANISMS)}",
    )
    _check(
        s.sasl_password is None or s.sasl_password_file is None,
        "sasl_password",
        REDACTED,
        "set sasl_password or sasl_password_file, not both",
    )
    has_password = s.sasl_password is not None or s.sasl_password_file is not None
    if s.uses_sasl:
        _check(
            bool(s.sasl_username and s.sasl_username.strip()),
            "sasl_username",
            s.sasl_username,
            f"needed with security_protocol={s.security_protocol}",
        )
        protocol = s.security_protocol
        _check(
            has_password,
            "sasl_password",
            None,
            f"set sasl_password or sasl_password_file with security_protocol={protocol}",
        )
        _check(s.sasl_password != "", "sasl_password", REDACTED, "must not be empty")
    else:
        for name in ("sasl_username", "sasl_password", "sasl_password_file"):
            _check(
                getattr(s, name) is None,
                name,
                _shown(name, getattr(s, name)),
                "only used with security_protocol SASL_PLAINTEXT or SASL_SSL",
            )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if not s.uses_ssl:
            _check(
                getattr(s, name) is None,
                name,
                getattr(s, name),
                "only used with security_protocol SSL or SASL_SSL",
            )
        _check_file(s, name)
    _check(
        s.ssl_keyfile is None or s.ssl_certfile is not None,
        "ssl_keyfile",
        s.ssl_keyfile,
        "set ssl_certfile too (the client certificate for this key)",
    )
    _check(
        isinstance(s.ssl_check_hostname, bool),
        "ssl_check_hostname",
        s.ssl_check_hostname,
        "must be true or false",
    )
    _check_file(s, "sasl_password_file")
    if s.sasl_password_file is not None:
        s.sasl_secret()  # readable and not empty


def _validate_signing(s: Settings) -> None:
    for name in ("checkpoint_signing_key_file", "control_signing_key_file"):
        _check_file(s, name)
        path = getattr(s, name)
        if path is not None:
            _check(
                len(_read_secret_file(name, path).encode()) >= 16,
                name,
                path,
                "the key must be at least 16 bytes",
            )


def _validate_metrics_security(s: Settings) -> None:
    for name in ("metrics_tls_certfile", "metrics_tls_keyfile"):
        _check_file(s, name)
    _check(
        s.metrics_tls_keyfile is None or s.metrics_tls_certfile is not None,
        "metrics_tls_keyfile",
        s.metrics_tls_keyfile,
        "set metrics_tls_certfile too",
    )
    user = s.metrics_basic_auth_username
    _check(
        s.metrics_basic_auth_password is None or s.metrics_basic_auth_password_file is None,
        "metrics_basic_auth_password",
        REDACTED,
        "set metrics_basic_auth_password or metrics_basic_auth_password_file, not both",
    )
    has_password = (
        s.metrics_basic_auth_password is not None or s.metrics_basic_auth_password_file is not None
    )
    _check(
        user is None or (bool(user) and ":" not in user and user.strip() == user),
        "metrics_basic_auth_username",
        user,
        "must be non-empty, without ':' or surrounding spaces",
    )
    _check(
        (user is None) == (not has_password),
        "metrics_basic_auth_username",
        user,
        "set it together with metrics_basic_auth_password or metrics_basic_auth_password_file",
    )
    _check(
        s.metrics_basic_auth_password != "",
        "metrics_basic_auth_password",
        REDACTED,
        "must not be empty",
    )
    _check_file(s, "metrics_basic_auth_password_file")
    if s.metrics_basic_auth_password_file is not None:
        s.metrics_basic_auth_secret()  # readable and not empty


def _validate(s: Settings) -> None:
    for name in ("app_id", "telemetry_topic", "drift_topic", "dead_letter_topic", "control_topic"):
        value = getattr(s, name)
        _check(bool(value) and value.strip() == value, name, value, "must be a non-empty name")
    _check(bool(s.bootstrap_servers.strip()), "bootstrap_servers", s.bootstrap_servers, "empty")
    _check(len(s.key_fields) >= 1, "key_fields", s.key_fields, "name at least one field")
    _check(s.control_max_streams >= 1, "control_max_streams", s.control_max_streams, "must be >= 1")
    _check(len(s.features) >= 1, "features", s.features, "name at least one feature")
    _check(len(set(s.features)) == len(s.features), "features", s.features, "duplicates")
    _check(
        not any("|" in f for f in s.features),
        "features",
        s.features,
        "'|' separates key and feature in drift event keys",
    )
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
    ert = s.effective_ert
    shortest = 5 * (s.window_size + (s.resolve_after or s.window_size))
    _check(
        ert is None or ert >= shortest,
        "ert",
        ert,
        f"too short for window_size={s.window_size}: use ert >= {shortest} (or a fleet budget "
        "allowing fewer false alarms, or a smaller window)",
    )
    chosen = [name for name, v in (("alpha", s.alpha), ("ert", s.ert)) if v is not None]
    if fleet[0] is not None:
        chosen.append("fleet budget")
    _check(len(chosen) <= 1, "alpha", chosen, "choose one of alpha, ert or the fleet budget")
    budget = s.false_alarms_per_day
    _check(
        budget is None or (math.isfinite(budget) and budget > 0),
        "false_alarms_per_day",
        budget,
        "must be a number of false alarms a day > 0",
    )
    _check(
        budget is None or not chosen,
        "false_alarms_per_day",
        budget,
        f"the worker budget derives each stream's ert: do not set it with {', '.join(chosen)}",
    )
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
    _check(
        math.isfinite(s.checkpoint_interval) and s.checkpoint_interval > 0,
        "checkpoint_interval",
        s.checkpoint_interval,
        "must be a number of seconds > 0",
    )
    _check(
        math.isfinite(s.session_timeout) and 6.0 <= s.session_timeout <= 300.0,
        "session_timeout",
        s.session_timeout,
        "must be 6..300 seconds (the broker's default group session bounds)",
    )
    _check(
        s.topic_replication_factor >= 1,
        "topic_replication_factor",
        s.topic_replication_factor,
        "must be >= 1",
    )
    _check(0 <= s.metrics_port <= 65535, "metrics_port", s.metrics_port, "must be a TCP port")
    _check(
        math.isfinite(s.metrics_cache_seconds) and 0 <= s.metrics_cache_seconds <= 300,
        "metrics_cache_seconds",
        s.metrics_cache_seconds,
        "must be 0..300 seconds (at most the scrape interval is sensible)",
    )
    _check(
        1 <= s.metrics_max_connections <= 4096,
        "metrics_max_connections",
        s.metrics_max_connections,
        "must be 1..4096",
    )
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
    _validate_telemetry(s)
    _validate_river_ert(s)
    _validate_security(s)
    _validate_metrics_security(s)
    _validate_signing(s)


def _validate_telemetry(s: Settings) -> None:
    """The telemetry format, categorical features, span filter and OTLP size limit."""
    _check(
        s.telemetry_format in TELEMETRY_FORMATS,
        "telemetry_format",
        s.telemetry_format,
        f"one of {', '.join(TELEMETRY_FORMATS)}",
    )
    cats = s.categorical_features
    _check(len(set(cats)) == len(cats), "categorical_features", cats, "duplicates")
    _check(
        not any("|" in f for f in cats),
        "categorical_features",
        cats,
        "'|' separates key and feature in drift event keys",
    )
    clash = set(cats) & (set(s.features) | set(s.key_fields) | {s.timestamp_field, "accuracy"})
    _check(
        not clash,
        "categorical_features",
        cats,
        f"also used as a numeric feature, key, timestamp or 'accuracy': {sorted(clash)}",
    )
    spec = s.span_filter
    if spec is not None and spec.strip() not in ("", "*"):
        name, sep, rest = spec.partition("=")
        _check(
            bool(sep and name.strip() and any(v.strip() for v in rest.split(","))),
            "span_filter",
            spec,
            "FIELD=VALUE[,VALUE...] (or '*': every span counts)",
        )
    low, high = OTLP_BYTES_RANGE
    _check(
        isinstance(s.max_otlp_bytes, int) and low <= s.max_otlp_bytes <= high,
        "max_otlp_bytes",
        s.max_otlp_bytes,
        f"must be an integer in [{low:,}, {high:,}]",
    )


#: The river detectors' sensitivity parameter that an ``ert`` calibrates.
_RIVER_PARAMETER = {"adwin": "delta", "kswin": "alpha", "page_hinkley": "threshold"}


def _validate_river_ert(s: Settings) -> None:
    """River detectors calibrate ``ert`` only within limits: refuse a setting they would."""
    ert = s.effective_ert
    if ert is None:
        return
    resolve = (s.resolve_after or s.window_size) + 1
    for feature in s.features:
        name = s.detector_for(feature)
        parameter = _RIVER_PARAMETER.get(name)
        if parameter is None:
            continue
        # the adapters' shortest false episode: KSWIN's window is 100, PageHinkley's warm-up 30
        shortest = max(resolve, 100) if name == "kswin" else max(resolve, 30)
        try:
            check_river_ert(ert, parameter, shortest)
        except ValueError as exc:
            raise ConfigError(
                "ert",
                ert,
                f"{name} on feature {feature!r}: {exc} (or set alpha for river's defaults)",
            ) from None


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
        if annotation == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(raw)
        if annotation == "str | None":
            return raw or None
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, _shown(name, raw), f"cannot be read as {annotation}") from None


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _closest(name: str, candidates: Collection[str]) -> str:
    """``; did you mean X?`` for the closest of ``candidates``, or a pointer to the list."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if match:
        return f"; did you mean {match[0]}?"
    return " (see README, Configuration, for the settings)"


def _section(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The settings of a TOML file: its ``[driftwatch]`` table, or its top level (not both)."""
    if "driftwatch" not in data:
        return data
    others = sorted(k for k in data if k != "driftwatch")
    if others:
        raise ConfigError(
            others[0],
            REDACTED,
            f"top-level key beside the [driftwatch] section in {path}: put every setting in "
            f"[driftwatch] or every setting at the top level (found {', '.join(others)})",
        )
    section = data["driftwatch"]
    if not isinstance(section, dict):
        raise ConfigError("driftwatch", REDACTED, f"must be a table in {path}")
    return section


def _check_environment(env: Mapping[str, str], known: Collection[str]) -> None:
    """Refuse a ``DRIFTWATCH_*`` variable that is neither a setting nor one read elsewhere."""
    names = {ENV_PREFIX + name.upper() for name in known} | OTHER_VARIABLES
    for variable in sorted(env):
        if variable.startswith(ENV_PREFIX) and variable not in names:
            # the value is not shown: it may be a secret under a misspelt name
            raise ConfigError(
                variable, REDACTED, f"unknown environment variable{_closest(variable, names)}"
            )


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
        for key, raw in _section(data, p).items():
            if key not in known:
                # the value is not shown: it may be a secret under a misspelt name
                raise ConfigError(key, REDACTED, f"unknown setting in {p}{_closest(key, known)}")
            values[key] = _convert(key, raw, known[key])
    _check_environment(env, known)
    for name, annotation in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _convert(ENV_PREFIX + name.upper(), raw, annotation)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except TypeError as exc:
        # names only: an unexpected keyword may be a secret under a misspelt name
        raise ConfigError("settings", sorted(values), str(exc)) from None
