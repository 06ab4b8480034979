"""The contract every driftwatch detector follows.

A detector consumes one stream of observations of one feature (``update(x)`` or, faster,
``update_many(xs)``) and keeps a *drift episode*: an alarm starts one (``drift_started``), and it
ends (``drift_resolved``) once the evidence has stayed below a lower level for a sustained
period. ``drift_detected`` is true right after the update that started an episode, as in river.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn

import numpy as np
import numpy.typing as npt

from detectors.kstest import KSResult

__all__ = [
    "DRIFT_RESOLVED",
    "DRIFT_STARTED",
    "NO_TRANSITIONS",
    "DriftDetector",
    "EmptyList",
    "KSDetector",
    "Transition",
]

DRIFT_STARTED: Final = "drift_started"
DRIFT_RESOLVED: Final = "drift_resolved"

TransitionKind = Literal["drift_started", "drift_resolved"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of drift state, with the evidence at that moment.

    Attributes
    ----------
    kind : {"drift_started", "drift_resolved"}
    index : int
        ``n_seen`` at the update that caused it (1 for the first observation).
    statistic, p_value : float
        The detector's statistic and p-value at that update (nan where undefined).
    statistic_location : float
        Where the largest ECDF gap lies (nan for detectors without one).
    statistic_sign : int
        +1 when the window moved up against the reference, -1 when down, 0 when undefined.
    threshold : float
        The statistic level the alarm rule compared against (nan where undefined).
    n_reference, n_window : int
        Sample sizes behind the statistic (0 where undefined).
    """

    kind: TransitionKind
    index: int
    statistic: float
    p_value: float
    statistic_location: float = math.nan
    statistic_sign: int = 0
    threshold: float = math.nan
    n_reference: int = 0
    n_window: int = 0


