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
  tie structure. With ``share=True``, references whose quantised tie structures agree
  (:mod:`detectors.signature`) share one calibration of their signature's canonical reference.
* **Tied references with a guarantee**: each atom of ``c`` reference values keeps ``c - 1`` of
  Dirichlet mass and gives one to the gaps beside it (Dirichlet(1) on each of the ``K + 1``
  gaps between and beyond the distinct values). The truth's mass at or below the ``j``-th
  value is then Beta(``N_j``, ``n + 1 - N_j``) and its mass below it Beta(``N_{j-1} + 1``,
  ``n - N_{j-1}``) -- the Clopper-Pearson bounds of the cumulative counts ``N`` -- at every
  cut; Dirichlet(counts) is narrower by one count on each side. For a reference without ties
  this is the continuous model. Thresholds stay on gaps the reference's own values can
  produce (simulated values between them never occur in real tied data).

How a guarantee is calibrated
-----------------------------
With ``guarantee=p`` the null distribution is drawn :data:`GUARANTEE_DRAWS` times and each
draw's false-start rate is counted on its own streams. The threshold is set so that the ``k``-th
smallest of those rates is :data:`GUARANTEE_FACTOR` ``/ ert``, where ``k``
(:func:`guarantee_order`) is the order statistic that bounds the ``p``-quantile of the rate from
above with confidence :data:`GUARANTEE_CONFIDENCE`: the margin the finite number of draws needs,
derived from the Beta law of an order statistic's coverage, not tuned on data (64 draws and
``p = 0.9``: the 62nd smallest rate, whose coverage is Beta(62, 3), mean 0.954, at least 0.9 with
probability 0.961; the 61st would give 0.894). The simulation's seed is a hash of the detector's
seed, the calibrated counts and the configuration (:func:`simulation_seed`): independent between
references, identical for the same reference, with or without a guarantee.

