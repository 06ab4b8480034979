"""Reading :class:`~stream.settings.model.Settings` from a TOML file and the environment.

Precedence: explicit keyword overrides > environment variables (``DRIFTWATCH_*``) > the file
named by ``DRIFTWATCH_CONFIG`` (or passed as ``path``) > defaults. Names are the flat setting
names whatever section a setting belongs to (``DRIFTWATCH_BOOTSTRAP_SERVERS``,
``metrics_port`` in the file); an unknown name is refused with the closest known one.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from stream.exceptions import ConfigError
from stream.settings.checks import ENV_PREFIX, REDACTED, shown
from stream.settings.model import Settings, setting_types

__all__ = ["OTHER_VARIABLES", "load_settings"]

#: ``DRIFTWATCH_*`` variables that are not settings but are read elsewhere: the settings file,
#: the local broker of ``scripts/kafka_local.py`` and the integration tests, and whether
#: ``scripts/test.sh`` runs the integration tests in a process of their own.
OTHER_VARIABLES = frozenset(
    {
        "DRIFTWATCH_CONFIG",
        "DRIFTWATCH_KAFKA_CACHE",
        "DRIFTWATCH_KAFKA_DIR",
        "DRIFTWATCH_KAFKA_BOOTSTRAP",
        "DRIFTWATCH_TEST_SPLIT",
    }
)


def _convert(name: str, raw: Any, tp: Any) -> Any:
    """Turn an environment string or a TOML value into a value of the setting's type ``tp``."""
    args = get_args(tp)
    if get_origin(tp) in (Union, UnionType) and type(None) in args:
        if raw in ("", None):
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _convert(name, raw, inner)
    try:
        return _READERS.get(get_origin(tp) or tp, _text)(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, shown(name, raw), f"cannot be read as {_describe(tp)}") from None


def _describe(tp: Any) -> str:
    origin = get_origin(tp) or tp
    return "text" if origin is Literal else getattr(origin, "__name__", str(tp))


def _tuple(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(str(i).strip() for i in items if str(i).strip())


def _mapping(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
    return {k.strip(): v.strip() for k, v in pairs}


def _int(raw: Any) -> int:
    if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
        raise ValueError(raw)
    return int(raw)


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(raw)


def _text(raw: Any) -> str:
    return str(raw)


#: How a value of each setting type is read (by the type's origin); anything else is text.
_READERS: dict[Any, Callable[[Any], Any]] = {
    tuple: _tuple,
    Mapping: _mapping,
    int: _int,
    float: float,
    bool: _bool,
}

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
    known = setting_types()
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
    for name, tp in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _convert(ENV_PREFIX + name.upper(), raw, tp)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except TypeError as exc:
        # names only: an unexpected keyword may be a secret under a misspelt name
        raise ConfigError("settings", sorted(values), str(exc)) from None
