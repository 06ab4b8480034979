"""The detector kinds, and their state as plain data.

:data:`KINDS` is the one list of detector kinds: the class of each, and whether it needs a
reference sample. :func:`detector_state` and :func:`detector_from_state` turn a detector into a
tree of plain values (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, numeric numpy
arrays, lists and string-keyed dicts) and back, so that state can be persisted by a format that
holds data only (no pickle: nothing read back can run code).

Values that are not plain (a :class:`~detectors.windows.Window`, a frozen dataclass such as
:class:`~detectors.calibration.KSCalibration`, a tuple, a ``deque``) become dicts tagged with
``"$"``; the tags form a closed set, and dataclasses are rebuilt from a closed list of classes by
their fields, so a field added to one later flows through without a change here.
"""

from __future__ import annotations

import dataclasses
import math
import random
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MemberDescriptorType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from detectors.base import DriftDetector, Transition
from detectors.calibration import KSCalibration
from detectors.categorical import CategoricalDetector, CategoricalTransition, CategoryChange
from detectors.ks import IncrementalKS
from detectors.kstest import KSResult
from detectors.river_adapters import ADWINDetector, KSWINDetector, PageHinkleyDetector
from detectors.river_calibration import RiverCalibration, check_river_ert
from detectors.validation import validate_alarm_args
from detectors.windowed import WindowedKS
from detectors.windows import Window

__all__ = [
    "CHI2",
    "KINDS",
    "STATEFUL",
    "WINDOWED_ALPHA",
    "DetectorKind",
    "DetectorName",
    "DetectorOptions",
    "StateError",
    "build_detector",
    "detector_from_state",
    "detector_state",
    "from_data",
    "kind_of",
    "to_data",
    "validate_options",
]

DetectorName = Literal["incremental_ks", "windowed_ks", "adwin", "kswin", "page_hinkley"]

#: Largest number of values in one array of a restored state.
MAX_ARRAY_VALUES = 50_000_000
#: Deepest nesting of a restored state.
MAX_DEPTH = 16

#: numpy dtypes a state may hold (little-endian on the wire).
ARRAY_DTYPES = frozenset({"f8", "i8", "i4", "i2", "i1", "u1", "b1"})


class StateError(ValueError):
    """A detector state that this version cannot rebuild (wrong shape, type or bounds).

    The state is not used: the stream that held it starts afresh from its next events.
    """


@dataclass(frozen=True, slots=True)
class DetectorKind:
    """One kind of detector.

    Attributes
    ----------
    name : str
        The name used in settings and drift events.
    cls : type
        The detector class.
    needs_reference : bool
        Whether it always compares against a reference sample (the river detectors need one
        only to calibrate an ``ert``).
    """

    name: DetectorName
    cls: type[DriftDetector]
    needs_reference: bool

    def build(
        self, reference: npt.NDArray[np.float64] | None, options: DetectorOptions
    ) -> DriftDetector:
        """A new detector of this kind on ``reference`` (see :func:`build_detector`)."""
        return build_detector(self.name, reference, options)

    def validate(self, options: DetectorOptions) -> None:
        """Raise ``ValueError`` unless this kind can be built with ``options`` (see
        :func:`validate_options`)."""
        validate_options(self.name, options)


#: Every detector kind, by name (in the order of :data:`DetectorName`).
KINDS: Mapping[str, DetectorKind] = {
    k.name: k
    for k in (
        DetectorKind("incremental_ks", IncrementalKS, True),
        DetectorKind("windowed_ks", WindowedKS, True),
        DetectorKind("adwin", ADWINDetector, False),
        DetectorKind("kswin", KSWINDetector, False),
        DetectorKind("page_hinkley", PageHinkleyDetector, False),
    )
}

#: The detector of categorical features (``CATEGORICAL_FEATURES``): not a choice of the numeric
#: ``detector`` setting, but its state is stored like the others'.
CHI2 = "chi2"
#: Every class whose state :func:`detector_state` stores, by the kind name stored with it.
STATEFUL: Mapping[str, type[DriftDetector]] = {
    **{k.name: k.cls for k in KINDS.values()},
    CHI2: CategoricalDetector,
}

#: Frozen dataclasses (and named tuples) a state may hold, rebuilt by their fields.
_RECORDS: Mapping[str, type] = {
    c.__name__: c
    for c in (
        KSCalibration,
        RiverCalibration,
        Transition,
        KSResult,
        CategoricalTransition,
        CategoryChange,
    )
}


