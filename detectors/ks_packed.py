"""The state of an :class:`~detectors.IncrementalKS`, kept in the compiled kernel's buffers.

The kernel (:mod:`detectors.ks_kernel`) owns the detector's state as three packed arrays:
``_ints`` (a header of scalars, the thresholds table per tested window size), ``_narrow``
(int16 up to 32,767 slots and reference values, else int32: the window's slots in ascending
order and in ring order, the reference's cumulative counts) and ``_floats`` (a header, the
distinct reference values, the window's values and times). The detector keeps these three
arrays and nothing else of its state: the parts are views made when they are read; the
reference's per-value counts and per-slot ends and the window's count per slot are derived when
read (e.g. by a checkpoint); the alpha rule's thresholds are the exact test's critical values,
cached per process. The state (:mod:`detectors.ks_state`) stores the reference's per-value
counts in the narrowest integer dtype that holds them, the tags as int32, and nothing derived.
:class:`PackedKS` lays the buffers out for a reference (:meth:`~PackedKS._build`), binds the
detector and its :class:`~detectors.ks_window.PackedWindow` to them (:meth:`~PackedKS._attach`,
also to a :class:`~detectors.ks_bank.KSBank`'s buffers), reads and writes the header's scalars
through attributes, and evaluates the exact gap and the full test from them.
"""

from __future__ import annotations

import math
from array import array
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import KSDetector
from detectors.calibration import KSCalibration
from detectors.ks_alarm import KSAlarm
from detectors.ks_kernel import (
    CAP,
    GAP,
    IN_DRIFT,
    MIN_WINDOW,
    MIX,
    MIXED,
    N_FLOATS,
    N_INTS,
    N_REF,
    N_SEEN,
    N_SLOTS,
    OPS,
    RESOLVE_AFTER,
    SEED,
    SIZE,
    START,
    TESTABLE,
    TIMED,
    Narrow,
    exact_gap,
    layout,
    narrow_dtype,
    slots_of,
)
from detectors.ks_window import PackedWindow
from detectors.kstest import MAX_EXACT_N, KSResult, ks_pvalue
from detectors.validation import as_reference

__all__ = [
    "PackedKS",
    "header_floats",
    "packed_attributes",
    "ref_end",
    "set_packed_attributes",
    "window_result",
]


def header_floats(now: float, duration: float | None) -> npt.NDArray[np.float64]:
    """The kernel's float header: the randomised boundary's mix, the clock, the duration."""
    return np.array([0.0, now, math.inf if duration is None else float(duration)], dtype=np.float64)


