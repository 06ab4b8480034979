"""Exact incremental two-sample Kolmogorov-Smirnov drift detection.

The reference is fixed between refreshes, so its sorted distinct values ``v_0 < ... < v_{K-1}``
cut the real line into ``2K + 1`` *slots*: the open gaps ``(v_{i-1}, v_i)`` and the points
``{v_i}``. A window observation only ever moves one slot's count by one. With ``R(s)`` and
``C(s)`` the numbers of reference and window values up to the end of slot ``s``, the KS
statistic is ``max_s |m R(s) - n C(s)| / (n m)`` -- an integer computation, exact with any
amount of ties.

Testing after every event would still cost ``O(K)`` per event, but one update moves
``max_s |m R(s) - n C(s)|`` by at most ``n`` (one add, one removal, or one slide of a full
window). So after an exact evaluation, the detector knows for how many further events the alarm
decision cannot change, and evaluates again only then. Decisions are exact; the amortised cost per
event is ``O(log K)`` plus an ``O(K)`` pass every ``(threshold - statistic) * m`` events.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.background import BackgroundCalibrated
from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, KSDetector
from detectors.calibration import (
    KSCalibration,
    calibrate_gap,
    check_ert,
    check_guarantee,
)
from detectors.ks_kernel import (
    BELOW,
    CAP,
    DONE,
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
    NEED_THRESHOLDS,
    OPS,
    RESOLVE_AFTER,
    SEED,
    SIZE,
    START,
    STARTED,
    TESTABLE,
    TIMED,
    exact_gap,
    layout,
    run,
    slots_of,
    step,
)
from detectors.ks_window import PackedWindow
from detectors.kstest import MAX_EXACT_N, KSResult, critical_gap, ks_pvalue
from detectors.windows import Window, check_array, validate_window_args

__all__ = ["IncrementalKS", "as_reference", "validate_alarm_args"]


def as_reference(reference: npt.ArrayLike, name: str = "reference") -> npt.NDArray[np.float64]:
    """Return ``reference`` as a 1-D float array, or raise ``ValueError`` naming the problem."""
    try:
        ref = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of finite numbers: {exc}") from None
    if ref.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {ref.shape}")
    if ref.size == 0:
        raise ValueError(f"{name} must hold at least one value, got an empty array")
    bad = ~np.isfinite(ref)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name} must hold finite numbers only: {int(bad.sum())} non-finite value(s), "
            f"the first at index {i} ({float(ref[i])!r})"
        )
    return ref


def validate_alarm_args(
    window_size: int,
    duration: float | None,
    min_window: int | None,
    alpha: float | None,
    ert: float | None,
    resolve_ratio: float,
    resolve_after: int | None,
    stride: int = 1,
) -> None:
    """Validate the window and alarm-rule arguments shared by the KS detectors.

    ``resolve_after`` counts tests, one every ``stride`` observations.
    """
    validate_window_args(window_size, duration)
    if alpha is not None and ert is not None:
        raise ValueError(f"give alpha or ert, not both (got alpha={alpha!r}, ert={ert!r})")
    if alpha is not None and not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (isinstance(resolve_ratio, int | float) and 0.0 < resolve_ratio <= 1.0):
        raise ValueError(f"resolve_ratio must be in (0, 1], got {resolve_ratio!r}")
    if resolve_after is not None and not (isinstance(resolve_after, int) and resolve_after >= 1):
        raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
    if min_window is not None and not (isinstance(min_window, int) and min_window >= 1):
        raise ValueError(f"min_window must be an integer >= 1, got {min_window!r}")
    if ert is not None:
        check_ert(ert, int(window_size), resolve_after or int(window_size), stride)
        if duration is not None or min_window not in (None, window_size):
            raise ValueError(
                "ert calibration needs a count window tested when full: leave duration and "
                f"min_window unset (got duration={duration!r}, min_window={min_window!r})"
            )


_NO_TIMES = np.empty(0, dtype=np.float64)


def _finite_values(xs: npt.ArrayLike, name: str = "xs") -> npt.NDArray[np.float64]:
    values = np.asarray(xs, dtype=np.float64).ravel()
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite: value {float(values[i])!r} at index {i}")
    return values


class IncrementalKS(BackgroundCalibrated, KSDetector):
    """Two-sample KS test of a sliding window against a reference, exact after every event.

    Parameters
    ----------
    reference : array-like of float
        The reference sample (e.g. the last training window). Finite values; ties allowed.
    window_size : int
        Count-based window: the last ``window_size`` observations. With ``duration`` it is the
        cap on the number of observations a time window holds.
    duration : float, optional
        Time-based window: observations whose event time is within the last ``duration``
        seconds (``update(x, t)`` then needs ``t``).
    min_window : int, optional
        Smallest window that is tested. Default: ``window_size`` for count windows (only full
        windows are tested), ``min(window_size, 30)`` for time windows.
    alpha : float, optional
        Per-test level of the classic alarm rule ``p_value < alpha``, tested after every
        update. Default 0.05 when ``ert`` is not given. Prefer ``ert``: a per-test level on a
        sliding window raises a false alarm every few hundred events.
    ert : float, optional
        Expected run time: the mean number of observations between false alarms when nothing
        drifts. The alarm threshold is then calibrated for this reference (its size and tie
        structure), this window size and the every-event schedule (see
        :mod:`detectors.calibration`). Count windows only.
    resolve_ratio : float
        The resolve level, as a fraction of the alarm threshold.
    resolve_after : int, optional
        A drift episode resolves once, since it started, updates with the statistic below the
        resolve level outnumber the others by ``resolve_after`` (counted as a tally that rises
        by one below the level, falls by one otherwise, and never goes below zero). Default
        ``window_size``.
    seed : int
        Seed of the calibration's simulation (``ert`` only).
    wait_for_calibration : bool
        With ``ert``, the calibration runs in a background thread from construction (and from
        every :meth:`set_reference`). True: the first test waits for it, so results are
        reproducible. False: tests start only once it is ready, and nothing waits -- for a
        service that must not stall while thousands of streams calibrate.
    guarantee : float or None
        With ``ert``: the share of references for which the false-alarm rate *conditional on
        the reference* is at most 1.3 / ``ert`` (after Gandy and Kvaloy, 2013;
        ``detectors.calibration.DEFAULT_GUARANTEE`` = 0.9 is the recommended share). None (the
        default for now) calibrates the average over references to ``1 / ert``: 3-30x cheaper
        to calibrate and a little more sensitive, but one particular reference may then alarm
        several times as often as asked (see :func:`~detectors.calibration.calibrate_gap`).

    Attributes
    ----------
    statistic : float
        ``scipy.stats.ks_2samp(reference, window).statistic`` (nan before any observation).
    p_value : float
        ``scipy.stats.ks_2samp(reference, window).pvalue`` (``method='auto'``).
    statistic_location, statistic_sign
        Where the largest ECDF gap lies, and its sign (+1: the window moved up).
    gap : int
        The exact integer ``D * n * m`` (cached; what :attr:`statistic` and
        :attr:`drift_score` read, without a full evaluation or a p-value).

    Notes
    -----
    Null hypothesis: the window and the reference are samples of one continuous distribution.
    The statistic ``D = sup_x |F_ref(x) - F_win(x)|`` is computed exactly (integer arithmetic)
    with any ties. The alarm rule fires when ``D`` reaches the critical value of the exact KS
    test at level ``alpha`` for the current sizes, i.e. when ``p_value < alpha`` (scipy's
    ``method='auto'``), tested after every update once the window holds ``min_window``
    observations; with ``ert``, when ``D`` reaches the threshold calibrated so that false
    alarms come on average once per ``ert`` observations. An alarm opens a drift episode; the
    episode resolves when a tally reaches ``resolve_after``: it rises by one at every update
    with ``D`` below ``resolve_ratio`` times the alarm threshold and falls by one (not below
    zero) at every other update. A false episode thus ends about ``resolve_after`` updates
    after its offending observations have left the window, even if ``D`` briefly touches the
    resolve level on the way, while a real change, whose ``D`` mostly stays above that level,
    keeps its one episode open.

    The detector is updated in amortised ``O(log K)`` per event (``K`` distinct reference
    values) and exact: it re-evaluates only when its alarm decision could change. The state
    (scalars included) lives in three packed arrays that the compiled kernels update in place:
    :func:`detectors.ks_kernel.step` applies one event, :func:`detectors.ks_kernel.run` a batch,
    and :class:`detectors.ks_bank.KSBank` many detectors' batches in one call; the attributes
    read through views of those arrays, so nothing is copied around a call.

    References
    ----------
    .. [1] dos Reis, D. M., Flach, P., Matwin, S., Batista, G. (2016). Fast unsupervised online
       drift detection using incremental Kolmogorov-Smirnov test. KDD 2016, 1545-1554.
    .. [2] Gandy, A., Kvaloy, J. T. (2013). Guaranteed conditional performance of control
       charts via bootstrap methods. Scandinavian Journal of Statistics 40, 647-668.
    .. [3] Hodges, J. L. (1958). The significance probability of the Smirnov two-sample test.
       Arkiv för Matematik 3, 469-486.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import IncrementalKS
    >>> rng = np.random.default_rng(42)
    >>> det = IncrementalKS(rng.normal(size=500), window_size=200)
    >>> stream = np.r_[rng.normal(size=1000), rng.normal(1.0, 1.0, size=500)]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 1026
    >>> det.in_drift, round(det.statistic, 3), det.statistic_sign
    (True, 0.376, 1)

    Calibrated to one false alarm per 10,000 observations on average:

    >>> rng = np.random.default_rng(1)
    >>> det = IncrementalKS(rng.normal(size=1000), window_size=50, ert=10_000)
    >>> for i, x in enumerate(np.r_[rng.normal(size=3000), rng.normal(0.5, 1.0, size=500)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 3025
    """

    _calibration_value: KSCalibration | None

    def __init__(
        self,
        reference: npt.ArrayLike,
        window_size: int = 1000,
        *,
        duration: float | None = None,
        min_window: int | None = None,
        alpha: float | None = None,
        ert: float | None = None,
        resolve_ratio: float = 0.6,
        resolve_after: int | None = None,
        seed: int = 0,
        wait_for_calibration: bool = True,
        guarantee: float | None = None,
    ) -> None:
        validate_alarm_args(
            window_size, duration, min_window, alpha, ert, resolve_ratio, resolve_after
        )
        # the kernel's headers; _set_reference grows them into the full buffers
        self._ints = np.zeros(N_INTS, dtype=np.int64)
        self._floats = np.array([0.0, -math.inf, _duration(duration)], dtype=np.float64)
        super().__init__()
        self.window_size = int(window_size)
        self.duration = duration
        self.min_window = min_window
        self.alpha = alpha
        self.ert = ert
        self.resolve_ratio = float(resolve_ratio)
        self.resolve_after = resolve_after
        self.seed = seed
        self.wait_for_calibration = wait_for_calibration
        check_guarantee(guarantee)
        self.guarantee = None if guarantee is None else float(guarantee)
        if min_window is None:
            min_window = self.window_size if duration is None else min(self.window_size, 30)
        self._min_window = min(int(min_window), self.window_size)
        self._resolve_after = resolve_after or self.window_size
        self._alpha = 0.05 if alpha is None else float(alpha)
        self._window = PackedWindow(self.window_size, duration, self._ints, self._floats)
        self._init_calibration()
        self._set_reference(as_reference(reference))

    # ------------------------------------------------------------------ packed state
    # Every mutable scalar lives in the kernel's header (detectors/ks_kernel.py); the attributes
    # below read and write it, so an update copies nothing in or out.
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
        ref_end: npt.NDArray[np.int64],
        window_values: npt.NDArray[np.float64],
        window_times: npt.NDArray[np.float64] | None,
        window_tags: npt.NDArray[np.int32] | None = None,
    ) -> None:
        """Allocate the buffers for the current reference and fill them: the header carried
        over, thresholds unknown, the reference (its distinct values and cumulative counts),
        and the window (oldest first)."""
        n_slots, cap, timed = 2 * ref.shape[0] + 1, self.window_size, window_times is not None
        _table, ref_end_at, n_ints, n_int32s, values_at, _times, n_floats = layout(
            n_slots, cap, timed
        )
        ints = np.full(n_ints, -1, dtype=np.int64)
        ints[:N_INTS] = self._ints[:N_INTS]
        ints[ref_end_at:] = ref_end
        floats = np.zeros(n_floats, dtype=np.float64)
        floats[:N_FLOATS] = self._floats[:N_FLOATS]
        floats[N_FLOATS:values_at] = ref
        m = window_values.shape[0]
        ints[START], ints[SIZE], ints[CAP], ints[N_SLOTS], ints[TIMED] = 0, m, cap, n_slots, timed
        ints[N_REF], ints[MIN_WINDOW] = self._n, self._min_window
        ints[RESOLVE_AFTER], ints[SEED] = self._resolve_after, self.seed
        self._attach(ints, np.zeros(n_int32s, dtype=np.int32), floats)
        win = self._window
        tags = self._slots_of(window_values) if window_tags is None else window_tags
        win._values[:m] = window_values
        win._tags[:m] = tags  # type: ignore[index]
        if win._times is not None and window_times is not None:
            win._times[:m] = window_times
        self._counts[:] = np.bincount(tags, minlength=n_slots)

    def _attach(
        self,
        ints: npt.NDArray[np.int64],
        int32s: npt.NDArray[np.int32],
        floats: npt.NDArray[np.float64],
    ) -> None:
        """Make the detector's arrays views of packed buffers (its own, or a bank's)."""
        n_slots, cap, timed = ints.item(N_SLOTS), ints.item(CAP), ints.item(TIMED) != 0
        table_at, ref_end_at, n_ints, n_int32s, values_at, times_at, n_floats = layout(
            n_slots, cap, timed
        )
        self._ints, self._int32s, self._floats = ints, int32s, floats
        self._table = ints[table_at:ref_end_at].reshape(cap + 1, 2)
        self._ref_end = ints[ref_end_at:n_ints]
        self._counts = int32s[:n_slots]
        self._ref_values = floats[N_FLOATS:values_at]
        self._window.bind(
            ints,
            floats,
            floats[values_at:times_at],
            int32s[n_slots:n_int32s],
            floats[times_at:n_floats] if timed else None,
        )

    # ------------------------------------------------------------------ reference
    def _set_reference(self, ref: npt.NDArray[np.float64]) -> None:
        """Install a reference sample, keeping the window (re-slotted against it)."""
        values, counts = np.unique(ref, return_counts=True)
        cum = np.cumsum(counts, dtype=np.int64)
        k = values.shape[0]
        ref_end = np.empty(2 * k + 1, dtype=np.int64)
        ref_end[0] = 0
        ref_end[1::2] = cum
        ref_end[2::2] = cum
        win = self._window
        window_values = win.values()
        window_times = None if win._times is None else win.times()
        self._n = int(ref.shape[0])
        self._thresholds: dict[int, tuple[int, int]] = {}
        self._ref_counts = counts
        self._build(values, ref_end, window_values, window_times)
        self.close()
        if self.ert is not None:
            self._submit_calibration()
        self._reset_evidence()
        self._sync_testable()

    def _submit_calibration(self) -> None:
        # Calibrate in the background: nothing is tested before the window first fills, and
        # (unless wait_for_calibration is off) the first test waits for the result.
        assert self.ert is not None
        self._start(
            calibrate_gap,
            self._ref_counts,
            self.window_size,
            self.ert,
            resolve_ratio=self.resolve_ratio,
            resolve_after=self._resolve_after,
            seed=self.seed,
            guarantee=self.guarantee,
        )

    def _install(self, calibration: KSCalibration) -> None:
        thresholds = (calibration.gap_high, calibration.gap_low)
        self._thresholds[self.window_size] = thresholds
        self._table[self.window_size] = thresholds
        self._sync_testable()

    @property
    def calibration(self) -> KSCalibration | None:
        """The ``ert`` calibration (thresholds, simulated rate, cost), or None with ``alpha``.

        Waits for a calibration still running in the background.
        """
        cal: KSCalibration | None = super().calibration
        return cal

    def _reset_evidence(self) -> None:
        self._ints[GAP] = -1  # exact max_s |m R - n C| at the last evaluation; -1: unknown
        self._ints[OPS] = 0  # window operations since then (each moves G by at most n)
        self._result: KSResult | None = None

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
    def reference(self) -> npt.NDArray[np.float64]:
        """The reference sample, sorted."""
        reps = np.diff(self._ref_end[1::2], prepend=0)
        return np.repeat(self._ref_values, reps)

    @property
    def window(self) -> npt.NDArray[np.float64]:
        """The current window, oldest first (a copy)."""
        return self._window.values()

    # ------------------------------------------------------------------ slots
    def _slots_of(self, xs: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        slots: npt.NDArray[np.int32] = slots_of(self._ref_values, xs)
        return slots

    def _thresholds_for(self, m: int) -> tuple[int, int]:
        """Alarm and resolve thresholds on ``G = max|m R - n C|`` for a window of ``m``."""
        t = self._thresholds.get(m)
        if t is None and self.calibration is not None:
            t = self._thresholds.get(m)
        if t is None:
            n = self._n
            high = critical_gap(n, m, self._alpha) * math.gcd(n, m)
            low = math.ceil(self.resolve_ratio * high)
            t = self._thresholds[m] = (high, low)
        return t

    # ------------------------------------------------------------------ evaluation
    def _gap(self) -> int:
        """Exact ``max_s |m R(s) - n C(s)|`` over the slots."""
        return int(exact_gap(self._ref_end, self._counts, self._n, self._ints.item(SIZE)))

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
        """The full result, computed as scipy does (floating ECDF differences for the location)."""
        if self._result is not None:
            return self._result
        m, n = self._window._size, self._n
        if m == 0:
            nan = math.nan
            return KSResult(nan, nan, nan, 0, n, 0)
        counts = self._counts
        c = np.cumsum(counts, dtype=np.int64)
        cdd = self._ref_end / n - c / m
        ref_vals = self._ref_values
        at_ref = cdd[1::2]
        i_max = int(np.argmax(at_ref))
        max_s = float(at_ref[i_max])
        gaps = cdd[0::2]
        occupied = counts[0::2] > 0
        i_min = int(np.argmin(at_ref))
        min_val = float(at_ref[i_min])
        loc_min = float(ref_vals[i_min])
        if occupied.any():
            gap_idx = np.flatnonzero(occupied)
            j = int(np.argmin(gaps[gap_idx]))
            if gaps[gap_idx[j]] < min_val:
                min_val = float(gaps[gap_idx[j]])
                slot = 2 * int(gap_idx[j])
                in_slot = self._window.values()[self._window.tags() == slot]
                loc_min = float(in_slot.max())
        min_s = min(max(-min_val, 0.0), 1.0)
        if min_s > max_s:
            d, loc, sign = min_s, loc_min, -1
        else:
            d, loc, sign = max_s, float(ref_vals[i_max]), 1
        g = math.gcd(n, m)
        lcm = n // g * m
        h = self.gap // g
        if max(n, m) <= MAX_EXACT_N:
            d = h / lcm
        self._result = KSResult(d, ks_pvalue(n, m, h), loc, sign, n, m)
        return self._result

    def result(self) -> KSResult:
        """All of the current test's outputs at once."""
        return self._evaluate()

    def alarm_threshold(self) -> float:
        """The statistic ``D`` at which the current window alarms (nan while it is too small
        to be tested or its calibration is pending)."""
        m = self._window._size
        if m < self._min_window or not self.calibration_ready:
            return math.nan
        high, _low = self._thresholds_for(m)
        return high / (self._n * m)

    # ------------------------------------------------------------------ updates
    def update(self, x: float, t: float | None = None) -> None:
        """Add one observation ``x`` (with event time ``t`` in seconds for time windows)."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"x must be finite, got {x!r}")
        if self.duration is None:
            t = 0.0
        elif t is None:
            raise ValueError("t (event time in seconds) is required for a time-based window")
        elif not math.isfinite(t):
            raise ValueError(f"t must be a finite time in seconds, got {t!r}")
        if self.transitions:
            self.transitions = []
        self._drift_detected = False
        self._result = None
        if self._pending is not None:
            self._sync_testable()
        reason = step(self._ints, self._int32s, self._floats, x, float(t))
        while reason == NEED_THRESHOLDS:  # the event is applied; its decision resumes
            self._after_stop(reason)
            reason = step(self._ints, self._int32s, self._floats, x, float(t))
        if reason != DONE:
            self._after_stop(reason)
            self._drift_detected = reason == STARTED

    def update_many(self, xs: Any, ts: Any = None) -> None:
        """Add observations in order; afterwards identical to calling :meth:`update` on each.

        The whole batch is applied by one compiled call (:func:`detectors.ks_kernel.run`),
        resumed only after an episode change or to compute the thresholds of a window size not
        tested before. :attr:`transitions` lists every episode change of the batch. Invalid
        input raises ``ValueError`` before anything is applied.
        """
        values = _finite_values(xs)
        times = _NO_TIMES
        if self.duration is not None:
            if ts is None:
                raise ValueError(
                    "t (event time in seconds) is required for a time-based window: give ts"
                )
            times = np.asarray(ts, dtype=np.float64).ravel()
            if times.shape != values.shape:
                raise ValueError(
                    f"ts must have one time per value: got {times.shape[0]} times "
                    f"for {values.shape[0]} values"
                )
            bad = ~np.isfinite(times)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"ts must be finite: value {float(times[i])!r} at index {i}")
        self.transitions = []
        self._drift_detected = False
        self._result = None
        if self._pending is not None:
            self._sync_testable()
        k, b = 0, values.shape[0]
        while k < b:
            applied, reason = run(
                self._ints,
                self._int32s,
                self._floats,
                values[k:],
                times[k:] if times.shape[0] else times,
            )
            k += applied
            if reason == DONE:
                break
            self._after_stop(reason)
        self._result = None
        self._drift_detected = self._started_last()

    def _after_stop(self, reason: int) -> None:
        """Do what the kernel stopped for: the thresholds of this window size, or a transition."""
        self._result = None
        m = self._window._size
        high, low = self._thresholds_for(m)  # may install a calibration
        if reason == NEED_THRESHOLDS:
            self._table[m] = high, low
        elif reason == STARTED:
            self._record(DRIFT_STARTED, high / (self._n * m))
        else:
            self._record(DRIFT_RESOLVED, low / (self._n * m))

    def _started_last(self) -> bool:
        """True if the last transition started an episode at the latest observation."""
        last = self.transitions[-1] if self.transitions else None
        return last is not None and last.kind == DRIFT_STARTED and last.index == self.n_seen

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The detector's state as plain data (see :mod:`detectors.registry`).

        A pending calibration is waited for, unless it is not waited for by updates either:
        the restored copy then calibrates again (same seed, same result).
        """
        from detectors.registry import to_data

        recalibrate = False
        if self.wait_for_calibration or self.calibration_ready:
            self.calibration  # noqa: B018 - wait for a pending calibration
        else:
            recalibrate = True
        ints = self._ints
        values = dict(self.__dict__)
        values.update(
            n_seen=self.n_seen,
            _in_drift=self._in_drift,
            _below=int(ints.item(BELOW)),
            _calibration=self._calibration_value,
            _ref=self._ref,
            _G=int(ints.item(GAP)),
            _ops=int(ints.item(OPS)),
        )
        if self.ert is None:
            del values["_thresholds"]  # recomputed on demand (cached per process)
        out = {k: to_data(values.pop(k)) for k in _STATE_FIELDS if k in values}
        out.update((k, to_data(v)) for k, v in values.items() if k not in _NOT_STATE)
        if self.ert is None:
            out["_thresholds"] = to_data({})
        out["_recalibrate"] = recalibrate
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IncrementalKS:
        """Rebuild a detector from :meth:`state`, checking its shapes and invariants.

        Raises
        ------
        detectors.registry.StateError
            If the state is not one this version can continue from.
        """
        from detectors.registry import StateError, restore_attributes

        state = dict(state)
        recalibrate = state.pop("_recalibrate", False)
        # the packed scalars are checked on a stand-in of the same name, then packed below
        packed = type(cls.__name__, (), {})()
        restore_attributes(
            packed, {k: state.pop(k) for k in _PACKED_TYPES if k in state}, _PACKED_TYPES
        )
        det = cls.__new__(cls)
        restore_attributes(det, state, _KS_STATE_TYPES)
        k = len(packed._ref)
        values = np.frombuffer(packed._ref, dtype=np.float64)
        check_array(det._ref_counts, np.int64, k, "reference counts")
        check_array(det._ref_end, np.int64, 2 * k + 1, "reference ends")
        check_array(det._counts, np.int32, 2 * k + 1, "window counts")
        win = det._window
        tags = win.tags()
        cum = np.cumsum(det._ref_counts)
        if (
            k == 0
            or not np.all(np.isfinite(values))
            or np.any(np.diff(values) <= 0)
            or np.any(det._ref_counts <= 0)
            or det._n != int(cum[-1])
            or det._ref_end[0] != 0
            or np.any(det._ref_end[1::2] != cum)
            or np.any(det._ref_end[2::2] != cum)
        ):
            raise StateError("IncrementalKS reference arrays are inconsistent")
        if (
            win.capacity != det.window_size
            or not 1 <= det._min_window <= det.window_size
            or np.any(tags < 0)
            or np.any(tags > 2 * k)
            or np.any(np.bincount(tags, minlength=2 * k + 1) != det._counts)
            or not packed.n_seen >= 0
            or packed._ops < 0
            or packed._below < 0
            or det._resolve_after < 1
        ):
            raise StateError("IncrementalKS window state is inconsistent")
        cal = packed._calibration
        if cal is not None and not isinstance(cal, KSCalibration):
            raise StateError("IncrementalKS calibration has the wrong type")
        det.transitions = []
        det._pending = None
        det._ints = np.zeros(N_INTS, dtype=np.int64)
        det._floats = np.array([0.0, win.now, _duration(win.duration)], dtype=np.float64)
        det._window = PackedWindow(win.capacity, win.duration, det._ints, det._floats)
        times = None if win._times is None else win.times()
        det._build(values, det._ref_end, win.values(), times, tags)
        det.n_seen = packed.n_seen
        det._in_drift = packed._in_drift
        det._ints[BELOW], det._ints[GAP], det._ints[OPS] = packed._below, packed._G, packed._ops
        det._calibration = cal
        for m, (high, low) in det._thresholds.items():
            if 0 < m <= det.window_size:
                det._table[m] = high, low
        det._result = None
        if recalibrate:
            det._submit_calibration()
        det._sync_testable()
        return det

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its :meth:`state` (a finished calibration included) and transitions."""
        self.calibration  # noqa: B018 - copies carry the finished calibration
        return {"state": self.state(), "transitions": self.transitions}

    def __setstate__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(type(self).from_state(data["state"]).__dict__)
        self.transitions = list(data["transitions"])


def _duration(duration: float | None) -> float:
    return math.inf if duration is None else float(duration)


#: The order of the fields of :meth:`IncrementalKS.state` (the order of the attributes of
#: the detector before its scalars moved into the kernel's buffers; kept so that states are
#: byte-identical across that change).
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
    "_ref_end",
    "_counts",
    "_thresholds",
    "_ref_counts",
    "_G",
    "_ops",
)

#: Attributes that are not state: views of the buffers, caches, background work.
_NOT_STATE = frozenset(
    {
        "_ints",
        "_int32s",
        "_floats",
        "_table",
        "_ref_values",
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
}

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
    "_ref_end": np.ndarray,
    "_counts": np.ndarray,
    "_ref_counts": np.ndarray,
    "_thresholds": dict,
}
