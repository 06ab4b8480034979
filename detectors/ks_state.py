"""The stored state of the KS detectors: plain data, and pickles.

:class:`StoredKS` is :class:`~detectors.IncrementalKS`'s: :meth:`StoredKS.state` writes the
detector's attributes by name, in the order of :data:`_STATE_FIELDS` (the scalars that live in
the kernel's header included, under their attribute names), but not the fields that are derived
from others (:data:`_DERIVED_FIELDS`), and the reference's counts in the narrowest integer dtype
that holds them (:func:`stored_counts`); :meth:`StoredKS.from_state` checks such a state's
shapes and invariants and rebuilds the packed buffers from it. It also reads the states of the
versions that wrote the derived fields, checking them against the values it derives. Pickles
carry the same state. :class:`StoredWindowedKS` is :class:`~detectors.WindowedKS`'s: its
attributes by name, in the order the detector set them.
"""

from __future__ import annotations

from array import array
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from detectors.base import NO_TRANSITIONS, Transition
from detectors.calibration import KSCalibration
from detectors.ks_alarm import KSAlarm
from detectors.ks_kernel import BELOW, GAP, N_INTS, OPS
from detectors.ks_packed import (
    PackedKS,
    header_floats,
    packed_attributes,
    ref_end,
    set_packed_attributes,
)
from detectors.ks_window import PackedWindow
from detectors.kstest import KSResult
from detectors.windows import Window, check_array

__all__ = ["StoredKS", "StoredWindowedKS", "stored_counts"]

#: The dtypes counts are stored in, narrowest first (any of them is read back).
_STORED_COUNTS: tuple[type[np.signedinteger[Any]], ...] = (np.int8, np.int16, np.int32, np.int64)


def stored_counts(counts: npt.ArrayLike) -> npt.NDArray[np.signedinteger[Any]]:
    """``counts`` in the narrowest signed integer dtype that holds its values (a new array).

    Parameters
    ----------
    counts : array-like of int
        Integer values (any integer dtype).

    Returns
    -------
    numpy.ndarray
        The same values as int8, int16, int32 or int64 (int8 when empty).

    Raises
    ------
    TypeError
        If ``counts`` is not of an integer dtype.
    ValueError
        If a value does not fit an int64.

    Examples
    --------
    >>> stored_counts(np.array([1, 3, 127])).dtype
    dtype('int8')
    >>> stored_counts(np.array([1, 1_000])).dtype
    dtype('int16')
    """
    values = np.asarray(counts)
    if values.dtype.kind not in "iu":
        raise TypeError(f"counts must be integers, got dtype {values.dtype}")
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    for dtype in _STORED_COUNTS:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    raise ValueError(f"counts in [{lo}, {hi}] do not fit an int64")


