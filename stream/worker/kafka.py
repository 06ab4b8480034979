"""Kafka connection settings for the clients: kafka-python keyword arguments (the command line
tools), the TLS context and credentials the worker's Faust/aiokafka clients use.

Both come from the same :class:`~stream.settings.Settings` fields (``security_protocol``,
``sasl_*``, ``ssl_*``), so every client connects the same way. Passwords are passed to the
clients and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import re
import ssl
from collections.abc import Iterable
from typing import Any

import faust
from faust.types.auth import CredentialsT

from stream.exceptions import ConfigError
from stream.settings import REDACTED, Settings, load_settings

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "SaslLogRedactor",
    "add_kafka_options",
    "broker_credentials",
    "client_settings",
    "client_ssl_context",
    "kafka_client_config",
    "redact_sasl_in_client_logs",
]

#: Loggers that print SASL exchanges at debug level (aiokafka logs every request it sends,
#: including SaslAuthenticate, whose bytes hold the password with the PLAIN mechanism).
CLIENT_LOGGERS = ("aiokafka.conn",)
_AUTH_BYTES = re.compile(r"sasl_auth_bytes=.*", re.DOTALL)


#: Seconds a command-line client waits for the brokers to answer before giving up.
DEFAULT_CONNECT_TIMEOUT = 10.0


def kafka_client_config(
    settings: Settings, *, connect_timeout: float | None = None
) -> dict[str, Any]:
    """Keyword arguments for kafka-python's ``KafkaProducer``/``KafkaConsumer``/admin client.

    ``bootstrap_servers`` (a list), ``security_protocol`` and, as the protocol needs them,
    ``ssl_cafile``/``ssl_certfile``/``ssl_keyfile``/``ssl_check_hostname`` and
    ``sasl_mechanism``/``sasl_plain_username``/``sasl_plain_password``. With
    ``connect_timeout`` (seconds), the client raises ``KafkaTimeoutError`` when no broker
    answers the bootstrap within it (a listener that does not speak Kafka included), instead of
    kafka-python's 30 s.
    """
    config = _common_client_config(settings)
    if connect_timeout is not None:
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be > 0 seconds, got {connect_timeout!r}")
        config["bootstrap_timeout_ms"] = max(1, int(connect_timeout * 1000))
    if settings.kafka.uses_ssl:
        config.update(
            ssl_cafile=settings.kafka.ssl_cafile,
            ssl_certfile=settings.kafka.ssl_certfile,
            ssl_keyfile=settings.kafka.ssl_keyfile,
            ssl_check_hostname=settings.kafka.ssl_check_hostname,
        )
    return config


def aiokafka_client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``aiokafka`` clients: brokers, protocol, TLS context, SASL."""
    config = _common_client_config(settings)
    if settings.kafka.uses_ssl:
        config["ssl_context"] = client_ssl_context(settings)
    if settings.kafka.uses_sasl:
        redact_sasl_in_client_logs(settings)
    return config


def _common_client_config(settings: Settings) -> dict[str, Any]:
    """Brokers, protocol and SASL credentials: the same keywords in both client libraries."""
    config: dict[str, Any] = {
        "bootstrap_servers": [
            b.strip() for b in settings.kafka.bootstrap_servers.split(",") if b.strip()
        ],
        "security_protocol": settings.kafka.security_protocol,
    }
    if settings.kafka.uses_sasl:
        config.update(
            sasl_mechanism=settings.kafka.sasl_mechanism,
            sasl_plain_username=settings.kafka.sasl_username,
            sasl_plain_password=settings.kafka.sasl_secret(),
        )
    return config


def client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS client context for Kafka connections (TLS 1.2+, the broker is verified).

    Trusts ``ssl_cafile`` (or the system's CAs), checks the host name unless
    ``ssl_check_hostname`` is false, and presents ``ssl_certfile``/``ssl_keyfile`` when set.
    """
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=settings.kafka.ssl_cafile
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(
            "ssl_cafile", settings.kafka.ssl_cafile, f"cannot load the CA certificates: {exc}"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.kafka.ssl_check_hostname
    if settings.kafka.ssl_certfile:
        try:
            context.load_cert_chain(
                settings.kafka.ssl_certfile, settings.kafka.ssl_keyfile, password=_no_key_password
            )
        except (OSError, ValueError) as exc:
            name = "ssl_keyfile" if settings.kafka.ssl_keyfile else "ssl_certfile"
            path = settings.kafka.ssl_keyfile or settings.kafka.ssl_certfile
            raise ConfigError(name, path, f"cannot load the certificate and key: {exc}") from None
    return context


def _no_key_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ValueError("encrypted private keys are not supported")


def add_kafka_options(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers`` and ``--config`` for a command that talks to Kafka."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT[,...]",
        help="Kafka brokers (default: the bootstrap_servers setting, localhost:9092)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML settings file (default: $DRIFTWATCH_CONFIG); the Kafka security settings "
        "(security_protocol, sasl_*, ssl_*) are read from it and from DRIFTWATCH_* variables",
    )


def client_settings(args: argparse.Namespace) -> Settings:
    """The settings a command's Kafka client uses: file and environment, then its flags."""
    return load_settings(
        getattr(args, "config", None),
        bootstrap_servers=getattr(args, "bootstrap_servers", None),
    )


class SaslLogRedactor(logging.Filter):
    """Rewrites log records that carry SASL authentication bytes or a password."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret:
                # as text, and as it appears in the repr of the bytes sent to the broker
                self.secrets.update({secret, repr(secret.encode())[2:-1]})

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        redacted = _AUTH_BYTES.sub(f"sasl_auth_bytes={REDACTED})", message)
        for secret in sorted(self.secrets, key=len, reverse=True):
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redact_sasl_in_client_logs(settings: Settings) -> SaslLogRedactor | None:
    """Keep SASL bytes and the password out of the Kafka clients' (debug) logs."""
    if not settings.kafka.uses_sasl:
        return None
    secret = settings.kafka.sasl_secret()
    redactor: SaslLogRedactor | None = None
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        found = [f for f in logger.filters if isinstance(f, SaslLogRedactor)]
        if found:
            redactor = found[0]
        else:
            redactor = SaslLogRedactor()
            logger.addFilter(redactor)
        redactor.add([secret] if secret else [])
    return redactor


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's broker credentials for ``security_protocol`` (None for PLAINTEXT)."""
    context = client_ssl_context(settings) if settings.kafka.uses_ssl else None
    if settings.kafka.uses_sasl:
        redact_sasl_in_client_logs(settings)
        return faust.SASLCredentials(
            username=settings.kafka.sasl_username,
            password=settings.kafka.sasl_secret(),
            ssl_context=context,
            mechanism=settings.kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
