"""The Kafka connection section of the settings: brokers, security protocol, SASL and TLS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, get_args

from stream.settings.checks import REDACTED, check, check_file, read_secret_file, shown

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "KafkaConnection",
    "SaslMechanism",
    "SecurityProtocol",
]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """How every Kafka client of driftwatch connects (``settings.kafka``).

    Each field is the setting of the same name (``DRIFTWATCH_BOOTSTRAP_SERVERS``,
    ``sasl_username`` in the TOML file, ...); validated when built.
    """

    #: Prefix of this section's fields in the flat setting names (none: the names are the same).
    PREFIX: ClassVar[str] = ""

    bootstrap_servers: str = "localhost:9092"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    sasl_password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        check(
            bool(self.bootstrap_servers.strip()),
            "bootstrap_servers",
            self.bootstrap_servers,
            "empty",
        )
        _validate_security(self)

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
        if self.sasl_password_file:
            return read_secret_file("sasl_password_file", self.sasl_password_file)
        return self.sasl_password


def _validate_security(s: KafkaConnection) -> None:
    check(
        s.security_protocol in SECURITY_PROTOCOLS,
        "security_protocol",
        s.security_protocol,
        f"one of {', '.join(SECURITY_PROTOCOLS)}",
    )
    check(
        s.sasl_mechanism in SASL_MECHANISMS,
        "sasl_mechanism",
        s.sasl_mechanism,
        f"one of {', '.join(SASL_MECHANISMS)}",
    )
    check(
        s.sasl_password is None or s.sasl_password_file is None,
        "sasl_password",
        REDACTED,
        "set sasl_password or sasl_password_file, not both",
    )
    has_password = s.sasl_password is not None or s.sasl_password_file is not None
    if s.uses_sasl:
        check(
            bool(s.sasl_username and s.sasl_username.strip()),
            "sasl_username",
            s.sasl_username,
            f"needed with security_protocol={s.security_protocol}",
        )
        protocol = s.security_protocol
        check(
            has_password,
            "sasl_password",
            None,
            f"set sasl_password or sasl_password_file with security_protocol={protocol}",
        )
        check(s.sasl_password != "", "sasl_password", REDACTED, "must not be empty")
    else:
        for name in ("sasl_username", "sasl_password", "sasl_password_file"):
            check(
                getattr(s, name) is None,
                name,
                shown(name, getattr(s, name)),
                "only used with security_protocol SASL_PLAINTEXT or SASL_SSL",
            )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if not s.uses_ssl:
            check(
                getattr(s, name) is None,
                name,
                getattr(s, name),
                "only used with security_protocol SSL or SASL_SSL",
            )
        check_file(name, getattr(s, name))
    check(
        s.ssl_keyfile is None or s.ssl_certfile is not None,
        "ssl_keyfile",
        s.ssl_keyfile,
        "set ssl_certfile too (the client certificate for this key)",
    )
    check(
        isinstance(s.ssl_check_hostname, bool),
        "ssl_check_hostname",
        s.ssl_check_hostname,
        "must be true or false",
    )
    check_file("sasl_password_file", s.sasl_password_file)
    if s.sasl_password_file is not None:
        s.sasl_secret()  # readable and not empty