class StoredKS(PackedKS):
    """Base of :class:`~detectors.IncrementalKS`: its state as plain data and as a pickle."""

    __slots__ = ()

    ert: float | None
    wait_for_calibration: bool
    window_size: int

    def state(self) -> dict[str, Any]:
        """The detector's state as plain data (see :mod:`detectors.registry`).

        The derived fields (:data:`_DERIVED_FIELDS`) are not written; the reference's counts
        are in the narrowest integer dtype that holds them (:func:`stored_counts`). A pending
        calibration is waited for, unless it is not waited for by updates either: the restored
        copy then calibrates again (same seed, same result).
        """
        from detectors.registry import to_data

        recalibrate = False
        if self.wait_for_calibration or self.calibration_ready:
            self.calibration  # noqa: B018 - wait for a pending calibration
        else:
            recalibrate = True
        ints = self._ints
        values = packed_attributes(self)
        values.update(
            n_seen=self.n_seen,
            _in_drift=self._in_drift,
            _below=int(ints.item(BELOW)),
            _calibration=self._calibration_value,
            _ref=self._ref,
            _G=int(ints.item(GAP)),
            _ops=int(ints.item(OPS)),
            _ref_counts=stored_counts(self._ref_counts),
        )
        out = {k: to_data(values.pop(k)) for k in _STATE_FIELDS if k in values}
        out.update((k, to_data(v)) for k, v in values.items() if k not in _NOT_STATE)
        if self.ert is None:
            out["_thresholds"] = to_data({})
        out["_recalibrate"] = recalibrate
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state`, checking its shapes and invariants.

        The reference's counts may be in any of the stored dtypes (int8 to int64). A state of
        an earlier version, with the derived fields (:data:`_DERIVED_FIELDS`), is read too:
        those fields must equal the values derived from the others.

        Raises
        ------
        detectors.registry.StateError
            If the state is not one this version can continue from.
        """
        from detectors.registry import StateError, from_data, restore_attributes

        state = dict(state)
        recalibrate = state.pop("_recalibrate", False)
        # written by the versions before the derived fields were dropped: checked below
        derived = {k: from_data(state.pop(k)) for k in _DERIVED_FIELDS if k in state}
        # the packed scalars are checked on a stand-in of the same name, then packed below
        packed = type(cls.__name__, (), {})()
        restore_attributes(
            packed, {k: state.pop(k) for k in _PACKED_TYPES if k in state}, _PACKED_TYPES
        )
        det = cls.__new__(cls)
        restore_attributes(det, state, _KS_STATE_TYPES)
        k = len(packed._ref)
        values = np.frombuffer(packed._ref, dtype=np.float64)
        ref_counts = _stored_ints(packed._ref_counts, k, "_ref_counts")
        win = det._window
        tags = win.tags()
        cum = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(ref_counts, out=cum[1:])
        if (
            k == 0
            or not np.all(np.isfinite(values))
            or np.any(np.diff(values) <= 0)
            or np.any(ref_counts <= 0)
            or det._n != int(cum[-1])
            or det._n > np.iinfo(np.int32).max
        ):
            raise StateError("IncrementalKS reference arrays are inconsistent")
        if (
            win.capacity != det.window_size
            or not 1 <= det._min_window <= det.window_size
            or np.any(tags < 0)
            or np.any(tags > 2 * k)
            or not packed.n_seen >= 0
            or packed._ops < 0
            or packed._below < 0
            or det._resolve_after < 1
        ):
            raise StateError("IncrementalKS window state is inconsistent")
        _check_derived(derived, cum, tags)
        cal = packed._calibration
        if cal is not None and not isinstance(cal, KSCalibration):
            raise StateError("IncrementalKS calibration has the wrong type")
        det.transitions = NO_TRANSITIONS
        det._pending = None
        det._ints = np.zeros(N_INTS, dtype=np.int64)
        det._narrow = np.empty(0, dtype=np.int16)
        det._floats = header_floats(win.now, win.duration)
        det._window = PackedWindow(win.capacity, win.duration, det._ints, det._narrow, det._floats)
        times = None if win._times is None else win.times()
        det._build(values, cum, win.values(), times, tags)
        det.n_seen = packed.n_seen
        det._in_drift = packed._in_drift
        det._ints[BELOW], det._ints[GAP], det._ints[OPS] = packed._below, packed._G, packed._ops
        det._calibration = cal
        for m, (high, low) in det._thresholds.items():
            if det._min_window <= m <= det.window_size:
                det._set_table(m, (high, low))
        if det.ert is None:
            del det._thresholds  # the alpha rule's are recomputed (cached per process)
        det._result = None
        if recalibrate:
            det._calibrate(det._ref_counts, det._resolve_after)
        det._sync_testable()
        return det

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its :meth:`state` (a finished calibration included) and transitions."""
        self.calibration  # noqa: B018 - copies carry the finished calibration
        return {"state": self.state(), "transitions": self.transitions}

    def __setstate__(self, data: dict[str, Any]) -> None:
        set_packed_attributes(self, packed_attributes(type(self).from_state(data["state"])))
        self.transitions = list(data["transitions"]) or NO_TRANSITIONS


#: The order of the fields of :meth:`StoredKS.state` (the order of the attributes of
#: the detector before its scalars moved into the kernel's buffers; kept so that states are
#: byte-identical across that change, the derived fields apart).
_STATE_FIELDS = (
    "n_seen",
    "_in_drift",
    "_drift_detected",
    "window_size",
    "duration",
    "min_window",
    "alpha",
    "ert",
    "resolve_ratio",
    "resolve_after",
    "seed",
    "wait_for_calibration",
    "guarantee",
    "_min_window",
    "_resolve_after",
    "_alpha",
    "_window",
    "_below",
    "_calibration",
    "_n",
    "_ref",
    "_thresholds",
    "_ref_counts",
    "_G",
    "_ops",
)

#: Attributes that are not state: views of the buffers, caches, background work.
_NOT_STATE = frozenset(
    {
        "_ints",
        "_narrow",
        "_floats",
        "_calibration_value",
        "_pending",
        "_result",
        "transitions",
    }
)

#: State fields held in the kernel's buffers (and the calibration, whose boundary they hold).
_PACKED_TYPES: dict[str, type | tuple[type, ...]] = {
    "n_seen": int,
    "_in_drift": bool,
    "_below": int,
    "_G": int,
    "_ops": int,
    "_calibration": (KSCalibration, type(None)),
    "_ref": array,
    "_ref_counts": np.ndarray,
}

#: Fields that earlier versions wrote and that are derived from the others: the reference's
#: values up to the end of each slot (from ``_ref_counts``) and the window's count per slot
#: (from its tags). Read and checked against the derived values, no longer written.
_DERIVED_FIELDS = ("_ref_end", "_counts")

#: The other attributes an :class:`IncrementalKS` state must hold, and their types.
_KS_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "_drift_detected": bool,
    "window_size": int,
    "wait_for_calibration": bool,
    "_min_window": int,
    "_resolve_after": int,
    "_alpha": float,
    "_window": Window,
    "_n": int,
    "_thresholds": dict,
}


def _stored_ints(value: Any, size: int, name: str) -> npt.NDArray[np.int64]:
    """``value`` as int64 if it is a 1-d array of ``size`` entries in one of the stored dtypes
    (:data:`_STORED_COUNTS`), else :class:`~detectors.registry.StateError`."""
    from detectors.registry import StateError

    if not (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and any(value.dtype == d for d in _STORED_COUNTS)
    ):
        got = f"{value.ndim}-d {value.dtype}" if isinstance(value, np.ndarray) else type(value)
        raise StateError(f"IncrementalKS {name} must be a 1-d int8..int64 array, got {got}")
    if value.shape[0] != size:
        raise StateError(f"IncrementalKS {name} must hold {size} entries, got {value.shape[0]}")
    return value.astype(np.int64)


def _check_derived(
    derived: dict[str, Any], cum: npt.NDArray[np.int64], tags: npt.NDArray[np.int32]
) -> None:
    """Check the derived fields of an earlier version's state against the values derived from
    the reference's cumulative counts ``cum`` and the window's ``tags``.

    Raises
    ------
    detectors.registry.StateError
        If a field is malformed or disagrees (a corrupt or altered state).
    """
    from detectors.registry import StateError

    n_slots = 2 * cum.shape[0] - 1
    if "_ref_end" in derived:
        stored = _stored_ints(derived["_ref_end"], n_slots, "_ref_end")
        if not np.array_equal(stored, ref_end(cum)):
            raise StateError("IncrementalKS _ref_end disagrees with _ref_counts")
    if "_counts" in derived:
        want = np.bincount(tags, minlength=n_slots)
        if not np.array_equal(_stored_ints(derived["_counts"], n_slots, "_counts"), want):
            raise StateError("IncrementalKS _counts disagrees with the window's tags")


class StoredWindowedKS(KSAlarm):
    """Mixin of :class:`~detectors.WindowedKS`: its state as plain data."""

    n_seen: int
    transitions: list[Transition]
    _reference: npt.NDArray[np.float64]
    _window: Window
    _min_window: int
    _stride: int
    _since: int
    _below: int
    n_evaluations: int

    def state(self) -> dict[str, Any]:
        """The detector's state as plain data (see :mod:`detectors.registry`)."""
        from detectors.registry import to_data

        self.calibration  # noqa: B018 - a copy carries the finished calibration
        transient = {"transitions", "_pending"}
        return {k: to_data(v) for k, v in self.__dict__.items() if k not in transient}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state`, checking its shapes and invariants.

        Raises
        ------
        detectors.registry.StateError
            If the state is not one this version can continue from.
        """
        from detectors.registry import StateError, restore_attributes

        det = cls.__new__(cls)
        restore_attributes(det, state, _WINDOWED_STATE_TYPES)
        det.transitions = []
        det._pending = None
        ref = check_array(det._reference, np.float64, None, "reference")
        if (
            ref.shape[0] == 0
            or not np.all(np.isfinite(ref))
            or np.any(np.diff(ref) < 0)
            or det._window.capacity != det.window_size
            or not 1 <= det._min_window <= det.window_size
            or det._stride < 1
            or min(det.n_seen, det._since, det._below, det.n_evaluations) < 0
        ):
            raise StateError("WindowedKS state is inconsistent")
        for name, types in (("_calibration", KSCalibration), ("_result", KSResult)):
            value = getattr(det, name, None)
            if value is not None and not isinstance(value, types):
                raise StateError(f"WindowedKS {name} has the wrong type")
        return det


#: Attributes a :class:`WindowedKS` state must hold, and their types.
_WINDOWED_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "n_seen": int,
    "_in_drift": bool,
    "_drift_detected": bool,
    "window_size": int,
    "_alpha": float,
    "_min_window": int,
    "_stride": int,
    "_window": Window,
    "_reference": np.ndarray,
    "_since": int,
    "_next_eval_time": float,
    "_below": int,
    "n_evaluations": int,
}