def kind_of(detector: DriftDetector) -> DetectorKind:
    """The :class:`DetectorKind` of ``detector``."""
    for kind in KINDS.values():
        if type(detector) is kind.cls:
            return kind
    raise TypeError(f"not a registered detector kind: {type(detector).__name__}")


def _stored_kind(detector: DriftDetector) -> str:
    for name, cls in STATEFUL.items():
        if type(detector) is cls:
            return name
    raise TypeError(f"not a registered detector kind: {type(detector).__name__}")


def to_data(value: Any) -> Any:
    """``value`` as a tree of plain values (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.str[1:] not in ARRAY_DTYPES:
            raise TypeError(f"cannot store an array of dtype {value.dtype}")
        return value.copy()  # a state does not change with the detector it was taken from
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [to_data(v) for v in value]
    if isinstance(value, array):
        if value.typecode != "d":
            raise TypeError(f"cannot store an array.array of typecode {value.typecode!r}")
        return {"$": "array_d", "v": np.frombuffer(value.tobytes(), dtype=np.float64)}
    if isinstance(value, Window):
        return {"$": "window", "v": value.state()}
    if isinstance(value, deque):
        return {"$": "deque", "maxlen": value.maxlen, "v": [to_data(v) for v in value]}
    if isinstance(value, random.Random):
        return {"$": "random", "v": to_data(value.getstate())}
    name = type(value).__name__
    if _RECORDS.get(name) is type(value):
        names = _record_fields(type(value))
        return {"$": "record", "cls": name, "v": {n: to_data(getattr(value, n)) for n in names}}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [to_data(v) for v in value]}
    if isinstance(value, dict):
        return {
            "$": "dict",
            "k": [to_data(k) for k in value],
            "v": [to_data(v) for v in value.values()],
        }
    raise TypeError(f"cannot store a value of type {type(value).__name__}")


def from_data(data: Any, depth: int = 0) -> Any:
    """Rebuild a value written by :func:`to_data`; raise :class:`StateError` if malformed."""
    if depth > MAX_DEPTH:
        raise StateError(f"state nested deeper than {MAX_DEPTH}")
    if data is None or isinstance(data, bool | int | float | str | bytes):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype.str[1:] not in ARRAY_DTYPES or data.size > MAX_ARRAY_VALUES:
            raise StateError(f"array of dtype {data.dtype} and size {data.size} not allowed")
        return data.copy()  # owned and writable, whatever buffer it was read from
    if isinstance(data, list):
        return [from_data(v, depth + 1) for v in data]
    if not isinstance(data, dict):
        raise StateError(f"unexpected value of type {type(data).__name__} in a state")
    tag = data.get("$")
    v = data.get("v")
    if tag == "array_d":
        if not isinstance(v, np.ndarray) or v.dtype != np.float64 or v.ndim != 1:
            raise StateError("array_d needs a 1-d float64 array")
        return array("d", v.tobytes())
    if tag == "window":
        return Window.from_state(_mapping(v, "window"))
    if tag == "deque":
        maxlen = data.get("maxlen")
        if maxlen is not None and not (isinstance(maxlen, int) and 0 <= maxlen <= MAX_ARRAY_VALUES):
            raise StateError(f"deque maxlen {maxlen!r} out of bounds")
        return deque(_list(v, "deque", depth), maxlen=maxlen)
    if tag == "random":
        rng = random.Random()
        try:
            rng.setstate(_tuples(from_data(v, depth + 1)))
        except (TypeError, ValueError) as exc:
            raise StateError(f"bad random state: {exc}") from None
        return rng
    if tag == "record":
        cls = _RECORDS.get(data.get("cls"))  # type: ignore[arg-type]
        if cls is None:
            raise StateError(f"unknown record type {data.get('cls')!r}")
        fields = _mapping(v, "record")
        names = _record_fields(cls)
        kwargs = {n: from_data(fields[n], depth + 1) for n in names if n in fields}
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise StateError(f"bad {cls.__name__}: {exc}") from None
    if tag == "tuple":
        return tuple(_list(v, "tuple", depth))
    if tag == "dict":
        keys = _list(data.get("k"), "dict keys", depth)
        values = _list(v, "dict values", depth)
        if len(keys) != len(values):
            raise StateError("dict with different numbers of keys and values")
        try:
            return dict(zip(keys, values, strict=True))
        except TypeError as exc:
            raise StateError(f"bad dict key: {exc}") from None
    raise StateError(f"unknown state tag {tag!r}")


def _record_fields(cls: type) -> tuple[str, ...]:
    """The field names of a dataclass or a named tuple."""
    if issubclass(cls, tuple):
        return tuple(getattr(cls, "_fields"))  # noqa: B009 - named tuples only
    return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


def _mapping(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise StateError(f"{what} state must be a mapping with string keys")
    return v


def _list(v: Any, what: str, depth: int) -> list[Any]:
    if not isinstance(v, list):
        raise StateError(f"{what} must be a list")
    return [from_data(x, depth + 1) for x in v]


def _tuples(v: Any) -> Any:
    """Lists back to the nested tuples :meth:`random.Random.setstate` expects."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def detector_state(detector: DriftDetector) -> dict[str, Any]:
    """``detector``'s state as plain data: ``{"kind": name, "state": {...}}``."""
    return {"kind": _stored_kind(detector), "state": detector.state()}  # type: ignore[attr-defined]


