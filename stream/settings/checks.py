"""What every settings section validates with: checks, secret files, redaction of secrets."""

from __future__ import annotations

from pathlib import Path

from stream.exceptions import ConfigError

__all__ = [
    "ENV_PREFIX",
    "REDACTED",
    "SECRET_SETTINGS",
    "check",
    "check_file",
    "read_secret_file",
    "shown",
]

ENV_PREFIX = "DRIFTWATCH_"
#: Settings whose values are secrets: never shown in reprs or error messages.
SECRET_SETTINGS = frozenset({"sasl_password", "metrics_basic_auth_password"})
#: What an error message shows instead of a secret.
REDACTED = "<redacted>"


def check(ok: bool, name: str, value: object, reason: str) -> None:
    """Raise :class:`ConfigError` for setting ``name`` unless ``ok``."""
    if not ok:
        raise ConfigError(name, value, reason)


def shown(name: str, value: object) -> object:
    """``value`` as an error message may show it: secrets (by setting name) are redacted."""
    key = name.lower().removeprefix(ENV_PREFIX.lower())
    if value is None or not (key in SECRET_SETTINGS or "password" in key or "secret" in key):
        return value
    if key.endswith("_file"):
        return value  # a path, not the secret
    return REDACTED


def read_secret_file(name: str, path: str) -> str:
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


def check_file(name: str, path: str | None) -> None:
    """Setting ``name``, if set, names an existing file."""
    if path is not None:
        check(bool(path.strip()), name, path, "must be a file path")
        check(Path(path).is_file(), name, path, "file not found")