class EmptyList(list[Any]):
    """An empty list that stays empty: one instance stands for the empty lists of many objects.

    A detector's ``transitions`` and a warmed-up stream's warm-up values are empty nearly
    always; thousands of streams then share one of these instead of an empty list each (56
    bytes). It compares, iterates and reads as ``[]``; anything that would add to it raises
    ``TypeError`` (its holder replaces it with a new list first).
    """

    __slots__ = ()

    def _frozen(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this empty list is shared: replace it with a new list to add to it")

    append = extend = insert = __setitem__ = __iadd__ = __imul__ = _frozen


#: The transitions of a detector whose last update changed nothing (shared by all of them).
NO_TRANSITIONS: list[Transition] = EmptyList()


class DriftDetector(abc.ABC):
    """Base class: one stream in, drift episodes out.

    Subclasses implement :meth:`update`; :meth:`update_many` may be overridden with a faster
    path that leaves the detector in the same state as calling :meth:`update` on each value.
    The bases declare no instance layout (empty ``__slots__``): a subclass that declares its
    attributes as slots holds no instance dict; the others hold one as usual.
    """

    # No instance layout of its own: the subclass's slots (or instance dict) hold what this class
    # sets. Hidden from mypy, which would read the empty slots as the whole layout.
    if not TYPE_CHECKING:
        __slots__ = ()

    #: The resolve tally of an open episode (see :meth:`_episode_test`), in the detectors that
    #: keep one.
    _below: int

    def __init__(self) -> None:
        self.n_seen = 0
        self._in_drift = False
        self._drift_detected = False
        self.transitions: list[Transition] = []

    @abc.abstractmethod
    def update(self, x: float, t: float | None = None) -> None:
        """Add one observation (``t``: event time in seconds, for time-based windows)."""

    def update_many(
        self, xs: Iterable[float] | npt.ArrayLike, ts: Iterable[float] | None = None
    ) -> None:
        """Add observations in order; the state afterwards equals calling :meth:`update` on each.

        :attr:`transitions` then lists every episode change in the batch, in order.
        """
        values = np.asarray(xs, dtype=np.float64).ravel()
        times = None if ts is None else np.asarray(ts, dtype=np.float64).ravel()
        if times is not None and times.shape != values.shape:
            raise ValueError(
                f"ts must have one time per value: got {times.shape[0]} times "
                f"for {values.shape[0]} values"
            )
        collected: list[Transition] = []
        for i, x in enumerate(values.tolist()):
            self.update(x, None if times is None else float(times[i]))
            collected.extend(self.transitions)
        self.transitions = collected

    def _episode_test(self, alarm: bool, below: bool, resolve_after: int) -> TransitionKind | None:
        """Apply one test's outcome to the drift episode; return the transition it makes.

        Outside an episode, an ``alarm`` starts one. Inside, a tally (``_below``) rises by one
        when the statistic is ``below`` the resolve level and falls by one (not below zero)
        otherwise; the episode resolves when it reaches ``resolve_after``.
        """
        if not self._in_drift:
            if not alarm:
                return None
            self._in_drift = True
            self._below = 0
            return DRIFT_STARTED
        self._below = self._below + 1 if below else max(self._below - 1, 0)
        if self._below < resolve_after:
            return None
        self._in_drift = False
        self._below = 0
        return DRIFT_RESOLVED

    def _started_last(self) -> bool:
        """True if the last transition started an episode at the latest observation."""
        last = self.transitions[-1] if self.transitions else None
        return last is not None and last.kind == DRIFT_STARTED and last.index == self.n_seen

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release background work (a pending calibration); the detector stays usable."""

    @property
    def drift_detected(self) -> bool:
        """True if the latest update started a drift episode."""
        return self._drift_detected

    @property
    def in_drift(self) -> bool:
        """True while a drift episode is open."""
        return self._in_drift

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """The detector's current test statistic (nan when undefined)."""

    @property
    @abc.abstractmethod
    def p_value(self) -> float:
        """The current p-value (nan when undefined)."""

    @property
    def drift_score(self) -> float:
        """How close the stream is to alarming: the statistic over its alarm threshold.

        1 or more means the alarm rule fires (or, for an open episode, would fire); nan where
        the detector has no single statistic compared with a threshold, or before any test.
        """
        return math.nan


class KSDetector(DriftDetector):
    """Base of the two-sample KS detectors: every output derives from :meth:`result`."""

    # No instance layout of its own: the subclass's slots (or instance dict) hold what this class
    # sets. Hidden from mypy, which would read the empty slots as the whole layout.
    if not TYPE_CHECKING:
        __slots__ = ()

    @abc.abstractmethod
    def result(self) -> KSResult:
        """All outputs of the current test (nan before there is one)."""

    @property
    def statistic(self) -> float:
        return self.result().statistic

    @property
    def p_value(self) -> float:
        return self.result().pvalue

    @abc.abstractmethod
    def alarm_threshold(self) -> float:
        """The KS statistic ``D`` at which the alarm fires for the current window (nan if none)."""

    @property
    def drift_score(self) -> float:
        """``statistic / alarm_threshold()``: 1 or more alarms (see :class:`DriftDetector`).

        With a randomised boundary (``ert`` on tied data) an alarm can also come a little below
        1, at ``calibration.gap_mixed / calibration.gap_high``, with probability
        ``calibration.mix``.
        """
        threshold = self.alarm_threshold()
        stat = self.statistic
        if math.isnan(stat) or not threshold > 0:
            return math.nan
        return stat / threshold

    @property
    def statistic_location(self) -> float:
        return self.result().statistic_location

    @property
    def statistic_sign(self) -> int:
        return self.result().statistic_sign

    def _record(self, kind: TransitionKind, threshold: float) -> None:
        """Append a transition carrying the current result and the ``threshold`` (as a D).

        An empty :attr:`transitions` (possibly the shared :data:`NO_TRANSITIONS`) is replaced by
        a new list holding it.
        """
        res = self.result()
        if not self.transitions:
            self.transitions = []
        self.transitions.append(
            Transition(
                kind,
                self.n_seen,
                res.statistic,
                res.pvalue,
                res.statistic_location,
                res.statistic_sign,
                threshold,
                res.n_reference,
                res.n_window,
            )
        )
