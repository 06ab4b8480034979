"""One frozen, typed settings object, read from environment variables and/or a TOML file.

:class:`Settings` holds the application settings and two sections: :attr:`Settings.kafka`
(:class:`KafkaConnection`, how every Kafka client connects) and :attr:`Settings.metrics`
(:class:`MetricsServing`, how ``/metrics`` is served). Environment variables and TOML keys
use the flat setting names whatever the section (``DRIFTWATCH_BOOTSTRAP_SERVERS``,
``metrics_port``). Every value is validated at start; a bad one raises
:class:`~stream.exceptions.ConfigError` naming the setting. Import from this package::

    from stream.settings import Settings, load_settings
"""

from detectors.registry import DetectorName
from stream.settings.checks import REDACTED, SECRET_SETTINGS
from stream.settings.kafka import (
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    KafkaConnection,
    SaslMechanism,
    SecurityProtocol,
)
from stream.settings.loading import OTHER_VARIABLES, load_settings
from stream.settings.metrics import MetricsServing
from stream.settings.model import SECTIONS, Settings, setting_types
from stream.settings.values import (
    DEFAULT_ERT,
    DEFAULT_FEATURES,
    DEFAULT_SPAN_FILTER,
    DETECTORS,
    TELEMETRY_FORMATS,
    TelemetryFormat,
)

__all__ = [
    "DEFAULT_ERT",
    "DEFAULT_FEATURES",
    "DEFAULT_SPAN_FILTER",
    "DETECTORS",
    "OTHER_VARIABLES",
    "REDACTED",
    "SASL_MECHANISMS",
    "SECRET_SETTINGS",
    "SECTIONS",
    "SECURITY_PROTOCOLS",
    "TELEMETRY_FORMATS",
    "DetectorName",
    "KafkaConnection",
    "MetricsServing",
    "SaslMechanism",
    "SecurityProtocol",
    "Settings",
    "TelemetryFormat",
    "load_settings",
    "setting_types",
]
