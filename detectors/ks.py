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
decision cannot change, and evaluates again only then. The window is kept as its values and its
slots in ascending order (``C`` changes only at occupied slots, so an exact evaluation is one
``O(m)`` pass over them, whatever ``K``). Decisions are exact; the cost per event is two binary
searches (the new value's slot among the reference's, and the leaving one's among the sorted
slots) and a shift of the sorted slots, plus an ``O(m)`` pass every
``(threshold - statistic) * m`` events.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, NO_TRANSITIONS
from detectors.calibration import check_guarantee
from detectors.ks_kernel import DONE, N_INTS, NEED_THRESHOLDS, STARTED, run, step
from detectors.ks_packed import header_floats
from detectors.ks_state import StoredKS
from detectors.ks_window import PackedWindow
from detectors.kstest import KSResult
from detectors.validation import (
    as_reference,
    event_times,
    finite_values,
    smallest_tested,
    validate_alarm_args,
)

__all__ = ["IncrementalKS"]

_NO_TIMES = np.empty(0, dtype=np.float64)
_NO_SLOTS = np.empty(0, dtype=np.int16)


class IncrementalKS(StoredKS):
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
        Seed of the calibration's simulation (``ert`` only); the simulation's seed is
        derived from it, the reference's value counts and the configuration
        (:func:`~detectors.calibration.simulation_seed`).
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

    The detector is updated in ``O(log K)`` per event (``K`` distinct reference values) plus
    a shift of its ``m`` sorted window slots, and exact: it re-evaluates (``O(m)``) only when its
    alarm decision could change. The state
    (scalars included) lives in three packed arrays that the compiled kernels update in place:
    :func:`detectors.ks_kernel.step` applies one event, :func:`detectors.ks_kernel.run` a batch,
    and :class:`detectors.ks_bank.KSBank` many detectors' batches in one call; the attributes
    read through views of those arrays, made when read, so nothing is copied around a call and
    nothing else is kept (see :class:`~detectors.ks_packed.PackedKS`; stored state:
    :class:`~detectors.ks_state.StoredKS`).

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

    __slots__ = ()

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
        self._narrow = _NO_SLOTS
        self._floats = header_floats(-math.inf, duration)
        super().__init__()
        self.transitions = NO_TRANSITIONS
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
        self._min_window = smallest_tested(self.window_size, duration, min_window)
        self._resolve_after = resolve_after or self.window_size
        self._alpha = 0.05 if alpha is None else float(alpha)
        self._window = PackedWindow(
            self.window_size, duration, self._ints, self._narrow, self._floats
        )
        self._init_calibration()
        self._set_reference(as_reference(reference))

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
            self.transitions = NO_TRANSITIONS
        self._drift_detected = False
        self._result = None
        if self._pending is not None:
            self._sync_testable()
        reason = step(self._ints, self._narrow, self._floats, x, float(t))
        while reason == NEED_THRESHOLDS:  # the event is applied; its decision resumes
            self._after_stop(reason)
            reason = step(self._ints, self._narrow, self._floats, x, float(t))
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
        values = finite_values(xs)
        times = _NO_TIMES if self.duration is None else event_times(ts, values)
        self._apply_many(values, times)

    def _apply_many(self, values: npt.NDArray[np.float64], times: npt.NDArray[np.float64]) -> None:
        """:meth:`update_many` of checked input: finite float64 ``values`` (1-d) and their
        times (an empty array for a count window), as :meth:`update_many` makes them."""
        self.transitions = NO_TRANSITIONS
        self._drift_detected = False
        self._result = None
        if self._pending is not None:
            self._sync_testable()
        k, b = 0, values.shape[0]
        while k < b:
            applied, reason = run(
                self._ints,
                self._narrow,
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
            self._set_table(m, (high, low))
        elif reason == STARTED:
            self._record(DRIFT_STARTED, high / (self._n * m))
        else:
            self._record(DRIFT_RESOLVED, low / (self._n * m))
