"""Sensitivity of river's drift detectors calibrated to an expected run time (ERT).

``ADWINDetector(ert=...)``, ``KSWINDetector(ert=...)`` and ``PageHinkleyDetector(ert=...)``
choose river's sensitivity parameter (ADWIN ``delta``, KSWIN ``alpha``, PageHinkley
``threshold``) so that, on streams drawn from the reference when nothing drifts, drift episodes
start on average once per ``ert`` observations -- counted as the adapter counts them: a river
detection opens an episode, which closes after ``resolve_after`` updates without a detection.

How the null streams are simulated
----------------------------------
As for :mod:`detectors.calibration`, each simulated stream first draws a distribution ``F*``
from the Bayesian bootstrap of the reference (Rubin, 1981), then its observations from ``F*``.
river's detectors look at values, not ranks, so ``F*`` lives on the reference's own scale:

* **Continuous references** (at most 2 % tied values): Dirichlet(1, ..., 1) mass on the
  ``n + 1`` gaps between sorted reference values, uniform within an inner gap and at the
  extreme value for the two outer ones.
* **Tied references** (counts, flags, rounded values): Dirichlet(counts) on the distinct
  values, so simulated observations tie exactly as real discrete data do.

PageHinkley's threshold is in the data's units; calibrating on these streams puts it on the
reference's scale (its ``delta`` and forgetting factor stay as given).

How the parameter is searched
-----------------------------
* **ADWIN and PageHinkley** are cheap (river runs them at ~2-4 million updates/s through the
  adapter), so the simulation builds the adapter itself with a candidate value and feeds it the
  null streams with ``update_many``, counting ``drift_started`` transitions. Every candidate
  sees the same streams (common random numbers). The search runs on the log scale of the
  parameter: a grid scan from the conservative end finds the first value that alarms too often
  (the start rate falls again for very sensitive values, whose episodes never close), a
  bisection narrows the bracket, and a log-linear interpolation between its ends hits the
  target. Candidates far from the target stop early once their count leaves no doubt. The
  simulation budget is ``60 * ert`` observations, at least 120,000 and at most 1,200,000 (under
  a second per candidate), in streams of about ten run times each (a stream holding only a
  couple of false episodes undercounts them); beyond ``ert = 20,000`` the target is not
  observable within the budget, and
  the value is extrapolated (log start rate linear in ``log delta`` for ADWIN, in ``threshold``
  for PageHinkley) from values calibrated at two observable ERTs.
* **KSWIN** runs a scipy ``ks_2samp`` per update (~7,000 updates/s), so candidates cannot each
  be simulated. Its p-value between two detections does not depend on ``alpha``, and a
  detection resets river's KSWIN completely (window emptied, sampler reseeded). So the
  simulation runs river's KSWIN once per stream with ``alpha=0`` (it never fires), records its
  p-value after every update, and replays the adapter for every alarm level at once: a
  detection at the first full-window update with ``p <= alpha``, then ``window_size`` updates
  of refill before the next test -- what the adapter does, except that the sampler's random
  indices after a reset continue river's sequence instead of restarting it (the same
  distribution; the first detection is identical). ``p`` takes one value per attainable
  statistic ``D = k / stat_size``, so KSWIN can only realise a *ladder* of ERTs (consecutive
  rungs ~2-3x apart with ``stat_size=30``); the calibration takes the rung nearest the target
  on the log scale and reports its rate. Budget: ``30 * ert`` observations, at least 20,000 and
  at most 30,000 (river's KSWIN runs ~7,000 updates/s on an idle core: about 5 s; 20-30 s were
  measured on a shared, loaded 2-core machine); rungs with fewer than 10 simulated starts are
  extrapolated (log start rate linear in the rung), up to ``ert = 30,000`` (about two rungs
  beyond what the budget observes with ``stat_size=30``). The log rate falls faster than
  linearly over the rungs, so an extrapolated rung is conservative: at ``ert = 10,000`` the
  measured false-alarm rate was about half the target (BENCHMARKS.md).

References
----------
.. [1] Rubin, D. B. (1981). The Bayesian bootstrap. Annals of Statistics 9, 130-134.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from river import drift
from scipy import stats

from detectors.base import DRIFT_STARTED
from detectors.calibration import CONTINUOUS_TIE_FRACTION, MIN_ERT_EPISODES

__all__ = [
    "MAX_ERT",
    "RiverCalibration",
    "calibrate_direct",
    "calibrate_kswin",
    "check_river_ert",
    "null_streams",
]

#: Longest ``ert`` accepted per parameter: beyond it the extrapolation would reach too far past
#: what the simulation budget observes (``ert`` 20,000 for ADWIN and PageHinkley, about 3,000
#: for KSWIN).
MAX_ERT = {"delta": 1_000_000, "threshold": 1_000_000, "alpha": 30_000}

#: Simulated starts a direct search wants at the target (sets the budget).
DIRECT_STARTS = 60
DIRECT_MIN_OBSERVATIONS = 120_000
DIRECT_MAX_OBSERVATIONS = 1_200_000
KSWIN_STARTS = 30
KSWIN_MIN_OBSERVATIONS = 20_000
KSWIN_MAX_OBSERVATIONS = 30_000
#: A rate is taken as observed when the simulation counted at least this many starts.
OBSERVED_STARTS = 10


@dataclass(frozen=True, slots=True)
class RiverCalibration:
    """The outcome of a river calibration.

    Attributes
    ----------
    parameter : {"delta", "alpha", "threshold"}
        The river parameter that was calibrated.
    value : float
        Its calibrated value.
    ert : float
        The target expected run time (observations per false episode start).
    simulated_rate : float
        Episode starts per observation in the simulation at ``value`` (the fitted rate when
        ``extrapolated``). Can differ from ``1 / ert`` when the target is not attainable: below
        the shortest ERT the detector can realise, or between two rungs of KSWIN's ladder.
    model : {"continuous", "discrete"}
        Which null model was simulated.
    observations : int
        Simulated observations (per candidate for ADWIN and PageHinkley).
    evaluations : int
        Candidate values simulated (early-stopped ones included); 1 for KSWIN.
    seconds : float
        Wall time of the calibration.
    extrapolated : bool
        True when the target lies beyond what the budget observes.
    """

    parameter: str
    value: float
    ert: float
    simulated_rate: float
    model: Literal["continuous", "discrete"]
    observations: int
    evaluations: int
    seconds: float
    extrapolated: bool = False

    @property
    def simulated_ert(self) -> float:
        """Observations per simulated false episode start at ``value`` (inf if none)."""
        return 1.0 / self.simulated_rate if self.simulated_rate > 0 else math.inf


def check_river_ert(ert: object, parameter: str, shortest_episode: int) -> None:
    """Raise ``ValueError`` unless ``ert`` can be calibrated for ``parameter``.

    ``shortest_episode`` is the fewest observations from one false episode start to the next.
    """
    if not (
        isinstance(ert, int | float)
        and not isinstance(ert, bool)
        and math.isfinite(ert)
        and ert > 1
    ):
        raise ValueError(f"ert must be a finite number of observations > 1, got {ert!r}")
    shortest = MIN_ERT_EPISODES * shortest_episode
    if ert < shortest:
        raise ValueError(
            f"ert={ert!r} is too short: a false drift episode alone lasts {shortest_episode} "
            f"observations or more; use ert >= {shortest} or a smaller resolve_after"
        )
    limit = MAX_ERT[parameter]
    if ert > limit:
        raise ValueError(
            f"ert={ert!r} is above the longest ERT calibrated for {parameter} ({limit:,}): the "
            "simulation budget observes far shorter run times and would have to extrapolate "
            f"too far; use ert <= {limit:,}"
        )


def null_streams(
    reference: npt.ArrayLike, streams: int, steps: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], Literal["continuous", "discrete"]]:
    """Null streams (``streams x steps``) from Bayesian-bootstrap draws of the reference."""
    ref = np.sort(np.asarray(reference, dtype=np.float64).ravel())
    values, counts = np.unique(ref, return_counts=True)
    n = ref.size
    out = np.empty((streams, steps), dtype=np.float64)
    if (n - values.size) / n <= CONTINUOUS_TIE_FRACTION:
        for b in range(streams):
            w = rng.gamma(np.ones(n + 1))
            cum = np.cumsum(w / w.sum())
            cell = np.minimum(np.searchsorted(cum, rng.random(steps), side="right"), n)
            left = ref[np.clip(cell - 1, 0, n - 1)]
            right = ref[np.minimum(cell, n - 1)]
            out[b] = left + (right - left) * rng.random(steps)  # outer cells: left == right
        return out, "continuous"
    for b in range(streams):
        w = rng.gamma(counts.astype(np.float64))
        cum = np.cumsum(w / w.sum())
        idx = np.minimum(np.searchsorted(cum, rng.random(steps), side="right"), values.size - 1)
        out[b] = values[idx]
    return out, "discrete"


def _shape(budget: int, ert: float, shortest_episode: int) -> tuple[int, int]:
    """KSWIN's streams: short ones (``budget / 16``), many draws of ``F*``."""
    steps = int(min(max(10 * shortest_episode, 2 * ert, 5_000), budget // 16))
    return max(16, budget // steps), steps


def _direct_shape(budget: int, ert: float, shortest_episode: int) -> tuple[int, int]:
    """Streams of ~10 run times (at least 7.5): a stream that holds only a couple of false
    episodes undercounts them when episodes come more regularly than a Poisson process (their
    renewal count lags ``length / ert``), and the calibration would then set the detector too
    sensitive -- measured as +10-30 % false alarms on long streams with 2-run-time streams."""
    steps = int(min(max(10 * shortest_episode, 10 * ert, 5_000), budget // 8))
    return max(8, budget // steps), steps


# ---------------------------------------------------------------------------- direct search
class _Rates:
    """Start rates of adapters built by ``make(value)`` on fixed null streams."""

    def __init__(self, make: Callable[[float], Any], streams: npt.NDArray[np.float64]) -> None:
        self.make = make
        self.streams = streams
        self.evaluations = 0
        self.full: dict[float, int] = {}  # value -> starts over all streams

    def starts(self, value: float, target: float | None = None) -> tuple[float, bool]:
        """``(rate, complete)``; with ``target``, stop early once the count is decisive."""
        if value in self.full:
            return self.full[value] / self.streams.size, True
        self.evaluations += 1
        count = 0
        seen = 0
        rows, steps = self.streams.shape
        for b in range(rows):
            det = self.make(value)
            det.update_many(self.streams[b])
            count += sum(1 for t in det.transitions if t.kind == DRIFT_STARTED)
            seen += steps
            if target is not None and b + 1 < rows:
                expected = target * seen
                if (expected >= 4 and count >= 4 * expected) or (
                    expected >= 16 and count <= expected / 4
                ):
                    return count / seen, False
        self.full[value] = count
        return count / self.streams.size, True


def _solve(
    rates: _Rates, lo: float, hi: float, target: float, grid: int = 17, halvings: int = 6
) -> tuple[float, float, bool]:
    """The value (between ``lo``, conservative, and ``hi``, sensitive; log scale) whose start
    rate is ``target``: ``(value, rate at value, attained)``."""
    us = np.linspace(math.log(lo), math.log(hi), grid)
    below_u: float | None = None
    above_u: float | None = None
    best_u, best_rate = float(us[0]), -1.0
    for u in us.tolist():
        r, _ = rates.starts(math.exp(u), target)
        if r > best_rate:
            best_u, best_rate = u, r
        if r > target:
            above_u = u
            break
        below_u = u
    if above_u is None:  # the target is shorter than any value attains: the most sensitive one
        value = math.exp(best_u)
        return value, rates.starts(value)[0], False
    if below_u is None:  # even the most conservative value alarms too often
        value = math.exp(float(us[0]))
        return value, rates.starts(value)[0], False
    for _ in range(halvings):
        mid = (below_u + above_u) / 2
        r, _ = rates.starts(math.exp(mid), target)
        if r > target:
            above_u = mid
        else:
            below_u = mid
    r_lo, _ = rates.starts(math.exp(below_u))
    r_hi, _ = rates.starts(math.exp(above_u))
    if r_lo > 0 and r_hi > r_lo:  # log-linear interpolation inside the bracket
        f = (math.log(target) - math.log(r_lo)) / (math.log(r_hi) - math.log(r_lo))
        u = below_u + min(max(f, 0.0), 1.0) * (above_u - below_u)
    else:
        u = below_u
    value = math.exp(u)
    return value, rates.starts(value)[0], True


def calibrate_direct(
    make: Callable[[float], Any],
    reference: npt.ArrayLike,
    ert: float,
    *,
    parameter: Literal["delta", "threshold"],
    conservative: float,
    sensitive: float,
    shortest_episode: int,
    seed: int = 0,
) -> RiverCalibration:
    """Calibrate ADWIN's ``delta`` or PageHinkley's ``threshold`` by simulating the adapter.

    Parameters
    ----------
    make : callable
        ``make(value)`` builds the adapter with the parameter set to ``value`` (and every other
        argument as the calibrated detector has it).
    reference : array-like of float
        The reference sample the null streams are drawn from.
    ert : float
        Target mean number of observations between false episode starts.
    parameter : {"delta", "threshold"}
        The calibrated parameter's name.
    conservative, sensitive : float
        Ends of the (log-scale) search range: the least and the most sensitive value.
    shortest_episode : int
        The fewest observations between two false episode starts (sets the stream length).
    seed : int
        Seed of the simulation.

    Returns
    -------
    RiverCalibration
    """
    started = time.perf_counter()
    budget = int(min(max(DIRECT_STARTS * ert, DIRECT_MIN_OBSERVATIONS), DIRECT_MAX_OBSERVATIONS))
    streams, steps = _direct_shape(budget, ert, shortest_episode)
    rng = np.random.default_rng(seed)
    xs, model = null_streams(reference, streams, steps, rng)
    rates = _Rates(make, xs)
    observable = xs.size / DIRECT_STARTS
    if ert <= observable:
        value, rate, _ = _solve(rates, conservative, sensitive, 1.0 / ert)
        extrapolated = False
    else:
        # two observable ERTs, then a straight line in (x, log rate) out to the target
        v1, r1, ok1 = _solve(rates, conservative, sensitive, 1.0 / observable)
        v2, r2, ok2 = _solve(rates, conservative, sensitive, 4.0 / observable)
        x1, x2 = (math.log(v1), math.log(v2)) if parameter == "delta" else (v1, v2)
        if not (ok1 and ok2 and r1 > 0 and r2 > r1 and x1 != x2):
            value, rate, extrapolated = v1, r1, False
        else:
            slope = (math.log(r2) - math.log(r1)) / (x2 - x1)
            x = x1 + (math.log(1.0 / ert) - math.log(r1)) / slope
            value = math.exp(x) if parameter == "delta" else x
            lo, hi = sorted((conservative, sensitive))
            value = min(max(value, lo), hi)
            rate, extrapolated = 1.0 / ert, True
    return RiverCalibration(
        parameter,
        float(value),
        float(ert),
        float(rate),
        model,
        int(xs.size),
        rates.evaluations,
        time.perf_counter() - started,
        extrapolated,
    )


# ---------------------------------------------------------------------------- KSWIN
def kswin_ladder(stat_size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """KSWIN's alarm levels: rungs ``k`` (alarm at ``D >= k / stat_size``, all with ``D > 0.1``
    as river requires) and each rung's ``alpha``, between the p-values of ``D = k / s`` and
    ``D = (k - 1) / s`` (geometric midpoint), so ``p <= alpha`` holds exactly at ``D >= k / s``.
    """
    s = stat_size
    base = np.arange(s, dtype=np.float64)
    first = math.floor(0.1 * s) + 1
    p = {
        k: float(stats.ks_2samp(base, base + k, method="auto").pvalue)
        for k in range(first - 1, s + 1)
    }
    ks = np.arange(first, s + 1, dtype=np.int64)
    alphas = np.array([math.sqrt(p[k] * p[k - 1]) for k in ks.tolist()])
    return ks, alphas


def _kswin_pvalues(
    xs: npt.NDArray[np.float64], window_size: int, stat_size: int, river_seed: int
) -> npt.NDArray[np.float64]:
    """river's KSWIN p-value after every update (1 before the window is full); never fires."""
    det = drift.KSWIN(alpha=0.0, window_size=window_size, stat_size=stat_size, seed=river_seed)
    out = np.ones(xs.size, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        for i, x in enumerate(xs.tolist()):
            det.update(x)
            if i >= window_size - 1:
                out[i] = det.p_value
    return out


def _kswin_starts(
    hits: npt.NDArray[np.bool_], window_size: int, resolve_after: int
) -> tuple[int, int]:
    """``(episode starts, detections)`` of the adapter on one stream's alarm indicator."""
    n = hits.size
    big = n
    idx = np.arange(n)
    nxt = np.minimum.accumulate(np.where(hits, idx, big)[::-1])[::-1]
    starts = detections = 0
    t = window_size - 1
    last = -(10**12)
    while t < n:
        d = int(nxt[t])
        if d >= n:
            break
        detections += 1
        if d - last > resolve_after:
            starts += 1
        last = d
        t = d + window_size  # reset: the window refills before the next test
    return starts, detections


def calibrate_kswin(
    reference: npt.ArrayLike,
    ert: float,
    *,
    window_size: int,
    stat_size: int,
    resolve_after: int,
    river_seed: int,
    seed: int = 0,
) -> RiverCalibration:
    """Calibrate KSWIN's ``alpha`` to ``ert``: the rung of its alarm ladder nearest the target.

    Parameters
    ----------
    reference : array-like of float
        The reference sample the null streams are drawn from.
    ert : float
        Target mean number of observations between false episode starts.
    window_size, stat_size, resolve_after : int
        The adapter's arguments.
    river_seed : int
        Seed of river's KSWIN sampler (as the adapter passes it).
    seed : int
        Seed of the simulated streams.

    Returns
    -------
    RiverCalibration
    """
    started = time.perf_counter()
    budget = int(min(max(KSWIN_STARTS * ert, KSWIN_MIN_OBSERVATIONS), KSWIN_MAX_OBSERVATIONS))
    shortest = max(resolve_after + 1, window_size)
    streams, steps = _shape(budget, ert, shortest)
    rng = np.random.default_rng(seed)
    xs, model = null_streams(reference, streams, steps, rng)
    pvalues = [_kswin_pvalues(row, window_size, stat_size, river_seed) for row in xs]
    rungs, alphas = kswin_ladder(stat_size)
    counts = np.array(
        [
            sum(_kswin_starts(p <= a, window_size, resolve_after)[0] for p in pvalues)
            for a in alphas.tolist()
        ]
    )
    total = xs.size
    rates = counts / total
    # rungs above the peak are on the conservative side, where the rate falls as k grows
    peak = int(np.argmax(counts))
    target = 1.0 / ert
    side = np.arange(peak, rungs.size)
    observed = side[counts[side] >= OBSERVED_STARTS]
    extrapolated = False
    if counts[peak] == 0 or rates[peak] <= target:
        choice, rate = peak, float(rates[peak])
    elif observed.size and rates[observed[-1]] <= target:
        # the target lies within the observed rungs: the nearest on the log scale
        cand = side[counts[side] > 0]
        logs = np.abs(np.log(rates[cand] * ert))
        choice = int(cand[int(np.argmin(logs))])
        rate = float(rates[choice])
    else:
        # fewer than OBSERVED_STARTS beyond the last observed rung: log rate linear in k
        fit = observed[-4:] if observed.size >= 2 else side[:2]
        if fit.size < 2 or (counts[fit] == 0).any():
            choice, rate = int(side[-1]), float(rates[side[-1]])
        else:
            b1, b0 = np.polyfit(rungs[fit].astype(float), np.log(rates[fit]), 1)
            pred = b0 + b1 * rungs.astype(float)
            beyond = np.arange(int(fit[-1]), rungs.size)
            logs = np.abs(pred[beyond] - math.log(target))
            choice = int(beyond[int(np.argmin(logs))])
            extrapolated = choice > int(observed[-1]) if observed.size else True
            rate = float(math.exp(pred[choice])) if extrapolated else float(rates[choice])
    return RiverCalibration(
        "alpha",
        float(alphas[choice]),
        float(ert),
        rate,
        model,
        int(total),
        1,
        time.perf_counter() - started,
        extrapolated,
    )
