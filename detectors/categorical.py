"""Streaming chi-square drift detection for categorical features.

A categorical feature (model name, tool name, finish reason, error type, span status) is
monitored like a numeric one: a sliding count window of its last ``window_size`` values is
compared with a reference sample after every update, and alarms are calibrated to an expected
run time (ERT) between false alarms.

Categories
----------
* A value is turned into its category by :func:`category_of`: strings stay as they are, other
  scalars become ``str(x)``, and an **array value** (e.g. ``gen_ai.response.finish_reasons``)
  becomes its *set* of elements, sorted and joined by ``"|"`` (``["stop"]`` is ``"stop"``,
  ``["length", "stop"]`` and ``["stop", "length"]`` are both ``"length|stop"``, an empty array
  is ``"<empty>"``). One span is thus one observation, whatever the number of its choices.
  Categories are cut to :data:`MAX_CATEGORY_CHARS` characters.
* **Pooling rule.** The reference's categories seen at least ``min_count`` times are kept,
  the most frequent first, up to ``max_categories - 1`` of them. Every other category --
  rare in the reference, beyond the cap, or never seen there -- is pooled into one cell,
  :data:`OTHER`, which always exists (its reference count may be zero). A window full of a
  category the reference never saw therefore moves the ``OTHER`` cell.

The statistic
-------------
With ``K`` cells, reference counts ``r_k`` (total ``n``) and window counts ``c_k`` (total
``m``), the statistic is Pearson's chi-square of the ``2 x K`` contingency table over the cells
with ``r_k + c_k > 0``::

    X2 = sum_k (m r_k - n c_k) ** 2 / (n m (r_k + c_k))

which is ``scipy.stats.chi2_contingency(table, correction=False).statistic`` (a two-sample test
of homogeneity: it carries the reference's own sampling noise, unlike a goodness-of-fit test
against fixed reference shares). The p-value is the asymptotic ``chi2.sf(X2, K' - 1)``.

Alarm calibration
-----------------
``X2`` takes values on a lattice (counts are integers). With ``ert``, null streams are simulated
as for tied KS references (:mod:`detectors.calibration`): each stream draws cell shares from
the Bayesian bootstrap of the reference, Dirichlet(r_1, ..., r_K), then its observations from
them, and ``X2`` is taken against the real reference. The statistic is compared on the grid
``round(X2 * 2**20)``; the episode counting and threshold search are those of
:mod:`detectors.calibration`, including its randomised boundary: at the attainable value just
below the threshold the alarm fires with a probability, drawn as a hash of the observation's
index, so the same observation always decides the same way.

References
----------
.. [1] Pearson, K. (1900). On the criterion that a given system of deviations from the
   probable ... Philosophical Magazine 50, 157-175.
.. [2] Rubin, D. B. (1981). The Bayesian bootstrap. Annals of Statistics 9, 130-134.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

from detectors.background import BackgroundCalibrated
from detectors.base import DRIFT_STARTED, DriftDetector, Transition
from detectors.calibration import KSCalibration, calibrate_null_statistics, check_ert
from detectors.validation import validate_alarm_args

__all__ = [
    "MAX_CATEGORY_CHARS",
    "OTHER",
    "STATISTIC_SCALE",
    "CategoricalDetector",
    "CategoricalResult",
    "CategoricalTransition",
    "CategoryCells",
    "CategoryChange",
    "CategoryWindow",
    "Chi2Alarm",
    "calibrate_chi2",
    "category_of",
    "chi2_statistics",
]

#: The cell that pools rare, capped and unseen categories.
OTHER: Final = "<other>"
#: The category of an empty array value.
EMPTY: Final = "<empty>"
#: Categories are cut to this many characters (a window's memory stays bounded).
MAX_CATEGORY_CHARS: Final = 256
#: ``X2`` is compared with calibrated thresholds on the grid ``round(X2 * STATISTIC_SCALE)``.
STATISTIC_SCALE: Final = 2**20


def category_of(x: object) -> str:
    """The category of one value: arrays become their sorted set joined by ``"|"``.

    Examples
    --------
    >>> category_of("stop"), category_of(["stop"]), category_of(["stop", "length", "stop"])
    ('stop', 'stop', 'length|stop')
    >>> category_of([]), category_of(3)
    ('<empty>', '3')
    >>> len(category_of("x" * 10_000))
    256
    """
    if isinstance(x, str):
        return x[:MAX_CATEGORY_CHARS]
    if isinstance(x, list | tuple):
        parts = sorted({category_of(v) for v in x})
        return "|".join(parts)[:MAX_CATEGORY_CHARS] if parts else EMPTY
    return str(x)[:MAX_CATEGORY_CHARS]


class CategoryChange(NamedTuple):
    """The cell contributing most to the chi-square statistic, and its two shares."""

    category: str
    reference_share: float
    window_share: float


class CategoricalResult(NamedTuple):
    """The current test: ``statistic`` and ``pvalue`` as ``scipy.stats.chi2_contingency``."""

    statistic: float
    pvalue: float
    dof: int
    n_reference: int
    n_window: int


@dataclass(frozen=True, slots=True)
class CategoricalTransition(Transition):
    """A :class:`~detectors.Transition` that also says which category moved (see
    :meth:`CategoricalDetector.largest_change`)."""

    largest_change: CategoryChange | None = None


def chi2_statistics(
    reference_counts: npt.NDArray[np.int64], window_counts: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Pearson ``X2`` and its degrees of freedom for each row of ``window_counts``.

    ``reference_counts`` has shape ``(K,)``, ``window_counts`` ``(B, K)``; cells empty in both
    samples are left out (``X2`` term 0, no degree of freedom), as a contingency table would.
    """
    ref = reference_counts.astype(np.int64)
    win = window_counts.astype(np.int64)
    n = int(ref.sum())
    m = win.sum(axis=1, keepdims=True)
    total = ref + win
    d = (m * ref - n * win).astype(np.float64)
    terms = np.where(total > 0, d * d / np.maximum(total, 1), 0.0)
    scale = (n * m[:, 0]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x2 = np.where(scale > 0, terms.sum(axis=1) / scale, math.nan)
    dof = np.maximum((total > 0).sum(axis=1) - 1, 0)
    return x2, dof


def _grid(x2: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    return np.rint(np.nan_to_num(x2, nan=0.0) * STATISTIC_SCALE).astype(np.int64)


#: Simulated null observations behind one calibration, at most.
MAX_SIMULATED = 3_000_000


@lru_cache(maxsize=256)
def _calibrate(
    counts: tuple[int, ...], m: int, ert: float, ratio: float, resolve_after: int, seed: int
) -> KSCalibration:
    started = time.perf_counter()
    ref = np.asarray(counts, dtype=np.int64)
    observations = int(min(max(150 * ert, 200_000), MAX_SIMULATED))
    # long streams relative to the window, so episodes reach their stationary rhythm
    steps = int(min(max(10 * m, 2_000), observations // 16))
    streams = max(16, observations // steps)
    rng = np.random.default_rng(seed)
    k = ref.shape[0]
    out = np.empty((streams, steps), dtype=np.int64)
    alpha = ref.astype(np.float64)
    for b in range(streams):
        shares = rng.gamma(alpha)  # Bayesian bootstrap: Dirichlet(r_1, ..., r_K)
        cum = np.cumsum(shares / shares.sum())
        seq = np.minimum(np.searchsorted(cum, rng.random(m + steps), side="right"), k - 1)
        onehot = np.zeros((m + steps + 1, k), dtype=np.int32)
        onehot[np.arange(1, m + steps + 1), seq] = 1
        cumulative = np.cumsum(onehot, axis=0, dtype=np.int32)
        windows = cumulative[m + 1 :] - cumulative[1 : steps + 1]
        out[b] = _grid(chi2_statistics(ref, windows)[0])
    return calibrate_null_statistics(
        out, ert, resolve_ratio=ratio, resolve_after=resolve_after, seed=seed, started=started
    )


def calibrate_chi2(
    reference_counts: npt.ArrayLike,
    window_size: int,
    ert: float,
    *,
    resolve_ratio: float = 0.6,
    resolve_after: int | None = None,
    seed: int = 0,
) -> KSCalibration:
    """Calibrate the alarm threshold on ``round(X2 * STATISTIC_SCALE)`` to ``ert``.

    Parameters
    ----------
    reference_counts : array-like of int
        The reference's count per cell (after pooling; zeros allowed, e.g. for ``OTHER``).
    window_size, ert, resolve_ratio, resolve_after, seed
        As for :class:`CategoricalDetector`.

    Returns
    -------
    KSCalibration
        ``gap_high``, ``gap_low`` and ``gap_mixed`` are on the ``X2`` grid.
    """
    counts = np.asarray(reference_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() == 0:
        raise ValueError("reference_counts must be a 1-D array of counts >= 0, not all zero")
    after = resolve_after or int(window_size)
    check_ert(ert, int(window_size), after)
    key = tuple(int(c) for c in counts)
    return _calibrate(key, int(window_size), float(ert), float(resolve_ratio), after, seed)


@dataclass(frozen=True, slots=True)
class CategoryCells:
    """The pooling rule applied to a reference: its cells and its count per cell.

    Categories seen at least ``min_count`` times are kept, most frequent first (ties by name),
    up to ``max_categories - 1``; every other category maps to :data:`OTHER`, the last cell.
    """

    categories: tuple[str, ...]
    counts: npt.NDArray[np.int64]
    index: dict[str, int]

    @classmethod
    def pool(cls, reference: list[str], min_count: int, max_categories: int) -> CategoryCells:
        if not reference:
            raise ValueError("reference must hold at least one value, got none")
        names, counts = np.unique(
            np.asarray(reference, dtype=object).astype(str), return_counts=True
        )
        order = np.lexsort((names, -counts))
        kept = [str(names[i]) for i in order if counts[i] >= min_count and names[i] != OTHER]
        kept = kept[: max_categories - 1]
        index = {c: i for i, c in enumerate(kept)}
        cells = cls((*kept, OTHER), np.zeros(0, dtype=np.int64), index)
        ref_counts = np.bincount(cells.cells_of(reference), minlength=len(kept) + 1)
        return cls(cells.categories, ref_counts.astype(np.int64), index)

    def cells_of(self, categories: list[str]) -> npt.NDArray[np.int64]:
        other = len(self.index)
        get = self.index.get
        return np.fromiter((get(c, other) for c in categories), np.int64, len(categories))


class CategoryWindow:
    """FIFO ring of the last ``capacity`` categories and their cell numbers."""

    __slots__ = ("_cats", "_cells", "_start", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cats: list[str] = []
        self._cells = np.zeros(capacity, dtype=np.int64)
        self._start = 0

    def __len__(self) -> int:
        return len(self._cats)

    def categories(self) -> list[str]:
        """Oldest first (a copy)."""
        return self._cats[self._start :] + self._cats[: self._start]

    def cells(self) -> npt.NDArray[np.int64]:
        """Cell numbers, oldest first (a copy)."""
        w = len(self._cats)
        return np.concatenate([self._cells[self._start : w], self._cells[: self._start]])

    def push(self, cats: list[str], cells: npt.NDArray[np.int64]) -> None:
        m = self.capacity
        for c, cell in zip(cats, cells.tolist(), strict=True):
            if len(self._cats) < m:
                self._cells[len(self._cats)] = cell
                self._cats.append(c)
            else:
                self._cells[self._start] = cell
                self._cats[self._start] = c
                self._start = (self._start + 1) % m

    def recode(self, pool: CategoryCells) -> None:
        """Renumber the cells for a new reference's pooling, keeping the order."""
        self._cats, self._start = self.categories(), 0
        self._cells[: len(self._cats)] = pool.cells_of(self._cats)


class Chi2Alarm(BackgroundCalibrated):
    """Mixin of :class:`CategoricalDetector`: the alarm rule on ``X2``.

    With ``alpha``, the thresholds ``chi2.isf(alpha, dof)`` per degrees of freedom; with
    ``ert``, the calibration on the ``X2`` grid (:func:`calibrate_chi2`), run in the background,
    and its randomised boundary (:meth:`~detectors.calibration.KSCalibration.fires`).
    """

    window_size: int
    ert: float | None
    resolve_ratio: float
    seed: int
    _resolve_after: int
    _alpha: float
    _ref: npt.NDArray[np.int64]
    _thresholds: dict[int, tuple[float, float]]

    def _chi2_calibration(self) -> partial[KSCalibration]:
        """The ``ert`` calibration of the current reference, as a call to make."""
        assert self.ert is not None
        return partial(
            calibrate_chi2,
            self._ref,
            self.window_size,
            self.ert,
            resolve_ratio=self.resolve_ratio,
            resolve_after=self._resolve_after,
            seed=self.seed,
        )

    @property
    def calibration(self) -> KSCalibration | None:
        """The ``ert`` calibration (waits for it if pending), or None with ``alpha``."""
        cal: KSCalibration | None = super().calibration
        if cal is None and self.ert is not None:  # its background run was cancelled by close()
            cal = self._calibration = self._chi2_calibration()()
        return cal

    def _rule(self, x2: float, dof: int, index: int) -> tuple[bool, bool, float, float]:
        """``(alarm, below resolve level, threshold, resolve level)`` for one full window."""
        cal = self.calibration
        if cal is not None:
            q = int(np.rint(x2 * STATISTIC_SCALE))
            return (
                cal.fires(q, index, self.seed),
                q < cal.gap_low,
                cal.gap_high / STATISTIC_SCALE,
                cal.gap_low / STATISTIC_SCALE,
            )
        high, low = self._thresholds.get(dof, (math.nan, math.nan))
        if math.isnan(high):
            high = float(stats.chi2.isf(self._alpha, dof)) if dof > 0 else math.inf
            low = self.resolve_ratio * high
            self._thresholds[dof] = (high, low)
        return x2 >= high, x2 < low, high, low


class CategoricalDetector(Chi2Alarm, DriftDetector):
    """Chi-square test of a sliding window of categories against a reference, every update.

    Parameters
    ----------
    reference : iterable
        The reference sample: one value per observation (see :func:`category_of`).
    window_size : int
        The window: the last ``window_size`` observations; it is tested once full.
    alpha : float, optional
        Per-test level of the classic rule ``p_value < alpha``. Default 0.05 without ``ert``.
    ert : float, optional
        Expected run time: mean observations between false alarms on a stream without drift.
        The threshold is then calibrated for this reference's cell counts and this window
        (see the module notes).
    resolve_ratio, resolve_after
        Hysteresis of drift episodes, as for :class:`~detectors.IncrementalKS`.
    min_count : int
        Reference categories seen fewer times are pooled into :data:`OTHER`.
    max_categories : int
        Cells at most, :data:`OTHER` included.
    seed : int
        Seed of the calibration's simulation and of its randomised boundary.
    wait_for_calibration : bool
        With ``ert`` the calibration runs in a background thread from construction (and from
        every :meth:`set_reference`). True: the first test waits for it (reproducible). False:
        updates before it is ready are not tested, and nothing waits.

    Attributes
    ----------
    statistic, p_value : float
        ``scipy.stats.chi2_contingency([reference_cells, window_cells], correction=False)``
        over the cells not empty in both (nan before any observation).
    categories : tuple of str
        The cells, :data:`OTHER` last.

    Notes
    -----
    Null hypothesis: the window and the reference are samples of one categorical distribution.
    Alarm rule: with ``alpha``, ``X2 >= chi2.isf(alpha, dof)``; with ``ert``, ``X2`` on the grid
    reaches the calibrated threshold (randomised at the boundary). An alarm opens a drift
    episode; it resolves once a tally -- up by one at each update with the statistic below
    ``resolve_ratio`` times the threshold, down by one (not below zero) otherwise -- reaches
    ``resolve_after``. Each transition is a :class:`CategoricalTransition` whose
    ``largest_change`` names the cell contributing most to ``X2``.

    References
    ----------
    .. [1] Pearson, K. (1900). Philosophical Magazine 50, 157-175.
    .. [2] Rubin, D. B. (1981). The Bayesian bootstrap. Annals of Statistics 9, 130-134.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.categorical import CategoricalDetector
    >>> rng = np.random.default_rng(7)
    >>> models = ["small", "large", "mini"]
    >>> det = CategoricalDetector(rng.choice(models, 2000, p=[0.6, 0.3, 0.1]), 200, ert=5000)
    >>> stream = np.r_[rng.choice(models, 3000, p=[0.6, 0.3, 0.1]),
    ...                rng.choice(models, 1000, p=[0.55, 0.2, 0.25])]
    >>> for i, x in enumerate(stream):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         change = det.transitions[-1].largest_change
    ...         print(f"drift detected at index {i}: {change.category} {change.window_share}")
    drift detected at index 3040: mini 0.17
    """

    def __init__(
        self,
        reference: Iterable[object],
        window_size: int = 1000,
        *,
        alpha: float | None = None,
        ert: float | None = None,
        resolve_ratio: float = 0.6,
        resolve_after: int | None = None,
        min_count: int = 5,
        max_categories: int = 32,
        seed: int = 0,
        wait_for_calibration: bool = True,
    ) -> None:
        super().__init__()
        validate_alarm_args(window_size, None, None, alpha, ert, resolve_ratio, resolve_after)
        if not (isinstance(min_count, int) and min_count >= 1):
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if not (isinstance(max_categories, int) and max_categories >= 2):
            raise ValueError(f"max_categories must be an integer >= 2, got {max_categories!r}")
        self.window_size = int(window_size)
        self.alpha = alpha
        self.ert = ert
        self.resolve_ratio = float(resolve_ratio)
        self.resolve_after = resolve_after
        self.min_count = min_count
        self.max_categories = max_categories
        self.seed = seed
        self.wait_for_calibration = wait_for_calibration
        self._resolve_after = resolve_after or self.window_size
        self._alpha = 0.05 if alpha is None else float(alpha)
        self._window = CategoryWindow(self.window_size)
        self._below = 0
        self._last: tuple[float, int] = (math.nan, 0)  # X2 and dof after the latest update
        self._set_reference([category_of(x) for x in reference])
        self._counts = np.zeros(len(self.categories), dtype=np.int64)

    # ------------------------------------------------------------------ reference
    def _set_reference(self, ref: list[str]) -> None:
        self._pool = CategoryCells.pool(ref, self.min_count, self.max_categories)
        self.categories: tuple[str, ...] = self._pool.categories
        self._ref = self._pool.counts
        self._thresholds: dict[int, tuple[float, float]] = {}
        if getattr(self, "_pending", None) is not None:
            self.close()
        self._init_calibration()
        if self.ert is not None:
            self._start(self._chi2_calibration())

    def set_reference(self, reference: Iterable[object]) -> None:
        """Replace the reference (a re-baseline), keeping the window; an open episode stays open."""
        self._set_reference([category_of(x) for x in reference])
        self._window.recode(self._pool)
        counts = np.bincount(self._window.cells(), minlength=len(self.categories))
        self._counts = counts.astype(np.int64)
        if len(self._window):
            x2, dof = chi2_statistics(self._ref, self._counts[None, :])
            self._last = (float(x2[0]), int(dof[0]))

    @property
    def reference_counts(self) -> npt.NDArray[np.int64]:
        """The reference's count per cell of :attr:`categories`."""
        return self._ref.copy()

    @property
    def window(self) -> list[str]:
        """The window's categories, oldest first."""
        return self._window.categories()

    @property
    def window_counts(self) -> npt.NDArray[np.int64]:
        """The window's count per cell of :attr:`categories`."""
        return self._counts.copy()

    # ------------------------------------------------------------------ results
    def result(self) -> CategoricalResult:
        """The current test (nan before any observation)."""
        x2, dof = self._last
        m = len(self._window)
        if m == 0:
            return CategoricalResult(math.nan, math.nan, 0, int(self._ref.sum()), 0)
        p = float(stats.chi2.sf(x2, dof)) if dof > 0 else 1.0
        return CategoricalResult(x2, p, dof, int(self._ref.sum()), m)

    @property
    def statistic(self) -> float:
        return self._last[0]

    @property
    def p_value(self) -> float:
        return self.result().pvalue

    def largest_change(self, counts: npt.NDArray[np.int64] | None = None) -> CategoryChange:
        """The cell that contributes most to ``X2`` (its ``(m r - n c)^2 / (n m (r + c))``
        term): the category whose change is least explained by chance, with its shares."""
        win = self._counts if counts is None else counts
        n, m = int(self._ref.sum()), max(int(win.sum()), 1)
        total = self._ref + win
        d = (m * self._ref - n * win).astype(np.float64)
        terms = np.where(total > 0, d * d / np.maximum(total, 1), 0.0)
        k = int(np.argmax(terms))
        return CategoryChange(self.categories[k], float(self._ref[k] / n), float(win[k] / m))

    # ------------------------------------------------------------------ updates
    def update(self, x: object, t: float | None = None) -> None:
        """Add one observation (``t`` is accepted for the common contract and unused)."""
        self.update_many([x])

    def update_many(self, xs: Iterable[object] | Any, ts: Iterable[float] | None = None) -> None:
        """Add observations in order; afterwards identical to calling :meth:`update` on each."""
        self.transitions = []
        self._drift_detected = False
        cats = [category_of(x) for x in xs]
        for lo in range(0, len(cats), _CHUNK):
            self._advance(cats[lo : lo + _CHUNK])
        self._drift_detected = self._started_last()

    def _advance(self, cats: list[str]) -> None:
        b, m, w, k = len(cats), self.window_size, len(self._window), len(self.categories)
        cells = self._pool.cells_of(cats)
        combined = np.concatenate([self._window.cells(), cells])
        steps = np.arange(b)
        gone = w + steps - m  # index into `combined` of the value evicted at each step
        delta = np.zeros((b, k), dtype=np.int64)
        delta[steps, cells] += 1
        np.subtract.at(delta, (steps[gone >= 0], combined[gone[gone >= 0]]), 1)
        counts = self._counts + np.cumsum(delta, axis=0)
        x2, dof = chi2_statistics(self._ref, counts)
        tested = self.wait_for_calibration or self.calibration_ready
        for i in np.flatnonzero(w + steps + 1 >= m).tolist() if tested else ():
            self._decide(float(x2[i]), int(dof[i]), counts[i], self.n_seen + i + 1)
        self.n_seen += b
        self._counts = counts[-1].copy()
        self._last = (float(x2[-1]), int(dof[-1]))
        self._window.push(cats, cells)

    def _decide(self, x2: float, dof: int, counts: npt.NDArray[np.int64], index: int) -> None:
        alarm, below, high, low = self._rule(x2, dof, index)
        kind = self._episode_test(alarm, below, self._resolve_after)
        if kind is not None:
            self._record(kind, index, x2, dof, high if kind == DRIFT_STARTED else low, counts)

    def _record(
        self,
        kind: Any,
        index: int,
        x2: float,
        dof: int,
        threshold: float,
        counts: npt.NDArray[np.int64],
    ) -> None:
        p = float(stats.chi2.sf(x2, dof)) if dof > 0 else 1.0
        m = int(counts.sum())
        change = self.largest_change(counts)
        self.transitions.append(
            CategoricalTransition(
                kind, index, x2, p, math.nan, 0, threshold, int(self._ref.sum()), m, change
            )
        )

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The detector's state as plain data (see :mod:`detectors.categorical_state`)."""
        from detectors.categorical_state import categorical_state

        return categorical_state(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoricalDetector:
        """Rebuild a detector from :meth:`state`, checking its shapes and invariants.

        Raises
        ------
        detectors.registry.StateError
            If the state is not one this version can continue from.
        """
        from detectors.categorical_state import categorical_from_state

        return categorical_from_state(cls, state)


#: Observations processed per vectorised step of :meth:`CategoricalDetector.update_many`.
_CHUNK = 2048
