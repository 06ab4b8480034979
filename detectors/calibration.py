"""Alarm thresholds calibrated to an expected run time (ERT) between false alarms.

Testing a sliding window after every event with a per-test level ``alpha`` raises a false alarm
every few dozen events. Instead, :func:`calibrate_gap` finds the threshold on the integer KS gap
``G = max |m R - n C|`` for which the detector -- its window size, its every-event schedule, its
drift episodes with hysteresis -- starts on average one false episode per ``ert`` observations
when nothing drifts.

How the null streams are simulated
----------------------------------
Both samples must come from one distribution ``F`` that is unknown; only the reference is seen.
Each simulated stream first draws a distribution ``F*`` from the Bayesian bootstrap of the
reference (Rubin, 1981), then its observations from ``F*``; the simulated gap is taken against the
real reference. Drawing ``F*`` anew per stream carries the reference's own sampling noise into
the simulated statistic, which a plain bootstrap from the reference would leave out.

* **Continuous references** (at most 2 % tied values): ``F*`` puts Dirichlet(1, ..., 1) mass
  on the ``n + 1`` gaps between reference values, which makes the procedure depend only on
  ranks.
  The threshold is then a function of ``(n, m, ert, resolve_ratio, resolve_after)`` alone: it
  is distribution-free, computed once per configuration and cached.
* **Tied references** (retry counts, error flags, integer token counts, rounded rates):
  ``F*`` is Dirichlet(counts) on the reference's distinct values, so observations tie with the
  reference exactly as real discrete data do, and the threshold is conditional on the reference's
  tie structure. The simulation costs ``O(K)`` per simulated event for ``K`` distinct values.

References
----------
.. [1] Rubin, D. B. (1981). The Bayesian bootstrap. Annals of Statistics 9, 130-134.
.. [2] Ross, G. J., Adams, N. M. (2012). Two nonparametric control charts for detecting
   arbitrary distribution changes. Journal of Quality Technology 44, 102-116.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONTINUOUS_TIE_FRACTION",
    "KSCalibration",
    "calibrate_gap",
    "check_ert",
    "simulation_budget",
]

_MASK = (1 << 64) - 1

#: References with at most this fraction of tied values are calibrated as continuous.
CONTINUOUS_TIE_FRACTION = 0.02


@dataclass(frozen=True, slots=True)
class KSCalibration:
    """The outcome of a calibration.

    Attributes
    ----------
    gap_high, gap_low : int
        Alarm and resolve thresholds on ``G = max |m R - n C|``.
    gap_mixed : int
        The attainable gap just below ``gap_high``: at ``gap_mixed <= G < gap_high`` the alarm
        fires with probability ``mix`` (a randomised test, so that the rate can hit the target
        even when a discrete statistic jumps between attainable values).
    mix : float
        That probability.
    ert : float
        The target expected run time (observations per false alarm).
    simulated_rate : float
        False episode starts per observation measured in the simulation at ``gap_high``.
    model : {"continuous", "discrete"}
        Which null model was simulated.
    observations : int
        Simulated observations behind the estimate.
    seconds : float
        Wall time the calibration took (a result served from the cache keeps the time of its
        computation).
    extrapolated : bool
        True when ``ert`` lies beyond what the simulation can observe (more than
        ``observations / 150``): the threshold then comes from a quadratic fit of the log start
        rate against the gap over the simulated tail, and ``simulated_rate`` is the fitted one.
    """

    gap_high: int
    gap_low: int
    gap_mixed: int
    mix: float
    ert: float
    simulated_rate: float
    model: Literal["continuous", "discrete"]
    observations: int
    seconds: float
    extrapolated: bool = False

    @property
    def floor(self) -> int:
        """The smallest gap that can raise an alarm."""
        return self.gap_mixed if self.mix > 0 else self.gap_high

    def fires(self, gap: int, index: int, seed: int) -> bool:
        """The alarm rule on an exact gap; at the randomised boundary the draw is a hash of
        ``(index, seed)``, so the same observation always decides the same way."""
        if gap >= self.gap_high:
            return True
        if self.mix <= 0 or gap < self.gap_mixed:
            return False
        z = (index * 0x9E3779B97F4A7C15 + seed * 0xD1B54A32D192ED03) & _MASK  # splitmix64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return (z ^ (z >> 31)) / 2.0**64 < self.mix

    def threshold(self, n: int, m: int) -> float:
        """The alarm threshold as a KS statistic ``D`` for reference ``n`` and window ``m``."""
        return self.gap_high / (n * m)


MAX_OBSERVATIONS = 3_000_000


#: An ERT must allow this many false episodes' worth of observations: a false episode lasts at
#: least ``window_size + resolve_after`` observations (the window must refresh, then stay low).
MIN_ERT_EPISODES = 5


def check_ert(ert: float, window_size: int, resolve_after: int, stride: int = 1) -> None:
    """Raise ``ValueError`` if ``ert`` is too short to calibrate for this window and hysteresis."""
    shortest = MIN_ERT_EPISODES * (window_size + resolve_after * stride)
    if not (isinstance(ert, int | float) and math.isfinite(ert) and ert > 1):
        raise ValueError(f"ert must be a finite number of observations > 1, got {ert!r}")
    if ert < shortest:
        raise ValueError(
            f"ert={ert!r} is too short for window_size={window_size} and resolve_after="
            f"{resolve_after}: a false drift episode alone lasts over {shortest // 5} "
            f"observations; use ert >= {shortest} or a smaller window"
        )


def simulation_budget(ert: float) -> int:  # observations, whatever the test schedule
    """Simulated observations used to calibrate for ``ert`` (about 150 false alarms' worth)."""
    return int(min(max(150 * ert, 200_000), MAX_OBSERVATIONS))


def _extrapolate(
    gaps: npt.NDArray[np.int64], ert: float, ratio: float, resolve_after: int
) -> tuple[int, int, float]:
    """Threshold for an ``ert`` too long to simulate, from the simulated tail of start rates."""
    total = gaps.size
    candidates = np.unique(gaps)
    grid = np.linspace(np.quantile(gaps, 0.99), gaps.max(), 40)
    levels = np.unique(
        candidates[np.minimum(np.searchsorted(candidates, grid), len(candidates) - 1)]
    )
    hs, logs, weights = [], [], []
    for h in levels.tolist():
        starts = _count_starts(gaps, int(h), math.ceil(ratio * h), resolve_after)
        if starts >= 10:
            hs.append(float(h))
            logs.append(math.log(starts / total))
            weights.append(math.sqrt(starts))
    if len(hs) < 4:
        h = int(gaps.max()) + 1
        return h, math.ceil(ratio * h), 0.0
    x = np.asarray(hs)
    scale = x.max()
    c2, c1, c0 = np.polyfit(x / scale, logs, 2, w=weights)
    goal = -math.log(ert)
    if c2 < 0:  # concave tail, as for Gaussian-like statistics: take the root beyond the data
        disc = c1 * c1 - 4 * c2 * (c0 - goal)
        root = (-c1 - math.sqrt(max(disc, 0.0))) / (2 * c2)
    else:  # fall back to a straight line through the upper half
        half = len(hs) // 2
        b1, b0 = np.polyfit(x[half:] / scale, logs[half:], 1, w=weights[half:])
        root = (goal - b0) / b1
    h = max(math.ceil(root * scale), int(x.max()))
    return h, math.ceil(ratio * h), math.exp(goal)


def _bayes_weights(rng: np.random.Generator, alpha: npt.NDArray[np.float64]) -> npt.NDArray:
    w = rng.gamma(alpha)
    return w / w.sum()


def _simulate(
    cell_alpha: npt.NDArray[np.float64],
    ref_cum_hi: npt.NDArray[np.int64],
    ref_cum_lo: npt.NDArray[np.int64],
    n: int,
    m: int,
    streams: int,
    steps: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
    """Gaps ``G`` (streams x steps) of sliding windows over Bayesian-bootstrap null streams.

    Cells are where observations can fall (gaps between reference values, or the reference's
    atoms). After cell ``j`` the reference has ``ref_cum_lo[j]`` values at the left limit of the
    next evaluation point and ``ref_cum_hi[j]`` at the point itself; ``G`` is the largest
    ``|m R - n C|`` over both.
    """
    cells = cell_alpha.shape[0]
    seq = np.empty((streams, m + steps), dtype=np.int32)
    for b in range(streams):
        cum = np.cumsum(_bayes_weights(rng, cell_alpha))
        seq[b] = np.minimum(np.searchsorted(cum, rng.random(m + steps), side="right"), cells - 1)
    out = np.empty((streams, steps), dtype=np.int64)
    if 4 * m < cells:
        # Few window values among many cells: work from the sorted window. With the window's
        # cells sorted, c_1 <= ... <= c_m, the count C is k on [c_k, c_{k+1}), so the largest
        # m R - n C of that run sits just before c_{k+1} and the largest n C - m R at c_k.
        hi_next = np.concatenate([[0], m * ref_cum_hi])  # m R just before cell j, at j + 1
        lo_at = m * ref_cum_lo
        k_hi = n * np.arange(m, dtype=np.int64)
        k_lo = n * np.arange(1, m + 1, dtype=np.int64)
        window = seq[:, :m].copy()
        for t in range(steps):
            window[:, t % m] = seq[:, t + m]
            cells_sorted = np.sort(window, axis=1)
            up = (hi_next[cells_sorted] - k_hi).max(axis=1)
            down = (k_lo - lo_at[cells_sorted]).max(axis=1)
            out[:, t] = np.maximum(np.maximum(up, down), 0)
        return out
    rows = np.arange(streams)
    counts = np.zeros((streams, cells), dtype=np.int32)
    np.add.at(counts, (np.repeat(rows, m), seq[:, :m].ravel()), 1)
    hi = m * ref_cum_hi
    lo = m * ref_cum_lo
    for t in range(steps):
        counts[rows, seq[:, t]] -= 1
        counts[rows, seq[:, t + m]] += 1
        c = n * np.cumsum(counts, axis=1, dtype=np.int64)
        out[:, t] = np.maximum((hi - c).max(axis=1), (c - lo).max(axis=1))
    return out


def _count_starts(
    gaps: npt.NDArray[np.int64],
    high: int,
    low: int,
    resolve_after: int,
    mixed: int | None = None,
    mix: float = 0.0,
    uniforms: npt.NDArray[np.float64] | None = None,
) -> int:
    """False episode starts over simulated gaps, with the detector's hysteresis.

    An episode starts at an alarm (``gap >= high``, or ``gap >= mixed`` when the step's uniform
    draw is below ``mix``). From the next step on, a counter rises by one at every step with
    ``gap < low`` and falls by one (not below zero) at every other step; the episode resolves at
    the step where it reaches ``resolve_after``. With ``P`` the running sum of those +-1 steps,
    the counter at step ``k`` of an episode started at ``t`` is ``P[k] - min(P[t..k])``, so each
    episode is found with a few array operations on the steps it covers.
    """
    _streams, steps = gaps.shape
    alarm = gaps >= high
    if mixed is not None and uniforms is not None and mix > 0:
        alarm |= (gaps >= mixed) & (uniforms < mix)
    rows = np.flatnonzero(alarm.any(axis=1))
    if rows.size == 0:
        return 0
    walk = np.cumsum(np.where(gaps[rows] < low, 1, -1), axis=1, dtype=np.int32)
    alarm_rows, alarm_cols = np.nonzero(alarm[rows])
    bounds = np.searchsorted(alarm_rows, np.arange(rows.size + 1))
    starts = 0
    span = 4 * resolve_after
    for r in range(rows.size):
        cols = alarm_cols[bounds[r] : bounds[r + 1]]  # this row's alarm steps, ascending
        p = walk[r]
        t = int(cols[0])
        while True:
            starts += 1
            end = -1  # the step that resolves the episode started at t
            lo, width = t, span
            floor = int(p[t])
            while lo + 1 < steps:
                seg = p[lo + 1 : lo + 1 + width]
                level = np.minimum(np.minimum.accumulate(seg), floor)
                hit = np.flatnonzero(seg - level >= resolve_after)
                if hit.size:
                    end = lo + 1 + int(hit[0])
                    break
                floor = int(level[-1])
                lo += seg.shape[0]
                width *= 2
            if end < 0 or end + 1 >= steps:
                break
            k = int(np.searchsorted(cols, end + 1))
            if k >= cols.size:
                break
            t = int(cols[k])
    return starts


def _search(
    gaps: npt.NDArray[np.int64],
    ert: float,
    ratio: float,
    resolve_after: int,
    rng: np.random.Generator,
) -> tuple[int, int, int, float, float]:
    """Thresholds whose simulated start rate is ``1 / ert``: ``(high, low, mixed, mix, rate)``."""
    total = gaps.size
    target = 1.0 / ert
    candidates = np.unique(gaps)

    def rate(i: int) -> float:
        h = int(candidates[i])
        return _count_starts(gaps, h, math.ceil(ratio * h), resolve_after) / total

    top = candidates.shape[0] - 1
    if rate(top) > target:  # even the largest simulated gap alarms too often
        h = int(candidates[top]) + 1
        return h, math.ceil(ratio * h), h, 0.0, 0.0
    # The start rate rises as the threshold falls, then falls again once thresholds are so
    # low that episodes never close. Scan a grid from the top for the first threshold that
    # alarms too often; the target then lies between it and the grid point above.
    grid = sorted({int(i) for i in np.linspace(top, 0, 33).round()}, reverse=True)
    rates = {}
    hi = top
    lo = -1
    for i in grid:
        rates[i] = rate(i)
        if rates[i] > target:
            lo = i
            break
        hi = i
    if lo < 0:
        # No threshold alarms as often as asked: take the most sensitive one that still lets
        # episodes close (the peak of the rate curve), and report the rate it reaches.
        peak = max(rates, key=lambda i: rates[i])
        h = int(candidates[peak])
        return h, math.ceil(ratio * h), h, 0.0, rates[peak]
    while hi - lo > 1:  # invariant: rate(lo) > target >= rate(hi)
        mid = (lo + hi) // 2
        if rate(mid) > target:
            lo = mid
        else:
            hi = mid
    high, mixed = int(candidates[hi]), int(candidates[lo])
    low = math.ceil(ratio * high)
    uniforms = rng.random(gaps.shape)

    def mixed_rate(q: float) -> float:
        return _count_starts(gaps, high, low, resolve_after, mixed, q, uniforms) / total

    q_lo, q_hi = 0.0, 1.0  # rate(q) rises with q from rate(hi) <= target to about rate(lo)
    for _ in range(6):
        q = (q_lo + q_hi) / 2
        if mixed_rate(q) > target:
            q_hi = q
        else:
            q_lo = q
    q = (q_lo + q_hi) / 2
    return high, low, mixed, q, mixed_rate(q)


def _shape(m: int, observations: int) -> tuple[int, int]:
    # long streams relative to the window, so episodes reach their stationary rhythm
    steps = int(min(max(10 * m, 2_000), observations // 16))
    streams = max(16, observations // steps)
    return streams, steps


@lru_cache(maxsize=256)
def _continuous(
    n: int, m: int, ert: float, ratio: float, resolve_after: int, seed: int, stride: int
) -> KSCalibration:
    started = time.perf_counter()
    obs = simulation_budget(ert)
    streams, steps = _shape(m, obs)
    cells = np.ones(n + 1)
    j = np.arange(n + 1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    gaps = _simulate(cells, np.minimum(j + 1, n), j, n, m, streams, steps, rng)
    return _finish(gaps, ert, ratio, resolve_after, rng, "continuous", started, stride)


def _finish(
    gaps: npt.NDArray[np.int64],
    ert: float,
    ratio: float,
    resolve_after: int,
    rng: np.random.Generator,
    model: Literal["continuous", "discrete"],
    started: float,
    stride: int,
) -> KSCalibration:
    observations = gaps.size
    # a detector tested every `stride` observations sees one column in `stride`; its ERT in
    # tests is ert / stride, and its rate per observation is the rate per test / stride
    tested = gaps[:, stride - 1 :: stride] if stride > 1 else gaps
    ert_tests = ert / stride
    if 150 * ert_tests > tested.size:
        high, low, rate = _extrapolate(tested, ert_tests, ratio, resolve_after)
        seconds = time.perf_counter() - started
        return KSCalibration(
            high, low, high, 0.0, ert, rate / stride, model, observations, seconds, True
        )
    high, low, mixed, mix, rate = _search(tested, ert_tests, ratio, resolve_after, rng)
    seconds = time.perf_counter() - started
    return KSCalibration(high, low, mixed, mix, ert, rate / stride, model, observations, seconds)


def calibrate_gap(
    atom_counts: npt.ArrayLike,
    window_size: int,
    ert: float,
    *,
    resolve_ratio: float = 0.6,
    resolve_after: int | None = None,
    seed: int = 0,
    stride: int = 1,
) -> KSCalibration:
    """Calibrate the alarm threshold of a sliding KS test to ``ert``.

    Parameters
    ----------
    atom_counts : array-like of int
        Multiplicities of the reference's sorted distinct values.
    window_size : int
        The (count) window ``m``; the test runs once it is full, every ``stride`` observations.
    ert : float
        Target mean number of observations between false alarms when nothing drifts.
    resolve_ratio, resolve_after
        The detector's hysteresis (see :class:`~detectors.IncrementalKS`); ``resolve_after``
        counts tests.
    seed : int
        Seed of the simulation.
    stride : int
        Observations between tests: 1 for :class:`~detectors.IncrementalKS`, the detector's
        ``stride`` for :class:`~detectors.WindowedKS`.

    Returns
    -------
    KSCalibration

    Examples
    --------
    >>> cal = calibrate_gap([1] * 200, 50, 500.0, resolve_after=25)
    >>> cal.model, 0.7 < cal.simulated_rate * 500 < 1.3
    ('continuous', True)
    """
    counts = np.asarray(atom_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 1).any():
        raise ValueError("atom_counts must be a non-empty 1-D array of positive counts")
    if not (isinstance(stride, int) and stride >= 1):
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    n = int(counts.sum())
    m = int(window_size)
    after = resolve_after or m
    check_ert(ert, m, after, stride)
    if (n - counts.size) / n <= CONTINUOUS_TIE_FRACTION:
        return _continuous(n, m, float(ert), float(resolve_ratio), after, seed, stride)
    started = time.perf_counter()
    obs = simulation_budget(ert)
    streams, steps = _shape(m, obs)
    cum = np.cumsum(counts)
    rng = np.random.default_rng(seed)
    gaps = _simulate(counts.astype(np.float64), cum, cum, n, m, streams, steps, rng)
    return _finish(gaps, float(ert), float(resolve_ratio), after, rng, "discrete", started, stride)
