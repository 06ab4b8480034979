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


class UnknownKeyError(DriftwatchError):
    """A control command names a key this worker does not track.

    Another worker may hold it (commands reach every worker); if none does, check the key's
    spelling against the drift events or ``driftwatch tail``.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"key {key!r} is not tracked by this worker")
