"""The classic windowed two-sample KS test, evaluated on a schedule with scipy."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from detectors.base import DRIFT_STARTED, KSDetector
from detectors.calibration import check_guarantee
from detectors.ks_state import StoredWindowedKS
from detectors.kstest import KSResult
from detectors.validation import as_reference, smallest_tested, validate_alarm_args
from detectors.windows import Window

__all__ = ["WindowedKS"]


class WindowedKS(StoredWindowedKS, KSDetector):
    """Reference vs window with :func:`scipy.stats.ks_2samp`, every ``stride`` events or seconds.

    Parameters
    ----------
    reference : array-like of float
        The reference sample.
    window_size : int
        Count window length (the cap on observations for time windows).
    duration : float, optional
        Time window length in seconds; ``update(x, t)`` then needs ``t``.
    stride : int, optional
        Count windows: evaluate every ``stride`` observations. Default ``window_size``
        (tumbling windows).
    interval : float, optional
        Time windows: evaluate when event time has advanced ``interval`` seconds since the last
        evaluation. Default ``duration``.
    min_window : int, optional
        Smallest window that is evaluated. Default ``window_size`` for count windows,
        ``min(window_size, 30)`` for time windows.
    alpha : float, optional
        Alarm when ``p < alpha`` (default 0.05 when ``ert`` is not given).
    ert : float, optional
        Mean observations between false alarms; the threshold is calibrated for this
        reference, window and ``stride`` (count windows only; see
        :mod:`detectors.calibration`).
    resolve_ratio : float
        The resolve level, as a fraction of the alarm threshold.
    resolve_after : int
        A drift episode resolves once evaluations with the statistic below the resolve level
        outnumber the others since it started by ``resolve_after`` (a tally that rises by one
        below the level, falls by one otherwise and never goes below zero, as in
        :class:`~detectors.IncrementalKS`). Default 1: the first evaluation below the level.
    seed : int
        Seed of the calibration (``ert`` only); the simulation's seed is
        derived from it, the reference's value counts and the configuration
        (:func:`~detectors.calibration.simulation_seed`).
    wait_for_calibration : bool
        With ``ert``, the calibration runs in the background from construction (and from every
        :meth:`set_reference`). True: the first evaluation waits for it (reproducible results);
        False: evaluations are skipped until it is ready.
    guarantee : float or None
        With ``ert``: the share of references for which the false-alarm rate *conditional on
        the reference* is at most 1.3 / ``ert`` (after Gandy and Kvaloy, 2013;
        ``detectors.calibration.DEFAULT_GUARANTEE`` = 0.9 is the recommended share). None (the
        default for now) calibrates the average over references to ``1 / ert``: 3-30x cheaper
        to calibrate and a little more sensitive, but one particular reference may then alarm
        several times as often as asked (see :func:`~detectors.calibration.calibrate_gap`).

    Notes
    -----
    Null hypothesis: reference and window come from one continuous distribution. At each
    evaluation the detector runs ``ks_2samp(reference, window)`` (exact p-values up to 10,000
    observations per sample, asymptotic above) and raises an alarm when ``p < alpha``. This is
    the baseline :class:`~detectors.IncrementalKS` agrees with at every evaluation point.

    References
    ----------
    .. [1] Massey, F. J. (1951). The Kolmogorov-Smirnov test for goodness of fit. JASA 46,
       68-78.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import WindowedKS
    >>> rng = np.random.default_rng(42)
    >>> det = WindowedKS(rng.normal(size=500), window_size=200, stride=50)
    >>> stream = np.r_[rng.normal(size=1000), rng.normal(1.0, 1.0, size=500)]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 1049
    """

    def __init__(
        self,
        reference: npt.ArrayLike,
        window_size: int = 1000,
        *,
        duration: float | None = None,
        stride: int | None = None,
        interval: float | None = None,
        min_window: int | None = None,
        alpha: float | None = None,
        ert: float | None = None,
        resolve_ratio: float = 0.6,
        resolve_after: int = 1,
        seed: int = 0,
        wait_for_calibration: bool = True,
        guarantee: float | None = None,
    ) -> None:
        super().__init__()
        self._init_calibration()
        if stride is not None and not (isinstance(stride, int) and stride >= 1):
            raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
        validate_alarm_args(
            window_size,
            duration,
            min_window,
            alpha,
            ert,
            resolve_ratio,
            resolve_after,
            stride or int(window_size),
        )
        if interval is not None and not (
            isinstance(interval, int | float) and math.isfinite(interval) and interval > 0
        ):
            raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
        self.window_size = int(window_size)
        self.duration = duration
        self.stride = stride
        self.interval = interval
        self.min_window = min_window
        self.alpha = alpha
        self.ert = ert
        self.resolve_ratio = float(resolve_ratio)
        self.resolve_after = resolve_after
        self.seed = seed
        self.wait_for_calibration = wait_for_calibration
        check_guarantee(guarantee)
        self.guarantee = None if guarantee is None else float(guarantee)
        self._alpha = 0.05 if alpha is None else float(alpha)
        self._min_window = smallest_tested(self.window_size, duration, min_window)
        self._stride = stride or self.window_size
        self._interval = interval or duration
        self._window = Window(self.window_size, duration)
        self._set_reference(as_reference(reference))
        self._since = 0
        self._next_eval_time = -math.inf
        self._below = 0
        self._result: KSResult | None = None
        self.n_evaluations = 0

    @property
    def reference(self) -> npt.NDArray[np.float64]:
        """The reference sample, sorted."""
        return self._reference

    @property
    def window(self) -> npt.NDArray[np.float64]:
        """The current window, oldest first (a copy)."""
        return self._window.values()

    def set_reference(self, reference: npt.ArrayLike) -> None:
        """Replace the reference (``O(n log n)``); the next evaluation uses it."""
        self._set_reference(as_reference(reference))

    def _set_reference(self, ref: npt.NDArray[np.float64]) -> None:
        self._reference = np.sort(ref)
        self.close()
        if self.ert is not None:
            _, counts = np.unique(self._reference, return_counts=True)
            self._calibrate(counts, self.resolve_after, self._stride)

    def _due(self, now: float) -> bool:
        if self.duration is None:
            return self._since >= self._stride
        return now >= self._next_eval_time

    def update(self, x: float, t: float | None = None) -> None:
        """Add one observation; evaluate if the schedule says so."""
        if self.transitions:
            self.transitions = []
        self._drift_detected = False
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"x must be finite, got {x!r}")
        win = self._window
        stamp = win.clock(t)
        win.pop_expired()
        win.push(x, stamp)
        self.n_seen += 1
        self._since += 1
        if self.duration is not None and self._next_eval_time == -math.inf:
            self._next_eval_time = stamp + self._interval  # type: ignore[operator]
        if not self._due(stamp):
            return
        self._since = 0
        if self.duration is not None:
            self._next_eval_time = stamp + self._interval  # type: ignore[operator]
        if len(win) < self._min_window or not self._testable():
            return
        self._evaluate()

    def _evaluate(self) -> None:
        ref, cur = self._reference, self._window.values()
        r = stats.ks_2samp(ref, cur)
        n, m = ref.shape[0], cur.shape[0]
        self._result = KSResult(
            float(r.statistic),
            float(r.pvalue),
            float(r.statistic_location),
            int(r.statistic_sign),
            n,
            m,
        )
        self.n_evaluations += 1
        cal = self.calibration
        if cal is None:
            crit = self._alpha_gap(n, m) / (n * m)  # critical D
            alarm = bool(r.pvalue < self._alpha)
        else:
            crit = cal.gap_high / (n * m)
            alarm = cal.fires(round(float(r.statistic) * n * m), self.n_seen, self.seed)
        below = r.statistic < self.resolve_ratio * crit
        kind = self._episode_test(alarm, below, self.resolve_after)
        if kind == DRIFT_STARTED:
            self._drift_detected = True
            self._record(kind, crit)
        elif kind is not None:
            self._record(kind, self.resolve_ratio * crit)

    def alarm_threshold(self) -> float:
        """The statistic ``D`` at which the latest evaluation would have alarmed (nan before)."""
        res = self._result
        if res is None:
            return math.nan
        n, m = res.n_reference, res.n_window
        cal = self._calibration
        if cal is not None:
            return float(cal.gap_high / (n * m))
        return self._alpha_gap(n, m) / (n * m)

    def result(self) -> KSResult:
        """Outputs of the latest evaluation (all nan before the first)."""
        if self._result is None:
            return KSResult(math.nan, math.nan, math.nan, 0, self._reference.shape[0], 0)
        return self._result