The simulation is the detector's own null process, compiled (:mod:`detectors.kernels`): the
window, a test after every event (or every ``stride``), the exact gap, episodes with the resolve
tally and the randomised boundary. One run at a low level keeps every stretch that any higher
threshold could alarm on, so the start rate of every candidate threshold is counted exactly on
the same streams; the threshold is searched by bisection over the attainable gaps, then the
alarm is randomised between the two bracketing ones to hit the target. Up to
:data:`MAX_OBSERVATIONS` simulated observations (about 150 false alarms' worth) are used
(:data:`CONTINUOUS_MAX_OBSERVATIONS` for continuous references and tied ones of at most
:data:`FEW_VALUES` distinct values); ERTs beyond that budget over :data:`DIRECT_STARTS` take the
threshold from the fitted tail of the exactly counted start rates.

References
----------
.. [1] Rubin, D. B. (1981). The Bayesian bootstrap. Annals of Statistics 9, 130-134.
.. [2] Ross, G. J., Adams, N. M. (2012). Two nonparametric control charts for detecting
   arbitrary distribution changes. Journal of Quality Technology 44, 102-116.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from detectors.kernels import count_group_starts, count_starts, fires, simulate_segments
from detectors.signature import tie_signature

__all__ = [
    "CONTINUOUS_TIE_FRACTION",
    "DEFAULT_GUARANTEE",
    "GUARANTEE_CONFIDENCE",
    "KSCalibration",
    "calibrate_gap",
    "calibrate_null_statistics",
    "check_ert",
    "check_guarantee",
    "guarantee_order",
    "shared_calibrations",
    "simulation_budget",
    "simulation_seed",
]

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
        True when ``ert`` lies beyond what the simulation observes directly (fewer than
        :data:`DIRECT_STARTS` simulated false starts at the target): the threshold then comes
        from a quadratic fit of the log start rate against the gap over the simulated tail (each
        level's starts counted exactly on the same streams), and ``simulated_rate`` is the
        fitted one.
    guarantee : float or None
        None: calibrated on the average over references. Else the share of references whose
        conditional rate is calibrated to at most ``GUARANTEE_FACTOR / ert``
        (``simulated_rate`` is then the rate of the draws' order statistic that bounds that
        quantile, see :func:`guarantee_order`).
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
    guarantee: float | None = None

    @property
    def floor(self) -> int:
        """The smallest gap that can raise an alarm."""
        return self.gap_mixed if self.mix > 0 else self.gap_high

    def fires(self, gap: int, index: int, seed: int) -> bool:
        """The alarm rule on an exact gap; at the randomised boundary the draw is a hash of
        ``(index, seed)``, so the same observation always decides the same way."""
        return bool(fires(gap, self.gap_high, self.gap_mixed, self.mix, index, seed))

    def threshold(self, n: int, m: int) -> float:
        """The alarm threshold as a KS statistic ``D`` for reference ``n`` and window ``m``."""
        return self.gap_high / (n * m)


#: Simulated observations at most per calibration (about 3 s for a 1,000-value continuous
#: reference on one core; far less for references with few distinct values).
MAX_OBSERVATIONS = 30_000_000

#: Continuous calibrations are computed once per configuration and shared by every stream, so
#: they simulate more: direct search up to ``ert = 10**6`` (about 10-20 s, once).
CONTINUOUS_MAX_OBSERVATIONS = 100_000_000

#: Tied references with at most this many distinct values simulate up to
#: :data:`CONTINUOUS_MAX_OBSERVATIONS` as well: their lattice has too few levels to fit a tail
#: on (a flag's gaps step by ``n``), and their compiled few-slot path
#: (:data:`detectors.kernels.PREFIX`) makes the longer run affordable (about 2-3 s at
#: ``ert >= 670,000``).
FEW_VALUES = 16

#: Direct search needs this many simulated false starts at the target rate; beyond, the
#: threshold comes from the fitted tail of the exactly counted start rates.
DIRECT_STARTS = 80

#: Levels with fewer simulated starts are not used to fit the tail.
TAIL_MIN_STARTS = 10

_KEPT_CAPACITY = 8_000_000

#: Simulations run again from a lower level when no simulated level alarms as often as the
#: target (the pilot run's level was too high: its few streams' draws of the null distribution
#: happened to sit far from the reference), each from a level whose pilot share of tested gaps
#: above it is :data:`LEVEL_BOOST` times larger.
LEVEL_RETRIES = 2
LEVEL_BOOST = 8.0

#: With a guarantee, the conditional rate of at least that share of references is at most
#: this multiple of the target.
GUARANTEE_FACTOR = 1.3

#: Draws of the null distribution (plausible truths given the reference) behind a guarantee.
GUARANTEE_DRAWS = 64

#: The recommended share of references whose conditional false-alarm rate is guaranteed.
DEFAULT_GUARANTEE = 0.9

#: Confidence, over the simulation's finite draws of the null distribution, that the share of
#: draws whose rate is within the guarantee's bound is at least the share asked (see
#: :func:`guarantee_order`).
GUARANTEE_CONFIDENCE = 0.9

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


@lru_cache(maxsize=64)
def guarantee_order(draws: int, share: float, confidence: float = GUARANTEE_CONFIDENCE) -> int:
    """Which order statistic of ``draws`` simulated rates a guarantee of ``share`` calibrates.

    The rates of the draws of the null distribution (plausible truths given the reference) are
    independent, so the share of the null distribution's mass whose rate lies at or below the
    ``k``-th smallest of ``draws`` of them is Beta(``k``, ``draws + 1 - k``) distributed
    (exactly, for a continuous law of the rate). Calibrating that order statistic to the bound
    makes the share at least ``share`` with probability ``P(Binomial(draws, share) <= k - 1)``;
    this returns the smallest ``k`` for which that probability is at least ``confidence``: the
    one-sided distribution-free upper confidence bound of the ``share``-quantile. (The plain
    empirical quantile covers ``share`` only about half the time, and on average less.) The
    rates are the draws' simulated ones, each counted on about 60 false alarms' worth of
    observations; that counting noise widens their law a little, so the bound is of the
    simulated rates' quantile, not of the exact conditional rates'.

    Parameters
    ----------
    draws : int
        Simulated draws of the null distribution (at least 1).
    share : float
        The guaranteed share, in (0, 1).
    confidence : float
        The confidence asked of the bound, in (0, 1).

    Returns
    -------
    int
        ``k`` in ``1 .. draws`` (``draws`` when even the largest rate gives less confidence).

    Examples
    --------
    >>> guarantee_order(64, 0.9), guarantee_order(64, 0.9, 0.5)
    (62, 59)
    """
    if draws < 1 or not 0.0 < share < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"need draws >= 1 and share, confidence in (0, 1); got {draws}, {share}, {confidence}"
        )
    cdf = 0.0
    for k in range(1, draws + 1):  # cdf = P(Binomial(draws, share) <= k - 1)
        cdf += math.comb(draws, k - 1) * share ** (k - 1) * (1.0 - share) ** (draws - k + 1)
        if cdf >= confidence:
            return k
    return draws


def simulation_seed(
    seed: int,
    atom_counts: npt.NDArray[np.int64],
    config: tuple[float | int | str | None, ...],
) -> int:
    """The simulation seed of a calibration: a hash of the detector's ``seed``, the reference's
    atom multiplicities and the configuration.

    References of one configuration thus get independent simulations -- with one seed for all,
    their thresholds would share one Monte Carlo error, which a mean over references (the
    average rule) does not average away, and the shares of references a guarantee holds for
    would move together -- while the same reference and configuration
    always get the same seed, hence the same thresholds (restores and replays rely on it).
    BLAKE2b of a fixed byte encoding, so the seed is the same in every process and platform
    (unlike :func:`hash`, which is salted per process).

    Parameters
    ----------
    seed : int
        The detector's seed.
    atom_counts : ndarray of int
        Multiplicities of the reference's sorted distinct values, as calibrated (a tie
        signature's canonical counts when calibrations are shared; ``n`` ones for a
        continuous reference).
    config : tuple
        Everything else the calibration depends on (window, ERT, hysteresis, stride,
        guarantee, model).

    Returns
    -------
    int
        A seed in ``[0, 2**31 - 2]`` (the compiled simulation takes 32-bit seeds; the pilot run
        uses the seed + 1).

    Examples
    --------
    >>> a = simulation_seed(0, np.array([900, 100]), (50, 1000.0))
    >>> a == simulation_seed(0, np.array([900, 100]), (50, 1000.0))
    True
    >>> a == simulation_seed(0, np.array([899, 101]), (50, 1000.0))
    False
    """
    h = hashlib.blake2b(digest_size=8, person=b"driftwatch-cal")
    h.update(repr((int(seed), *config)).encode())
    h.update(np.ascontiguousarray(atom_counts, dtype="<i8").tobytes())
    return int.from_bytes(h.digest(), "little") % (2**31 - 1)


def simulation_budget(
    ert: float,
    guarantee: float | None = None,
    *,
    continuous: bool = False,
    values: int | None = None,
) -> int:
    """Simulated observations used to calibrate for ``ert``: about 150 false alarms' worth
    (with a ``guarantee``, 60 per draw of the null distribution), at most
    :data:`MAX_OBSERVATIONS` (:data:`CONTINUOUS_MAX_OBSERVATIONS` for continuous references,
    and for tied ones of at most :data:`FEW_VALUES` distinct ``values``)."""
    per_ert = 150 if guarantee is None else 60 * GUARANTEE_DRAWS
    few = values is not None and values <= FEW_VALUES
    cap = CONTINUOUS_MAX_OBSERVATIONS if continuous or few else MAX_OBSERVATIONS
    return int(min(max(per_ert * ert, 400_000), cap))


@dataclass(frozen=True, slots=True)
class NullModel:
    """Where null observations fall, as the detector's slots, and how they are drawn.

    Attributes
    ----------
    cell_alpha : ndarray of float
        Per cell: the Dirichlet concentration of the Bayesian bootstrap (``bootstrap``), or the
        cell's probability (a known distribution, e.g. to measure a detector's real rate).
    cell_slot : ndarray of int
        The detector's slot of each cell.
    slot_ref : ndarray of int
        Reference values in each of the ``2K + 1`` slots.
    n : int
        Reference size.
    bootstrap : bool
        Draw each simulated stream's distribution from Dirichlet(``cell_alpha``).
    """

    cell_alpha: npt.NDArray[np.float64]
    cell_slot: npt.NDArray[np.int64]
    slot_ref: npt.NDArray[np.int64]
    n: int
    bootstrap: bool = True

    @classmethod
    def of_reference(cls, atom_counts: npt.NDArray[np.int64], continuous: bool) -> NullModel:
        """The Bayesian-bootstrap null model of a reference with these atom multiplicities."""
        k = atom_counts.shape[0]
        n = int(atom_counts.sum())
        if continuous:  # ranks only: n distinct values, mass on the n + 1 gaps between them
            slot_ref = np.zeros(2 * n + 1, dtype=np.int64)
            slot_ref[1::2] = 1
            return cls(np.ones(n + 1), 2 * np.arange(n + 1, dtype=np.int64), slot_ref, n)
        slot_ref = np.zeros(2 * k + 1, dtype=np.int64)
        slot_ref[1::2] = atom_counts
        cells = 2 * np.arange(k, dtype=np.int64) + 1
        return cls(atom_counts.astype(np.float64), cells, slot_ref, n)

    def split(self) -> NullModel:
        """Each atom of ``c`` reference values gives one value's mass to the gaps beside it."""
        counts = self.slot_ref[1::2]
        k = counts.shape[0]
        alpha = np.empty(2 * k + 1)
        alpha[0::2] = 1.0
        alpha[1::2] = counts - 1
        keep = alpha > 0
        slots = np.arange(2 * k + 1, dtype=np.int64)
        return NullModel(alpha[keep], slots[keep], self.slot_ref, self.n)

    def attainable(self, m: int, tied: bool = False) -> npt.NDArray[np.int64] | None:
        """Every value ``G = max |m R - n C|`` can take, sorted (None when too many to list).

        ``tied``: observations fall on the reference's values only (real tied data), so the
        cuts below the smallest and above the largest value always give 0.
        """
        ends = np.unique(np.cumsum(self.slot_ref))
        if tied:
            ends = ends[(ends > 0) & (ends < self.n)]
        if ends.shape[0] * (m + 1) > 4_000_000:
            return None
        c = self.n * np.arange(m + 1, dtype=np.int64)
        values = np.abs(m * ends[:, None] - c[None, :]).ravel()
        return np.unique(np.concatenate([np.zeros(1, dtype=np.int64), values]))


@dataclass(frozen=True, slots=True)
class NullRuns:
    """Simulated null gaps that any threshold at or above ``h_min`` can see (see
    :func:`detectors.kernels.simulate_segments`), and the observations they stand for.

    Streams come in ``groups`` of ``per_draw`` streams that share one draw of the null
    distribution (one plausible truth each); ``group_observations`` counts each group's.
    """

    gaps: npt.NDArray[np.int64]
    index: npt.NDArray[np.int64]
    bounds: npt.NDArray[np.int64]
    observations: int
    h_min: int
    resolve_after: int
    seed: int
    group_span: int = 1 << 62
    group_observations: tuple[int, ...] = ()

    def _check(self, high: int, mixed: int | None, mix: float) -> None:
        if high < self.h_min or (mix > 0 and mixed is not None and mixed < self.h_min):
            raise ValueError(f"thresholds below h_min={self.h_min} are not covered")

    def starts(self, high: int, low: int, mixed: int | None = None, mix: float = 0.0) -> int:
        """False episode starts of the detector's rule with these thresholds."""
        self._check(high, mixed, mix)
        return int(
            count_starts(
                self.gaps,
                self.index,
                self.bounds,
                int(high),
                int(low),
                int(high if mixed is None else mixed),
                float(mix),
                self.resolve_after,
                self.seed,
            )
        )

    def group_rates(
        self, high: int, low: int, mixed: int | None = None, mix: float = 0.0
    ) -> npt.NDArray[np.float64]:
        """False starts per observation in each group (each draw of the null distribution)."""
        self._check(high, mixed, mix)
        groups = len(self.group_observations)
        starts = count_group_starts(
            self.gaps,
            self.index,
            self.bounds,
            int(high),
            int(low),
            int(high if mixed is None else mixed),
            float(mix),
            self.resolve_after,
            self.seed,
            self.group_span,
            groups,
        )
        return starts / np.asarray(self.group_observations, dtype=np.float64)


def simulate(
    model: NullModel,
    m: int,
    observations: int,
    *,
    stride: int,
    h_min: int,
    ratio: float,
    resolve_after: int,
    seed: int,
    groups: int = 1,
) -> NullRuns:
    """Simulate about ``observations`` null observations of the detector; keep what matters.

    ``groups > 1`` draws the null distribution once per group of streams (for a guarantee
    over references) instead of once per stream.
    """
    steps = int(min(max(20 * m, 5_000), max(observations // (16 * groups), 2 * m)))
    streams = max(16, -(-observations // (steps - m + 1)))
    per_draw = 1 if groups == 1 else max(1, streams // groups)
    streams = per_draw * groups if groups > 1 else streams
    gaps, index, bounds, done, obs = simulate_segments(
        model.cell_alpha,
        model.cell_slot,
        model.slot_ref,
        model.n,
        m,
        streams,
        steps,
        stride,
        int(h_min),
        math.ceil(ratio * h_min),
        resolve_after,
        model.bootstrap,
        seed,
        max(_KEPT_CAPACITY, 2 * steps),
        per_draw,
    )
    per_stream = steps - m + 1
    full = done // per_draw if groups > 1 else 1
    group_obs = tuple([per_draw * per_stream] * full) if groups > 1 else (obs,)
    return NullRuns(
        gaps, index, bounds, obs, int(h_min), resolve_after, seed, per_draw * steps, group_obs
    )


def _lowest_level(
    model: NullModel, m: int, ert: float, stride: int, seed: int, boost: float = 1.0
) -> int:
    """A gap level whose start rate is safely above ``1 / ert``, from a short pilot run (the
    ``1 - share`` quantile of its tested gaps, ``share`` about ``60 boost / ert``)."""
    pilot = simulate(
        model, m, 200_000, stride=stride, h_min=0, ratio=0.0, resolve_after=1, seed=seed + 1
    )
    tested = pilot.gaps
    share = min(0.2, boost * max(60.0 / ert, 40.0 / tested.shape[0]))
    return int(np.quantile(tested, 1.0 - share, method="lower"))


#: A rate of the rule at thresholds ``(high, low, mixed, mix)``, per observation.
RateOf = Callable[[int, int, int, float], float]


def _search(
    rate: RateOf, candidates: npt.NDArray[np.int64], target: float, ratio: float
) -> tuple[int, int, int, float, float] | None:
    """Thresholds whose rate is ``target``: ``(high, low, mixed, mix, rate)``; None if no
    candidate alarms more often than ``target`` (see :func:`_peak`)."""

    def at(i: int) -> float:
        h = int(candidates[i])
        return rate(h, math.ceil(ratio * h), h, 0.0)

    top = candidates.shape[0] - 1
    if at(top) > target:  # even the largest simulated gap alarms too often
        h = int(candidates[top]) + 1
        return h, math.ceil(ratio * h), h, 0.0, 0.0
    # The start rate rises as the threshold falls, then falls again once thresholds are so
    # low that episodes never close. Scan a grid from the top for the first threshold that
    # alarms too often; the target then lies between it and the grid point above.
    grid = sorted({int(i) for i in np.linspace(top, 0, 33).round()}, reverse=True)
    seen: dict[int, float] = {}
    hi, lo = top, -1
    for i in grid:
        seen[i] = at(i)
        if seen[i] > target:
            lo = i
            break
        hi = i
    if lo < 0:
        return None
    while hi - lo > 1:  # invariant: at(lo) > target >= at(hi)
        mid = (lo + hi) // 2
        if at(mid) > target:
            lo = mid
        else:
            hi = mid
    high, mixed = int(candidates[hi]), int(candidates[lo])
    low = math.ceil(ratio * high)
    q_lo, q_hi = 0.0, 1.0  # the rate rises with q from at(hi) <= target to about at(lo)
    for _ in range(14):
        q = (q_lo + q_hi) / 2
        if rate(high, low, mixed, q) > target:
            q_hi = q
        else:
            q_lo = q
    q = (q_lo + q_hi) / 2
    return high, low, mixed, q, rate(high, low, mixed, q)


def _peak(
    rate: RateOf, candidates: npt.NDArray[np.int64], ratio: float
) -> tuple[int, int, int, float, float]:
    """The candidate of the highest rate, when none reaches the target (:func:`_search`)."""
    grid = sorted(
        {int(i) for i in np.linspace(candidates.shape[0] - 1, 0, 33).round()}, reverse=True
    )
    rates = {
        i: rate(int(candidates[i]), math.ceil(ratio * candidates[i]), int(candidates[i]), 0.0)
        for i in grid
    }
    peak = max(rates, key=lambda i: rates[i])
    h = int(candidates[peak])
    return h, math.ceil(ratio * h), h, 0.0, rates[peak]


def _never(h_min: int, ratio: float) -> tuple[int, int, int, float, float]:
    """Thresholds above every simulated gap (none reached ``h_min``): no simulated alarm."""
    h = h_min + 1
    return h, math.ceil(ratio * h), h, 0.0, 0.0


def _tail(
    rate: RateOf,
    levels: npt.NDArray[np.int64],
    target: float,
    ratio: float,
    resolution: float,
    attainable: npt.NDArray[np.int64] | None,
) -> tuple[int, int, int, float, float]:
    """Thresholds for a ``target`` rate beyond the simulation, from its fitted tail.

    The rate of every simulated level is counted exactly; ``log rate`` is fitted by a
    quadratic in the gap (Gaussian-like tails) over levels measured with at least
    :data:`TAIL_MIN_STARTS` starts (``resolution`` is the rate of one start), weighted by the
    square root of that count, and solved for ``target``. Where that fit does not fall (levels
    too close for their counting noise, or fewer than two of them), a straight line over every
    level with a start is solved instead, and where even that does not fall, the counts are
    searched directly. On a lattice, the alarm is randomised between the two attainable gaps
    around the solution so that the fitted rate hits it.
    """
    if levels.shape[0] > 80:
        levels = np.unique(levels[np.linspace(0, levels.shape[0] - 1, 80).round().astype(int)])
    counted: list[tuple[float, float, float]] = []  # (level, log rate, starts) of levels with any
    for h in levels.tolist():
        r = rate(int(h), math.ceil(ratio * h), int(h), 0.0)
        count = r / resolution
        if 1 <= count <= 50 * target / resolution + 5_000:
            counted.append((float(h), math.log(r), count))
    goal = math.log(target)
    fit = [p for p in counted if p[2] >= TAIL_MIN_STARTS]
    if len(fit) < 2:
        fit = []  # too few levels for the fit: the straight line over every level below
    hs = [p[0] for p in fit]
    logs = [p[1] for p in fit]
    weights = [math.sqrt(p[2]) for p in fit]
    scale = max(hs) if hs else 1.0
    x = np.asarray(hs) / scale
    # few levels (a coarse lattice): a straight line through the last two or three
    c2, c1, c0 = np.polyfit(x, logs, 2, w=weights) if len(hs) >= 4 else (0.0, 0.0, 0.0)
    half = min(len(hs) // 2, len(hs) - 2)
    b1, b0 = np.polyfit(x[half:], logs[half:], 1) if len(hs) >= 2 else (0.0, 0.0)

    def fitted(h: float) -> float:
        z = h / scale
        return c0 + c1 * z + c2 * z * z if c2 < 0 else b0 + b1 * z

    def solve() -> float:
        if c2 < 0:
            disc = c1 * c1 - 4 * c2 * (c0 - goal)
            return float((-c1 - math.sqrt(max(disc, 0.0))) / (2 * c2) * scale)
        return float((goal - b0) / b1 * scale) if b1 < 0 else math.inf

    root = solve() if hs else math.inf
    top = max((p[0] for p in counted), default=0.0)
    reach = top + (top - min((p[0] for p in counted), default=0.0))
    if not root <= reach:
        # the fit does not fall towards the target within the counted levels' span (levels
        # too close for their counting noise, or too few): a straight line over every level
        # with a start, weighted by its count
        c2 = 0.0
        b1 = 0.0
        if len(counted) >= 2 and top > counted[0][0]:
            scale = top
            b1, b0 = np.polyfit(
                [p[0] / scale for p in counted],
                [p[1] for p in counted],
                1,
                w=[math.sqrt(p[2]) for p in counted],
            )
        root = solve()
        if not root <= reach:  # no falling tail to fit at all: the counts searched directly
            searched = _search(rate, levels, target, ratio) if levels.size else None
            return _never(int(levels[-1]), ratio) if searched is None else searched
    if attainable is None:
        high = math.ceil(root)
        return high, math.ceil(ratio * high), high, 0.0, math.exp(fitted(high))
    i = min(int(np.searchsorted(attainable, root, side="left")), attainable.shape[0] - 1)
    high = int(attainable[i])
    mixed = int(attainable[i - 1]) if i > 0 else high
    r_hi, r_lo = math.exp(fitted(high)), math.exp(fitted(mixed))
    mix = 0.0 if r_lo <= r_hi else min(max((target - r_hi) / (r_lo - r_hi), 0.0), 1.0)
    return high, math.ceil(ratio * high), mixed, mix, target if mix > 0 else r_hi


def _calibrate(
    model: NullModel,
    m: int,
    ert: float,
    ratio: float,
    resolve_after: int,
    seed: int,
    stride: int,
    kind: Literal["continuous", "discrete"],
    guarantee: float | None,
) -> KSCalibration:
    started = time.perf_counter()
    attainable = model.attainable(m, tied=kind == "discrete")
    if guarantee is not None and kind == "discrete":
        model = model.split()
    budget = simulation_budget(
        ert, guarantee, continuous=kind == "continuous", values=model.slot_ref.shape[0] // 2
    )
    target = (1.0 if guarantee is None else GUARANTEE_FACTOR) / ert
    boost = 1.0
    for attempt in range(LEVEL_RETRIES + 1):
        h_min = _lowest_level(model, m, ert, stride, seed, boost=boost)
        rate, unit, runs = _rates(
            model, m, budget, ratio, resolve_after, seed, stride, h_min, guarantee
        )
        levels = np.unique(runs.gaps[runs.gaps >= runs.h_min])
        if attainable is not None:  # thresholds the reference's own lattice can reach
            levels = np.intersect1d(levels, attainable)
        extrapolated = unit * target < DIRECT_STARTS * (1.0 if guarantee is None else 0.3)
        if extrapolated:
            found = _tail(rate, levels, target, ratio, 1.0 / unit, attainable)
            break
        searched = _search(rate, levels, target, ratio) if levels.size else None
        if searched is not None:
            found = searched
            break
        if attempt == LEVEL_RETRIES or h_min == 0:  # the highest rate the rule reaches
            found = _peak(rate, levels, ratio) if levels.size else _never(h_min, ratio)
            break
        boost *= LEVEL_BOOST  # no simulated level alarms as often as the target: go lower
    high, low, mixed, mix, r = found
    seconds = time.perf_counter() - started
    return KSCalibration(
        high, low, mixed, mix, ert, r, kind, runs.observations, seconds, extrapolated, guarantee
    )


def _rates(
    model: NullModel,
    m: int,
    budget: int,
    ratio: float,
    resolve_after: int,
    seed: int,
    stride: int,
    h_min: int,
    guarantee: float | None,
) -> tuple[RateOf, float, NullRuns]:
    """The simulation from ``h_min``, the rate of the calibrated rule on it (the start rate, or
    with a guarantee the order statistic of the draws' rates) and the observations a start is
    counted over (one start's rate is ``1 / unit``)."""
    groups = 1 if guarantee is None else GUARANTEE_DRAWS
    runs = simulate(
        model,
        m,
        budget,
        stride=stride,
        h_min=h_min,
        ratio=ratio,
        resolve_after=resolve_after,
        seed=seed,
        groups=groups,
    )
    if guarantee is None:
        unit = float(runs.observations)

        def rate(high: int, low: int, mixed: int, mix: float) -> float:
            return runs.starts(high, low, mixed, mix) / unit

        return rate, unit, runs
    unit = float(min(runs.group_observations))
    k = guarantee_order(len(runs.group_observations), float(guarantee)) - 1

    def order_rate(high: int, low: int, mixed: int, mix: float) -> float:
        return float(np.partition(runs.group_rates(high, low, mixed, mix), k)[k])

    return order_rate, unit, runs


def calibrate_null_statistics(
    statistics: npt.NDArray[np.int64],
    ert: float,
    *,
    resolve_ratio: float,
    resolve_after: int,
    seed: int,
    started: float,
) -> KSCalibration:
    """Thresholds for a detector whose null statistic was simulated elsewhere.

    ``statistics`` holds, per simulated stream (rows), the detector's statistic on an integer
    lattice after every observation once its window is full. The alarm rule, the episodes and
    the threshold search are those of :func:`calibrate_gap`, randomised boundary included (the
    observation index of the boundary draw is the position in ``statistics``).
    """
    gaps = np.ascontiguousarray(statistics, dtype=np.int64)
    steps = gaps.shape[1]
    flat = gaps.ravel()
    index = np.arange(flat.shape[0], dtype=np.int64)
    bounds = np.arange(0, flat.shape[0] + 1, steps, dtype=np.int64)
    runs = NullRuns(flat, index, bounds, int(flat.shape[0]), 0, int(resolve_after), int(seed))
    unit = float(runs.observations)
    target = 1.0 / ert

    def rate(high: int, low: int, mixed: int, mix: float) -> float:
        return runs.starts(high, low, mixed, mix) / unit

    levels = np.unique(flat)
    extrapolated = unit * target < DIRECT_STARTS
    if extrapolated:
        high, low, mixed, mix, r = _tail(rate, levels, target, resolve_ratio, 1.0 / unit, None)
    else:
        searched = _search(rate, levels, target, resolve_ratio)
        found = _peak(rate, levels, resolve_ratio) if searched is None else searched
        high, low, mixed, mix, r = found
    seconds = time.perf_counter() - started
    return KSCalibration(
        high, low, mixed, mix, ert, r, "discrete", runs.observations, seconds, extrapolated, None
    )


#: Tied calibrations kept for sharing, one per tie signature and configuration.
SHARED_CALIBRATIONS = 4096


@lru_cache(maxsize=256)
def _continuous(
    n: int,
    m: int,
    ert: float,
    ratio: float,
    resolve_after: int,
    seed: int,
    stride: int,
    guarantee: float | None,
) -> KSCalibration:
    model = NullModel.of_reference(np.ones(n, dtype=np.int64), continuous=True)
    return _calibrate(model, m, ert, ratio, resolve_after, seed, stride, "continuous", guarantee)


@lru_cache(maxsize=SHARED_CALIBRATIONS)
def _shared(
    counts: tuple[int, ...],
    m: int,
    ert: float,
    ratio: float,
    resolve_after: int,
    seed: int,
    stride: int,
    guarantee: float | None,
) -> KSCalibration:
    model = NullModel.of_reference(np.asarray(counts, dtype=np.int64), continuous=False)
    return _calibrate(model, m, ert, ratio, resolve_after, seed, stride, "discrete", guarantee)


def shared_calibrations() -> tuple[int, int]:
    """``(hits, misses)`` of the shared tied calibrations in this process."""
    info = _shared.cache_info()
    return info.hits, info.misses


def calibrate_gap(
    atom_counts: npt.ArrayLike,
    window_size: int,
    ert: float,
    *,
    resolve_ratio: float = 0.6,
    resolve_after: int | None = None,
    seed: int = 0,
    stride: int = 1,
    guarantee: float | None = None,
    share: bool = False,
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
        Seed of the simulation. The simulation's seed is derived from it, the calibrated counts
        and the configuration (:func:`simulation_seed`), so references get independent
        simulations and the same reference the same thresholds.
    stride : int
        Observations between tests: 1 for :class:`~detectors.IncrementalKS`, the detector's
        ``stride`` for :class:`~detectors.WindowedKS`.
    guarantee : float, optional
        None: the false-alarm rate is ``1 / ert`` on average over references. A probability
        ``p``: the threshold is raised so that for a share ``p`` of references the rate
        conditional on the reference is at most :data:`GUARANTEE_FACTOR` ``/ ert`` (after
        Gandy and Kvaloy, 2013): the simulated null distribution is drawn
        :data:`GUARANTEE_DRAWS` times, each draw a plausible truth given the reference (for
        continuous data exactly the law of the reference's spacings under any continuous
        truth, so the threshold is distribution-free), and the order statistic of the rates
        over draws that bounds their ``p``-quantile from above with confidence
        :data:`GUARANTEE_CONFIDENCE` is calibrated (:func:`guarantee_order`).
    share : bool
        Tied references: calibrate the canonical reference of the reference's tie signature
        (:func:`detectors.signature.tie_signature`) once per configuration and share the
        result with every reference of that signature in the process (True), or calibrate
        this reference's own counts (False, the default until the false-alarm check of shared
        thresholds holds at long ERTs; see BENCHMARKS.md). Continuous references always share.

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
    check_guarantee(guarantee)
    g = None if guarantee is None else float(guarantee)
    ratio, e = float(resolve_ratio), float(ert)
    config = (m, e, ratio, after, stride, g)

    def seeded(atoms: npt.NDArray[np.int64], *model: str) -> int:
        """The simulation's seed (:func:`simulation_seed`)."""
        return simulation_seed(seed, atoms, (*config, *model))

    if (n - counts.size) / n <= CONTINUOUS_TIE_FRACTION:
        seed_c = seeded(np.ones(n, dtype=np.int64), "continuous")
        return _continuous(n, m, e, ratio, after, seed_c, stride, g)
    if share:
        canonical = tie_signature(counts).counts
        seed_s = seeded(np.asarray(canonical, dtype=np.int64))
        return _shared(canonical, m, e, ratio, after, seed_s, stride, g)
    model = NullModel.of_reference(counts, continuous=False)
    return _calibrate(model, m, e, ratio, after, seeded(counts), stride, "discrete", g)


def check_guarantee(guarantee: float | None) -> None:
    """Raise ``ValueError`` unless ``guarantee`` is None or a probability in (0, 1)."""
    if guarantee is not None and not (
        isinstance(guarantee, int | float)
        and not isinstance(guarantee, bool)
        and 0.0 < guarantee < 1.0
    ):
        raise ValueError(f"guarantee must be None or a probability in (0, 1), got {guarantee!r}")
