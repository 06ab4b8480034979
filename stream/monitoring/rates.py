"""The worker's daily false-alarm budget, turned into each stream's ERT from measured event rates.

When none of ``alpha``, ``ert`` or the fleet budget is set, the worker as a whole may raise
``false_alarms_per_day`` false alarms a day (default
:data:`~detectors.budget.DEFAULT_FALSE_ALARMS_PER_DAY`, 0.5). Each stream gets an equal share:

``ert = events_per_second * 86,400 * streams / false_alarms_per_day``

(:func:`detectors.budget.stream_ert`), where

- ``events_per_second`` is measured from the event times (never the wall clock, so a replay is
  reproducible) over *blocks* of ``reference_size`` events of the stream's source: a key's
  events for its features, its labelled events for its accuracy stream. With a warm-up
  reference the first block is exactly the warm-up, so a stream is calibrated on the rate of
  the events it learnt its reference from.
- ``streams`` is the number of streams that can alarm tracked so far (every key's features,
  plus the accuracy streams of keys with labelled events; at most ``max_tracked_keys`` keys).

A stream is recalibrated (same reference, same window, new ERT) when the ERT the budget gives it
now is more than :data:`RECALIBRATE_FACTOR` times longer or shorter than the one in use: after
a block whose rate moved that much, or once the stream count has grown (or shrunk) that much. A
stream calibrated while few keys were known is therefore never left at an ERT more than that
factor too short. Until a rate is measured (a reference from a file, or a block whose events all
carry the same time) a stream uses :data:`UNMEASURED_ERT`.

A share is capped at :data:`MAX_BUDGET_ERT`. ERTs are rounded to two significant digits, so
streams of similar rates (and equal reference sizes) share one cached calibration.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors import DriftDetector
from detectors.budget import EventRate, shortest_ert, stream_ert
from detectors.river_calibration import MAX_ERT
from stream.monitoring.streams import ks_view
from stream.settings import DEFAULT_ERT, Settings

__all__ = [
    "EVENTS",
    "LABELLED",
    "MAX_BUDGET_ERT",
    "RECALIBRATE_FACTOR",
    "UNMEASURED_ERT",
    "RateClock",
    "WorkerBudget",
    "recalibrate",
    "worker_budget",
]

#: Rate sources: a key's events (its features' streams) and its labelled events (accuracy).
EVENTS = "events"
LABELLED = "labelled"

#: Recalibrate when the budget's ERT for a stream is this many times off the one in use.
RECALIBRATE_FACTOR = 2.0
#: ERT of a stream whose rate is not measured yet.
UNMEASURED_ERT = DEFAULT_ERT
#: Longest ERT the budget gives a stream (observations): the longest the KS and chi-square
#: calibrations are measured at. A worker whose streams' shares would be longer (many fast
#: streams) raises more false alarms than its budget: ``sum of rate * 86,400 / ert`` a day.
MAX_BUDGET_ERT = 10_000_000.0
#: The river detectors' calibrated parameter (their longest calibrated ERT is ``MAX_ERT`` of it).
_RIVER_PARAMETER = {"adwin": "delta", "kswin": "alpha", "page_hinkley": "threshold"}


def _round(ert: float) -> float:
    """``ert`` rounded to two significant digits."""
    digits = 1 - math.floor(math.log10(ert))
    return float(round(ert, digits))


@dataclass(slots=True)
class RateClock:
    """One source's rate measurement: the block being measured and the last block's rate."""

    block: EventRate = field(default_factory=EventRate)
    rate: float = math.nan  # events/s of the last complete block (nan: none yet)
    blocks: int = 0


class WorkerBudget:
    """Per-stream ERTs from a whole worker's daily false-alarm budget.

    Parameters
    ----------
    false_alarms_per_day : float
        False alarms a day the whole worker may raise (> 0).
    window_size : int
        The streams' window (for the shortest ERT a stream can be calibrated to).
    block : int
        Events per rate measurement (the reference size).
    resolve_after : int, optional
        The streams' ``resolve_after`` (for the shortest ERT).
    max_sources : int
        Rate clocks kept (least recently fed forgotten first).

    Examples
    --------
    >>> budget = WorkerBudget(2.0, window_size=200, block=1000)
    >>> budget.observe("agent-1", "events", [i / 4 for i in range(1000)])  # 4 events/s
    >>> budget.ert("agent-1", "events", 12, "incremental_ks")  # 4 * 86,400 * 12 / 2
    2100000.0
    """

    def __init__(
        self,
        false_alarms_per_day: float,
        *,
        window_size: int,
        block: int,
        resolve_after: int | None = None,
        max_sources: int = 20_000,
    ) -> None:
        if not (math.isfinite(false_alarms_per_day) and false_alarms_per_day > 0):
            raise ValueError(
                f"false_alarms_per_day must be a finite number > 0, got {false_alarms_per_day!r}"
            )
        if block < 2:
            raise ValueError(f"block must be an integer >= 2, got {block!r}")
        self.false_alarms_per_day = float(false_alarms_per_day)
        self.block = int(block)
        self.max_sources = int(max_sources)
        self.floor = shortest_ert(window_size, resolve_after)
        self._clocks: OrderedDict[tuple[str, str], RateClock] = OrderedDict()

    def observe(self, key: str, source: str, times: Sequence[float]) -> None:
        """Count events of ``key``'s ``source`` stamped ``times`` (seconds, in stream order)."""
        ident = (key, source)
        clock = self._clocks.get(ident)
        if clock is None:
            clock = self._clocks[ident] = RateClock()
            while len(self._clocks) > self.max_sources:
                self._clocks.popitem(last=False)
        else:
            self._clocks.move_to_end(ident)
        start = 0
        while start < len(times):
            take = min(self.block - clock.block.count, len(times) - start)
            chunk = times[start : start + take]
            clock.block = clock.block.observe(take, min(chunk), max(chunk))
            start += take
            if clock.block.count >= self.block:
                rate = clock.block.per_second
                if not math.isnan(rate):
                    clock.rate = rate
                clock.blocks += 1
                clock.block = EventRate()

    def rate(self, key: str, source: str) -> float:
        """Events/s of the last complete block of ``key``'s ``source`` (nan before one)."""
        clock = self._clocks.get((key, source))
        return math.nan if clock is None else clock.rate

    def ert(self, key: str, source: str, streams: int, detector: str) -> float:
        """The ERT the budget gives a stream of ``key``'s ``source`` among ``streams``."""
        rate = self.rate(key, source)
        if math.isnan(rate):
            ert = max(UNMEASURED_ERT, self.floor)
        else:
            ert = _round(
                stream_ert(self.false_alarms_per_day, max(1, streams), rate, floor=self.floor)
            )
        ert = min(ert, MAX_BUDGET_ERT)
        parameter = _RIVER_PARAMETER.get(detector)
        if parameter is not None:
            # river detectors are calibrated up to a longest ERT: beyond it such a stream
            # raises more than its share
            ert = min(ert, float(MAX_ERT[parameter]))
        return ert

    def due(
        self, key: str, source: str, streams: int, detector: str, current: float
    ) -> float | None:
        """A new ERT if the one in use (``current``) is off by more than the factor, else None."""
        if math.isnan(self.rate(key, source)):
            return None
        want = self.ert(key, source, streams, detector)
        ratio = want / current
        if 1 / RECALIBRATE_FACTOR <= ratio <= RECALIBRATE_FACTOR:
            return None
        return want

    def recalibrate(
        self, key: str, source: str, streams: int, name: str, detector: DriftDetector | None
    ) -> bool:
        """Recalibrate ``detector`` if :meth:`due`; return whether it was."""
        current = getattr(detector, "ert", None)
        if detector is None or current is None:
            return False
        new = self.due(key, source, streams, name, current)
        return new is not None and recalibrate(detector, new)


def recalibrate(detector: DriftDetector, ert: float) -> bool:
    """Give a KS detector a new ``ert``: same reference and window, thresholds calibrated anew.

    Returns False (and leaves it alone) for a detector without a reference (the river
    detectors keep the ERT of their first calibration).
    """
    ks = ks_view(detector)
    if ks is None:
        return False
    ks.ert = ert
    ks.set_reference(ks.reference)
    return True


def worker_budget(settings: Settings) -> WorkerBudget | None:
    """The budget of ``settings.worker_budget`` for its streams (None without one)."""
    if settings.worker_budget is None:
        return None
    return WorkerBudget(
        settings.worker_budget,
        window_size=settings.window_size,
        block=settings.reference_size,
        resolve_after=settings.resolve_after,
        max_sources=2 * settings.max_tracked_keys,
    )