def detector_from_state(data: Any) -> DriftDetector:
    """Rebuild a detector from :func:`detector_state`; raise :class:`StateError` if malformed."""
    doc = _mapping(data, "detector")
    name = doc.get("kind")
    cls = STATEFUL.get(name) if isinstance(name, str) else None
    if cls is None:
        raise StateError(f"unknown detector kind {name!r}")
    build: Callable[[dict[str, Any]], DriftDetector] = cls.from_state  # type: ignore[attr-defined]
    try:
        return build(_mapping(doc.get("state"), str(name)))
    except StateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise StateError(f"bad {name} state: {exc!r}") from None


def restore_attributes(
    obj: object,
    state: Mapping[str, Any],
    required: Mapping[str, type | tuple[type, ...]],
) -> None:
    """Set ``obj``'s attributes from a state (helper of the detectors' ``from_state``).

    Every name of ``required`` must be present with a value of the given type(s); other names
    are taken as they are (attributes a newer version added flow through) unless they would
    shadow something of the class (a method or a property). An object whose attributes are
    slots (no instance dict) takes only the names of its slots.
    """
    cls = type(obj)
    values: dict[str, Any] = {}
    for name, data in state.items():
        if not name.isidentifier() or name.startswith("__"):
            raise StateError(f"{cls.__name__} state has a forbidden name {name!r}")
        if hasattr(cls, name):
            if not isinstance(getattr(cls, name), MemberDescriptorType):
                raise StateError(f"{cls.__name__} state has a forbidden name {name!r}")
        elif not hasattr(obj, "__dict__"):
            raise StateError(f"{cls.__name__} state has an attribute it cannot hold: {name!r}")
        values[name] = from_data(data)
    for name, types in required.items():
        if name not in values:
            raise StateError(f"{cls.__name__} state without {name!r}")
        value = values[name]
        if isinstance(value, bool) and bool not in _as_tuple(types):
            raise StateError(f"{cls.__name__}.{name}: expected {types}, got bool")
        if not isinstance(value, types):
            raise StateError(f"{cls.__name__}.{name}: expected {types}, got {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value) and name not in _NON_FINITE_OK:
            raise StateError(f"{cls.__name__}.{name} must be finite, got {value!r}")
    for name, value in values.items():
        object.__setattr__(obj, name, value)


#: Float attributes that may legitimately be infinite or nan.
_NON_FINITE_OK = frozenset({"now", "_next_eval_time"})


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


#: Per-evaluation level of ``windowed_ks`` when neither ``alpha`` nor ``ert`` is set.
WINDOWED_ALPHA = 0.001


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorOptions:
    """How to build a detector: window, alarm rule and resolution.

    Attributes
    ----------
    window_size : int
        Window length (observations).
    duration : float, optional
        Time window (seconds) of the KS detectors; None for a count window.
    alpha : float, optional
        Per-test level (used when ``ert`` is None).
    ert : float, optional
        Expected run time between false alarms (observations); takes precedence over ``alpha``.
        With it the river detectors calibrate on the reference like the KS ones.
    resolve_ratio : float
        Fraction of the alarm threshold below which an episode may end.
    resolve_after : int, optional
        Observations under it before it ends (None: the detector's default).
    wait_for_calibration : bool
        Whether the first test waits for a background calibration.
    stride : int, optional
        ``windowed_ks``: observations between tests (None: a tenth of the window, at least 1).
    windowed_alpha : float
        ``windowed_ks``: the level when neither ``alpha`` nor ``ert`` is set.
    guarantee : float, optional
        With ``ert``, the KS kinds' conditional guarantee (see
        :class:`~detectors.IncrementalKS`); None calibrates the average rate. The river kinds
        calibrate the average rate whatever it is.
    """

    window_size: int
    duration: float | None = None
    alpha: float | None = None
    ert: float | None = None
    resolve_ratio: float
    resolve_after: int | None = None
    wait_for_calibration: bool = True
    stride: int | None = None
    windowed_alpha: float = WINDOWED_ALPHA
    guarantee: float | None = None


def build_detector(
    name: str, reference: npt.NDArray[np.float64] | None, options: DetectorOptions
) -> DriftDetector:
    """A new detector of kind ``name`` on ``reference`` (the KS kinds need one).

    Raises
    ------
    ValueError
        For an unknown kind, a KS kind without a reference, or options it refuses.
    """
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"detector must be one of {tuple(KINDS)}, got {name!r}")
    if kind.needs_reference and reference is None:
        raise ValueError(f"{name} needs a reference sample")
    kwargs = _arguments(kind, options)
    if kind.needs_reference:
        return kind.cls(reference, **kwargs)  # type: ignore[call-arg]
    # with an ert the river detectors calibrate on the stream's reference like the KS ones;
    # with alpha they run at river's defaults (and need no reference)
    if options.ert is not None:
        kwargs["reference"] = reference
    return kind.cls(**kwargs)


