"""Errors raised by the streaming service and the command line.

Every exception derives from :class:`DriftwatchError` and carries the data that caused it.
"""

from __future__ import annotations


class DriftwatchError(Exception):
    """Root of every error driftwatch raises on purpose."""


class ConfigError(DriftwatchError):
    """A setting is missing or invalid.

    Fix the named environment variable or settings-file key and restart.
    """

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        self.reason = reason
        super().__init__(f"setting {setting}: {reason} (got {value!r})")


class InputFileError(DriftwatchError):
    """A reference, production or telemetry file cannot be used.

    Check the path, the format (Parquet, CSV or JSONL) and the columns named in the message.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