def ref_end(cum: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
    """The reference values up to the end of each of the ``2K + 1`` slots, from the reference's
    cumulative counts ``cum`` (``K + 1`` values, from 0)."""
    out = np.empty(2 * cum.shape[0] - 1, dtype=np.int64)
    out[0::2] = cum
    out[1::2] = cum[1:]
    return out


class PackedKS(KSAlarm, KSDetector):
    """Base of :class:`~detectors.IncrementalKS`: its state as views of the kernel's buffers.

    Every mutable scalar lives in the kernel's header; the attributes below read and write it,
    so an update copies nothing in or out. The other attributes are slots (no instance dict):
    :func:`packed_attributes` reads them by name, :func:`set_packed_attributes` sets them.
    """

    __slots__ = (
        "_alpha",
        "_calibration_value",
        "_drift_detected",
        "_floats",
        "_ints",
        "_min_window",
        "_n",
        "_narrow",
        "_pending",
        "_resolve_after",
        "_result",
        "_thresholds",
        "_window",
        "alpha",
        "duration",
        "ert",
        "guarantee",
        "min_window",
        "resolve_after",
        "resolve_ratio",
        "seed",
        "transitions",
        "wait_for_calibration",
        "window_size",
    )

    _calibration_value: KSCalibration | None
    _ints: npt.NDArray[np.int64]
    _narrow: Narrow
    _floats: npt.NDArray[np.float64]
    # with ert only: the thresholds the state stores; replaced, never changed in place (a
    # checkpoint holds it without a copy)
    _thresholds: dict[int, tuple[int, int]]
    _window: PackedWindow
    _result: KSResult | None
    _n: int
    _min_window: int
    _resolve_after: int

    @property
    def n_seen(self) -> int:
        """Observations seen so far."""
        return int(self._ints.item(N_SEEN))

    @n_seen.setter
    def n_seen(self, value: int) -> None:
        self._ints[N_SEEN] = value

    @property
    def _in_drift(self) -> bool:
        return self._ints.item(IN_DRIFT) != 0

    @_in_drift.setter
    def _in_drift(self, value: bool) -> None:
        self._ints[IN_DRIFT] = 1 if value else 0

    @property
    def _calibration(self) -> KSCalibration | None:
        return self._calibration_value

    @_calibration.setter
    def _calibration(self, cal: KSCalibration | None) -> None:
        # the randomised boundary's parameters, as the kernel reads them
        self._calibration_value = cal
        self._ints[MIXED] = 0 if cal is None else cal.gap_mixed
        self._floats[MIX] = 0.0 if cal is None else cal.mix

    def _sync_testable(self) -> None:
        self._ints[TESTABLE] = 1 if self._testable() else 0

    def close(self) -> None:
        """Cancel a calibration that has not started (e.g. the stream is being dropped)."""
        super().close()
        self._sync_testable()

    def _build(
        self,
        ref: npt.NDArray[np.float64],
        cum: npt.NDArray[np.int64],
        window_values: npt.NDArray[np.float64],
        window_times: npt.NDArray[np.float64] | None,
        window_tags: npt.NDArray[np.int32] | None = None,
    ) -> None:
        """Allocate the buffers for the current reference and fill them: the header carried
        over, thresholds unknown, the reference (its distinct values and the cumulative counts
        ``cum``, ``K + 1`` entries from 0), and the window (oldest first)."""
        n_slots, cap, timed = 2 * ref.shape[0] + 1, self.window_size, window_times is not None
        _table, n_ints, cum_at, n_narrow, values_at, _times, n_floats = layout(
            n_slots, cap, timed, self._min_window
        )
        ints = np.full(n_ints, -1, dtype=np.int64)
        ints[:N_INTS] = self._ints[:N_INTS]
        narrow = np.zeros(n_narrow, dtype=narrow_dtype(n_slots, self._n))
        narrow[cum_at:] = cum
        floats = np.zeros(n_floats, dtype=np.float64)
        floats[:N_FLOATS] = self._floats[:N_FLOATS]
        floats[N_FLOATS:values_at] = ref
        m = window_values.shape[0]
        ints[START], ints[SIZE], ints[CAP], ints[N_SLOTS], ints[TIMED] = 0, m, cap, n_slots, timed
        ints[N_REF], ints[MIN_WINDOW] = self._n, self._min_window
        ints[RESOLVE_AFTER], ints[SEED] = self._resolve_after, self.seed
        self._attach(ints, narrow, floats)
        win = self._window
        win._values[:m] = window_values
        tags = self._slots_of(window_values) if window_tags is None else window_tags
        narrow[:m] = np.sort(tags)
        win._tags[:m] = tags
        times = win._times
        if times is not None and window_times is not None:
            times[:m] = window_times

    def _attach(
        self,
        ints: npt.NDArray[np.int64],
        narrow: Narrow,
        floats: npt.NDArray[np.float64],
    ) -> None:
        """Make the detector's and its window's buffers these (its own, or views of a bank's)."""
        self._ints, self._narrow, self._floats = ints, narrow, floats
        self._window.bind(ints, narrow, floats)

    @property
    def _sorted(self) -> Narrow:
        """The window's slots in ascending order (the first ``size``; a view)."""
        ints = self._ints
        return self._narrow[: ints.item(SIZE)]

    @property
    def _cum(self) -> Narrow:
        """The reference's cumulative counts (``K + 1``; a view), after the ring's slots."""
        return self._narrow[2 * self._ints.item(CAP) :]

    @property
    def _ref_values(self) -> npt.NDArray[np.float64]:
        """The distinct reference values (a view), after the float header."""
        return self._floats[N_FLOATS : N_FLOATS + (self._ints.item(N_SLOTS) - 1) // 2]

    @property
    def _counts(self) -> npt.NDArray[np.int32]:
        """The window's count per slot (``2K + 1``; a new array, counted from its sorted slots)."""
        return np.bincount(self._sorted, minlength=self._ints.item(N_SLOTS)).astype(np.int32)

    # ------------------------------------------------------------------ reference
    def _set_reference(self, ref: npt.NDArray[np.float64]) -> None:
        """Install a reference sample, keeping the window (re-slotted against it)."""
        if ref.shape[0] > np.iinfo(np.int32).max:
            raise ValueError(f"a reference holds at most 2**31 - 1 values, got {ref.shape[0]:,}")
        values, counts = np.unique(ref, return_counts=True)
        cum = np.zeros(values.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=cum[1:])
        win = self._window
        window_values = win.values()
        window_times = None if win._times is None else win.times()
        self._n = int(ref.shape[0])
        if self.ert is not None:
            self._thresholds = {}
        self._build(values, cum, window_values, window_times)
        self.close()
        if self.ert is not None:
            self._calibrate(self._ref_counts, self._resolve_after)
        self._reset_evidence()
        self._sync_testable()

    def _install(self, calibration: KSCalibration) -> None:
        thresholds = (calibration.gap_high, calibration.gap_low)
        if self.ert is not None:
            self._thresholds = {**self._thresholds, self.window_size: thresholds}
        self._set_table(self.window_size, thresholds)
        self._sync_testable()

    def _set_table(self, m: int, thresholds: tuple[int, int]) -> None:
        """Give the kernel the alarm and resolve gaps of a window of ``m`` (a tested size)."""
        row = N_INTS + 2 * (m - self._min_window)  # the table follows the header
        self._ints[row], self._ints[row + 1] = thresholds

    def _reset_evidence(self) -> None:
        self._ints[GAP] = -1  # exact max_s |m R - n C| at the last evaluation; -1: unknown
        self._ints[OPS] = 0  # window operations since then (each moves G by at most n)
        self._result = None

    def set_reference(self, reference: npt.ArrayLike) -> None:
        """Replace the reference sample, keeping the window (a re-baseline).

        Costs ``O((n + m) log n)`` for a new reference of size ``n`` and a window of ``m``. An
        open drift episode stays open; it resolves by the usual rule against the new reference.
        """
        self._set_reference(as_reference(reference))

    @property
    def _ref(self) -> array:
        """The distinct reference values as the state stores them (a copy of the packed ones)."""
        return array("d", self._ref_values.tobytes())

    @property
    def _ref_counts(self) -> npt.NDArray[np.int64]:
        """How often each distinct reference value occurs (a new array)."""
        return np.diff(self._cum).astype(np.int64)

    @property
    def _ref_end(self) -> npt.NDArray[np.int64]:
        """The reference values up to the end of each slot (``2K + 1``; a new array)."""
        return ref_end(self._cum)

    @property
    def reference(self) -> npt.NDArray[np.float64]:
        """The reference sample, sorted."""
        return np.repeat(self._ref_values, self._ref_counts)

    @property
    def window(self) -> npt.NDArray[np.float64]:
        """The current window, oldest first (a copy)."""
        return self._window.values()

    # ------------------------------------------------------------------ slots
    def _slots_of(self, xs: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        slots: npt.NDArray[np.int32] = slots_of(self._ref_values, xs)
        return slots

    def _thresholds_for(self, m: int) -> tuple[int, int]:
        """Alarm and resolve thresholds on ``G = max|m R - n C|`` for a window of ``m``.

        The calibration's for a full window (waiting for one still running); else the alpha
        rule's, from the exact test's critical values (cached per process). With ``ert`` the
        latter are also kept in ``_thresholds``, which the state stores.
        """
        if self.ert is not None and m in self._thresholds:
            return self._thresholds[m]
        cal = self.calibration
        if cal is not None and m == self.window_size:
            return cal.gap_high, cal.gap_low
        high = self._alpha_gap(self._n, m)
        t = (high, math.ceil(self.resolve_ratio * high))
        if self.ert is not None:
            self._thresholds = {**self._thresholds, m: t}
        return t

    # ------------------------------------------------------------------ evaluation
    def _gap(self) -> int:
        """Exact ``max_s |m R(s) - n C(s)|`` over the slots."""
        ints = self._ints
        return int(exact_gap(self._cum, self._narrow, ints.item(SIZE), self._n))

    @property
    def gap(self) -> int:
        """The current exact gap ``G = max_s |m R(s) - n C(s)|`` (``D = G / (n m)``).

        Cached: the updates keep the last exact evaluation and the number of window operations
        since; a stale gap is evaluated once, in one compiled ``O(K)`` pass, and kept (that
        changes no decision: every decision depends on the exact gap alone).
        """
        ints = self._ints
        if ints.item(GAP) < 0 or ints.item(OPS):
            ints[GAP] = self._gap()
            ints[OPS] = 0
        return int(ints.item(GAP))

    @property
    def statistic(self) -> float:
        """``scipy.stats.ks_2samp(reference, window).statistic``, from the cached :attr:`gap`
        (no p-value, no full evaluation; nan before any observation)."""
        m, n = self._window._size, self._n
        if m == 0:
            return math.nan
        if max(n, m) > MAX_EXACT_N:  # scipy's floating ECDF difference then
            return self.result().statistic
        g = math.gcd(n, m)
        return (self.gap // g) / (n // g * m)

    def _evaluate(self) -> KSResult:
        """The full result (cached until the next update); see :func:`window_result`."""
        if self._result is None:
            if self._window._size == 0:
                return KSResult(math.nan, math.nan, math.nan, 0, self._n, 0)
            self._result = window_result(
                self._ref_values, self._ref_end, self._counts, self._window, self._n, self.gap
            )
        return self._result


#: The slots every detector sets (``_thresholds`` is an ``ert`` detector's only).
_ALWAYS = tuple(name for name in PackedKS.__slots__ if name != "_thresholds")
_read_always = attrgetter(*_ALWAYS)


def packed_attributes(det: PackedKS) -> dict[str, Any]:
    """``det``'s attributes by name: the slots it has set, in their order, then those of an
    instance dict (a subclass without slots)."""
    try:
        out = dict(zip(_ALWAYS, _read_always(det), strict=True))
    except AttributeError:  # a slot not set (a state without it)
        missing = object()
        out = {k: v for k in _ALWAYS if (v := getattr(det, k, missing)) is not missing}
    thresholds = getattr(det, "_thresholds", None)
    if thresholds is not None:
        out["_thresholds"] = thresholds
    extra = getattr(det, "__dict__", None)
    if extra:
        out.update(extra)
    return out


def set_packed_attributes(det: PackedKS, values: dict[str, Any]) -> None:
    """Give ``det`` exactly the attributes ``values`` (by name; slots not in it are unset)."""
    for name in PackedKS.__slots__:
        if name in values:
            object.__setattr__(det, name, values[name])
        elif hasattr(det, name):
            object.__delattr__(det, name)
    extra = getattr(det, "__dict__", None)
    if extra is not None:
        extra.clear()
    for name, value in values.items():
        if name not in PackedKS.__slots__:
            object.__setattr__(det, name, value)


def window_result(
    ref_values: npt.NDArray[np.float64],
    ref_end: npt.NDArray[np.int64],
    counts: Narrow,
    window: PackedWindow,
    n: int,
    gap: int,
) -> KSResult:
    """The full result of the test of ``window`` against the reference, computed as scipy does
    (floating ECDF differences for the location); ``gap`` is the exact ``G``, the window not
    empty."""
    m = window._size
    c = np.cumsum(counts, dtype=np.int64)
    cdd = ref_end / n - c / m
    at_ref = cdd[1::2]
    i_max = int(np.argmax(at_ref))
    max_s = float(at_ref[i_max])
    gaps = cdd[0::2]
    occupied = counts[0::2] > 0
    i_min = int(np.argmin(at_ref))
    min_val = float(at_ref[i_min])
    loc_min = float(ref_values[i_min])
    if occupied.any():
        gap_idx = np.flatnonzero(occupied)
        j = int(np.argmin(gaps[gap_idx]))
        if gaps[gap_idx[j]] < min_val:
            min_val = float(gaps[gap_idx[j]])
            slot = 2 * int(gap_idx[j])
            in_slot = window.values()[window.tags() == slot]
            loc_min = float(in_slot.max())
    min_s = min(max(-min_val, 0.0), 1.0)
    if min_s > max_s:
        d, loc, sign = min_s, loc_min, -1
    else:
        d, loc, sign = max_s, float(ref_values[i_max]), 1
    g = math.gcd(n, m)
    lcm = n // g * m
    h = gap // g
    if max(n, m) <= MAX_EXACT_N:
        d = h / lcm
    return KSResult(d, ks_pvalue(n, m, h), loc, sign, n, m)
