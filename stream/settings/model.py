"""The frozen :class:`Settings`: application settings plus the Kafka and metrics sections."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, get_type_hints

from detectors.budget import DEFAULT_FALSE_ALARMS_PER_DAY
from detectors.registry import DetectorName, DetectorOptions
from stream.settings.checks import read_secret_file
from stream.settings.kafka import KafkaConnection
from stream.settings.metrics import MetricsServing
from stream.settings.validation import validate
from stream.settings.values import DEFAULT_FEATURES, DEFAULT_SPAN_FILTER, TelemetryFormat

__all__ = ["SECTIONS", "Settings", "setting_types"]

#: The sections of :class:`Settings`: attribute name -> section class. A section's field ``x``
#: is the setting ``PREFIX + x`` (``metrics.port`` is ``metrics_port``).
SECTIONS: dict[str, type[KafkaConnection] | type[MetricsServing]] = {
    "kafka": KafkaConnection,
    "metrics": MetricsServing,
}


@dataclass(frozen=True, slots=True, init=False)
class Settings:
    """Everything the worker, the simulator and the CLI can be configured with.

    Each setting is read from the environment variable ``DRIFTWATCH_<SETTING IN CAPITALS>`` or
    from the same key (lower case) in the TOML file. Tuples are comma-separated in the
    environment; ``feature_detectors`` is ``feature=detector,...``.

    The Kafka connection is the section :attr:`kafka` (:class:`KafkaConnection`) and the
    serving of ``/metrics`` the section :attr:`metrics` (:class:`MetricsServing`); the other
    settings are attributes of their own. ``Settings(**values)`` and :meth:`replace` take the
    flat setting names (``bootstrap_servers``, ``metrics_port``, ``window_size``, ...), or a
    whole section as ``kafka=`` / ``metrics=``.
    """

    kafka: KafkaConnection = field(default_factory=KafkaConnection)
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
    guarantee: float | None = None
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
    metrics: MetricsServing = field(default_factory=MetricsServing)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    data_dir: str = "var/driftwatch"

    def __init__(self, **values: Any) -> None:
        for name, section in SECTIONS.items():
            given = values.pop(name, None)
            picked = {
                f.name: values.pop(section.PREFIX + f.name)
                for f in fields(section)
                if section.PREFIX + f.name in values
            }
            if given is not None and picked:
                raise TypeError(f"{name}= given together with {', '.join(sorted(picked))}")
            object.__setattr__(self, name, given if given is not None else section(**picked))
        for f in fields(Settings):
            if f.name in SECTIONS:
                continue
            if f.name in values:
                value = values.pop(f.name)
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(self, f.name, value)
        if values:
            raise TypeError(f"unexpected keyword argument(s) {', '.join(sorted(values))}")
        validate(self)

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (the sections' fields with their prefix)."""
        values: dict[str, Any] = {}
        for f in fields(Settings):
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                values.update(
                    {value.PREFIX + g.name: getattr(value, g.name) for g in fields(value)}
                )
            else:
                values[f.name] = value
        return values

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed, by flat name or whole section (validated again)."""
        values = self.flat()
        for name, section in SECTIONS.items():
            if name in changes:
                for f in fields(section):
                    values.pop(section.PREFIX + f.name, None)
        return Settings(**{**values, **changes})

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

    def detector_options(
        self, *, wait_for_calibration: bool = True, ert: float | None = None
    ) -> DetectorOptions:
        """The detector options of these settings (``ert`` in place of :attr:`effective_ert`).

        ``wait_for_calibration=False`` lets an ``incremental_ks`` stream start testing only once
        its background calibration is ready, instead of waiting for it at its first test.
        """
        return DetectorOptions(
            window_size=self.window_size,
            duration=self.window_duration,
            alpha=self.alpha,
            ert=self.effective_ert if ert is None else ert,
            resolve_ratio=self.resolve_ratio,
            resolve_after=self.resolve_after,
            wait_for_calibration=wait_for_calibration,
            guarantee=self.guarantee,
        )

    def detector_for(self, feature: str) -> DetectorName:
        """The detector configured for ``feature``."""
        return self.feature_detectors.get(feature, self.detector)

    @property
    def checkpoint_topic_name(self) -> str:
        """The compacted topic holding the worker's state: ``checkpoint_topic`` or
        ``<app_id>.checkpoints``."""
        return self.checkpoint_topic or f"{self.app_id}.checkpoints"

    @property
    def telemetry_group(self) -> str:
        """The consumer group that reads telemetry (the Faust app's own group is ``app_id``)."""
        return f"{self.app_id}.telemetry"

    def checkpoint_signing_key(self) -> bytes | None:
        """The HMAC key of checkpoint records, read from ``checkpoint_signing_key_file``."""
        path = self.checkpoint_signing_key_file
        return (
            None if path is None else read_secret_file("checkpoint_signing_key_file", path).encode()
        )

    def control_signing_key(self) -> bytes | None:
        """The HMAC key of control commands, read from ``control_signing_key_file``."""
        path = self.control_signing_key_file
        return None if path is None else read_secret_file("control_signing_key_file", path).encode()


def setting_types() -> dict[str, Any]:
    """Every setting's flat name and its type (resolved, as the environment reads them)."""
    types: dict[str, Any] = {}
    for f in fields(Settings):
        section = SECTIONS.get(f.name)
        if section is None:
            types[f.name] = _HINTS[Settings][f.name]
        else:
            hints = _HINTS[section]
            types.update({section.PREFIX + g.name: hints[g.name] for g in fields(section)})
    return types


#: The resolved annotations of :class:`Settings` and its sections.
_HINTS: dict[type, dict[str, Any]] = {
    cls: get_type_hints(cls) for cls in (Settings, KafkaConnection, MetricsServing)
}
