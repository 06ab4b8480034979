"""The metrics section of the settings: how the worker serves ``/metrics``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from stream.settings.checks import REDACTED, check, check_file, read_secret_file

__all__ = ["MetricsServing"]


@dataclass(frozen=True, slots=True)
class MetricsServing:
    """Where and how ``/metrics`` is served (``settings.metrics``).

    Each field ``x`` is the setting ``metrics_x`` (``DRIFTWATCH_METRICS_PORT``,
    ``metrics_port`` in the TOML file, ...); validated when built, errors name the setting.
    """

    #: Prefix of this section's fields in the flat setting names.
    PREFIX: ClassVar[str] = "metrics_"

    host: str = "0.0.0.0"
    port: int = 9464
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    basic_auth_password_file: str | None = None
    cache_seconds: float = 5.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        _validate(self)

    def basic_auth_secret(self) -> str | None:
        """The metrics password: ``metrics_basic_auth_password`` or read from its file."""
        if self.basic_auth_password_file:
            return read_secret_file(
                "metrics_basic_auth_password_file", self.basic_auth_password_file
            )
        return self.basic_auth_password


def _validate(s: MetricsServing) -> None:
    check(0 <= s.port <= 65535, "metrics_port", s.port, "must be a TCP port")
    check(
        math.isfinite(s.cache_seconds) and 0 <= s.cache_seconds <= 300,
        "metrics_cache_seconds",
        s.cache_seconds,
        "must be 0..300 seconds (at most the scrape interval is sensible)",
    )
    check(
        1 <= s.max_connections <= 4096,
        "metrics_max_connections",
        s.max_connections,
        "must be 1..4096",
    )
    check_file("metrics_tls_certfile", s.tls_certfile)
    check_file("metrics_tls_keyfile", s.tls_keyfile)
    check(
        s.tls_keyfile is None or s.tls_certfile is not None,
        "metrics_tls_keyfile",
        s.tls_keyfile,
        "set metrics_tls_certfile too",
    )
    user = s.basic_auth_username
    check(
        s.basic_auth_password is None or s.basic_auth_password_file is None,
        "metrics_basic_auth_password",
        REDACTED,
        "set metrics_basic_auth_password or metrics_basic_auth_password_file, not both",
    )
    has_password = s.basic_auth_password is not None or s.basic_auth_password_file is not None
    check(
        user is None or (bool(user) and ":" not in user and user.strip() == user),
        "metrics_basic_auth_username",
        user,
        "must be non-empty, without ':' or surrounding spaces",
    )
    check(
        (user is None) == (not has_password),
        "metrics_basic_auth_username",
        user,
        "set it together with metrics_basic_auth_password or metrics_basic_auth_password_file",
    )
    check(
        s.basic_auth_password != "",
        "metrics_basic_auth_password",
        REDACTED,
        "must not be empty",
    )
    check_file("metrics_basic_auth_password_file", s.basic_auth_password_file)
    if s.basic_auth_password_file is not None:
        s.basic_auth_secret()  # readable and not empty