def validate_options(name: str, options: DetectorOptions) -> None:
    """Raise ``ValueError`` unless a detector of kind ``name`` can be built with ``options``.

    Checks what the detector's constructor would check, without a reference or a calibration:
    the window and alarm-rule arguments of the KS kinds, and for the river kinds whether their
    ``ert`` is one their calibration covers.
    """
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"detector must be one of {tuple(KINDS)}, got {name!r}")
    kwargs = _arguments(kind, options)
    if kind.needs_reference:
        validate_alarm_args(
            kwargs["window_size"],
            kwargs["duration"],
            None,
            kwargs["alpha"],
            kwargs["ert"],
            kwargs["resolve_ratio"],
            kwargs["resolve_after"],
            kwargs.get("stride", 1),
        )
    elif options.ert is not None:
        resolve = kwargs["resolve_after"] + 1
        # the adapters' shortest false episode: KSWIN's window is 100, PageHinkley's warm-up 30
        shortest = max(resolve, 100) if kind.cls is KSWINDetector else max(resolve, 30)
        check_river_ert(options.ert, _RIVER_PARAMETER[name], shortest)


#: The river detectors' sensitivity parameter that an ``ert`` calibrates.
_RIVER_PARAMETER = {"adwin": "delta", "kswin": "alpha", "page_hinkley": "threshold"}


def _arguments(kind: DetectorKind, o: DetectorOptions) -> dict[str, Any]:
    """The constructor's keyword arguments of ``kind`` for ``o`` (the reference apart)."""
    if kind.cls is IncrementalKS:
        return {
            "window_size": o.window_size,
            "duration": o.duration,
            "alpha": o.alpha if o.ert is None else None,
            "ert": o.ert,
            "resolve_ratio": o.resolve_ratio,
            "resolve_after": o.resolve_after,
            "wait_for_calibration": o.wait_for_calibration,
            "guarantee": o.guarantee if o.ert is not None else None,
        }
    if kind.cls is WindowedKS:
        return {
            "window_size": o.window_size,
            "duration": o.duration,
            "stride": o.stride or max(1, o.window_size // 10),
            "alpha": None if o.ert is not None else o.alpha or o.windowed_alpha,
            "ert": o.ert,
            "resolve_ratio": o.resolve_ratio,
            "resolve_after": o.resolve_after or 1,
            "guarantee": o.guarantee if o.ert is not None else None,
        }
    kwargs: dict[str, Any] = {"resolve_after": o.resolve_after or o.window_size}
    if o.ert is not None:
        kwargs.update(ert=o.ert, wait_for_calibration=o.wait_for_calibration)
    if kind.cls is KSWINDetector:
        kwargs["seed"] = 0
    return kwargs
