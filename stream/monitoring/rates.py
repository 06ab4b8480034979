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
  plus the accuracy streams of keys with labelled events; at most ``max_tracked_keys`` keys),
  a batch's new keys counted from their first event's time
  (:meth:`~stream.monitoring.context.MonitorContext.streams_at`).

A key's rate clocks (:class:`RateClock`, one per source) are part of its state: checkpointed,
restored and rolled back with it. The rates are measured, and the key's streams recalibrated,
at the events that complete a block (:meth:`WorkerBudget.parts`): points of the key's own
events, not of the batches it arrives in, so a worker restored from a checkpoint and fed again
from an earlier offset gives its streams the ERTs of one that never stopped (a stream created
at an event sees the blocks completed up to that event, never a later one).

A stream is recalibrated (same reference, same window, new ERT) when, at a block's end, the ERT
the budget gives it is more than :data:`RECALIBRATE_FACTOR` times longer or shorter than the one
in use: after a block whose rate moved that much, or once the stream count has grown (or shrunk)
that much. A stream calibrated while few keys were known is therefore left at an ERT more than
that factor too short for at most one block of its key's events. At the end of its key's
second block (the first after a warm-up) a stream is recalibrated to any other ERT its share
gives (:data:`SETTLING_BLOCKS`): the keys known when it was created -- those of the partitions
read first, after a start -- no longer matter once the others are known. The rate a share is
computed from is a block's, kept until a later block's is more than the factor off it: blocks
of similar rates give a stream the same ERT, so a stream calibrated while few keys were known
(or before another partition's keys arrived) ends at the ERT of one calibrated among all of
them.
Until a rate is measured (a reference from a file, or a block whose events all carry the same
time) a stream uses :data:`UNMEASURED_ERT`.

A share is capped at :data:`MAX_BUDGET_ERT`. ERTs are rounded to two significant digits, so
streams of similar rates (and equal reference sizes) share one cached calibration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors import DriftDetector
from detectors.budget import EventRate, shortest_ert, stream_ert
from detectors.registry import StateError
from detectors.river_calibration import MAX_ERT
from stream.monitoring.streams import ks_view
from stream.settings import DEFAULT_ERT, Settings
from stream.telemetry.records import Telemetry

__all__ = [
    "EVENTS",
    "LABELLED",
    "MAX_BUDGET_ERT",
    "RECALIBRATE_FACTOR",
    "SETTLING_BLOCKS",
    "UNMEASURED_ERT",
    "RateClock",
    "Rates",
    "WorkerBudget",
    "is_labelled",
    "rates_from_data",
    "rates_to_data",
    "recalibrate",
    "worker_budget",
]

#: Rate sources: a key's events (its features' streams) and its labelled events (accuracy).
EVENTS = "events"
LABELLED = "labelled"
_SOURCES = (EVENTS, LABELLED)

#: Recalibrate when the budget's ERT for a stream is this many times off the one in use.
RECALIBRATE_FACTOR = 2.0
#: Up to the end of this block of a key's source (the first after a warm-up's), a stream is
#: recalibrated to any other ERT its share gives: the streams known when it was created (the
#: keys of partitions read first, after a start) no longer matter once the others are known.
SETTLING_BLOCKS = 2
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


def _within(value: float, anchor: float) -> bool:
    """Whether ``value`` is at most :data:`RECALIBRATE_FACTOR` times above or below ``anchor``."""
    ratio = value / anchor
    return 1 / RECALIBRATE_FACTOR <= ratio <= RECALIBRATE_FACTOR


def is_labelled(ev: Telemetry) -> bool:
    """Whether ``ev`` carries both labels (an event of the key's accuracy stream)."""
    return ev.predicted_label is not None and ev.true_label is not None


@dataclass(slots=True)
class RateClock:
    """One source's rate measurement: the block being measured and the last block's rate."""

    block: EventRate = field(default_factory=EventRate)
    rate: float = math.nan  # events/s of the last complete block (nan: none yet)
    blocks: int = 0
    # the rate the budget shares by: a block's, kept until a block's rate is more than
    # RECALIBRATE_FACTOR off it (nan: none yet)
    share: float = math.nan

    def observe(self, size: int, times: Sequence[float]) -> None:
        """Count events stamped ``times`` (in stream order) into blocks of ``size``."""
        start = 0
        while start < len(times):
            take = min(size - self.block.count, len(times) - start)
            chunk = times[start : start + take]
            self.block = self.block.observe(take, min(chunk), max(chunk))
            start += take
            if self.block.count >= size:
                rate = self.block.per_second
                if not math.isnan(rate):
                    self.rate = rate
                    if not _within(rate, self.share):
                        self.share = rate
                self.blocks += 1
                self.block = EventRate()


#: A key's rate clocks by source (:data:`EVENTS`, :data:`LABELLED`).
Rates = MutableMapping[str, RateClock]


def rates_to_data(rates: Mapping[str, RateClock]) -> dict[str, dict[str, Any]]:
    """A key's rate clocks as plain data (finite numbers and None only)."""
    out = {}
    for source, c in rates.items():
        counted = c.block.count > 0
        out[source] = {
            "count": c.block.count,
            "first": c.block.first if counted else None,
            "last": c.block.last if counted else None,
            "rate": None if math.isnan(c.rate) else c.rate,
            "blocks": c.blocks,
            "share": None if math.isnan(c.share) else c.share,
        }
    return out


def _number(value: Any, name: str) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool) or not math.isfinite(value):
        raise StateError(f"rate clock {name} must be a finite number, got {value!r}")
    return float(value)


def _natural(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise StateError(f"rate clock {name} must be an integer >= 0, got {value!r}")
    return value


def rates_from_data(data: Any, block: int) -> dict[str, RateClock]:
    """Rate clocks from :func:`rates_to_data` (none from a state written before them).

    Raises
    ------
    detectors.registry.StateError
        If ``data`` is malformed, or a clock's block holds ``block`` events or more.
    """
    if data is None:
        return {}
    if not isinstance(data, dict) or not set(data) <= set(_SOURCES):
        raise StateError(f"rate clocks must be a map of {', '.join(_SOURCES)}")
    out = {}
    for source, doc in data.items():
        if not isinstance(doc, dict):
            raise StateError("a rate clock must be a map")
        count = _natural(doc.get("count"), "count")
        if count >= block:
            raise StateError(f"rate clock count must be < {block}, got {count}")
        measured = EventRate()
        if count:
            first, last = _number(doc.get("first"), "first"), _number(doc.get("last"), "last")
            if first > last:
                raise StateError("rate clock first must be <= last")
            measured = EventRate(count, first, last)
        rate, share = doc.get("rate"), doc.get("share")
        for name, value in (("rate", rate), ("share", share)):
            if value is not None and not _number(value, name) > 0:
                raise StateError(f"rate clock {name} must be > 0, got {value!r}")
        if (rate is None) != (share is None):
            raise StateError("a rate clock's rate and share must both be measured or neither")
        out[source] = RateClock(
            measured,
            math.nan if rate is None else float(rate),
            _natural(doc.get("blocks"), "blocks"),
            math.nan if share is None else float(share),
        )
    return out


class WorkerBudget:
    """Per-stream ERTs from a whole worker's daily false-alarm budget.

    The rates are measured on each key's own clocks (:data:`Rates`, held by the key's state).

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

    Examples
    --------
    >>> budget = WorkerBudget(2.0, window_size=200, block=1000)
    >>> rates = {}
    >>> budget.observe(rates, "events", [i / 4 for i in range(1000)])  # 4 events/s
    >>> budget.ert(rates, "events", 12, "incremental_ks")  # 4 * 86,400 * 12 / 2
    2100000.0
    """

    def __init__(
        self,
        false_alarms_per_day: float,
        *,
        window_size: int,
        block: int,
        resolve_after: int | None = None,
    ) -> None:
        if not (math.isfinite(false_alarms_per_day) and false_alarms_per_day > 0):
            raise ValueError(
                f"false_alarms_per_day must be a finite number > 0, got {false_alarms_per_day!r}"
            )
        if block < 2:
            raise ValueError(f"block must be an integer >= 2, got {block!r}")
        self.false_alarms_per_day = float(false_alarms_per_day)
        self.block = int(block)
        self.floor = shortest_ert(window_size, resolve_after)

    def observe(self, rates: Rates, source: str, times: Sequence[float]) -> None:
        """Count events of a key's ``source`` stamped ``times`` (seconds, in stream order)."""
        if not times:
            return
        clock = rates.get(source)
        if clock is None:
            clock = rates[source] = RateClock()
        clock.observe(self.block, times)

    def _block_ends(self, rates: Rates, source: str, count: int) -> range:
        """Positions, among a source's next ``count`` events, of those that complete a block."""
        clock = rates.get(source)
        held = 0 if clock is None else clock.block.count
        return range(self.block - held - 1, count, self.block)

    def parts(
        self, rates: Rates, evs: Sequence[Telemetry], *, labelled: bool
    ) -> Iterator[tuple[Sequence[Telemetry], bool]]:
        """A key's ``evs`` in parts, each counted on ``rates`` before it is yielded.

        A part begins at each event that completes a block of the key's events (or, with
        ``labelled``, of its labelled events); with it comes whether it does. The parts depend
        on the key's events only, not on how they are batched.
        """
        ends = set(self._block_ends(rates, EVENTS, len(evs)))
        marked: list[int] = []
        if labelled:
            marked = [i for i, e in enumerate(evs) if is_labelled(e)]
            ends.update(marked[j] for j in self._block_ends(rates, LABELLED, len(marked)))
        bounds = sorted(ends - {0})
        starts = [0, *bounds]
        for start, stop in zip(starts, [*bounds, len(evs)], strict=True):
            part = evs[start:stop]
            self.observe(rates, EVENTS, [e.ts for e in part])
            if marked:
                self.observe(rates, LABELLED, [e.ts for e in part if is_labelled(e)])
            yield part, start in ends

    def rate(self, rates: Mapping[str, RateClock], source: str) -> float:
        """Events/s of the last complete block of a key's ``source`` (nan before one)."""
        clock = rates.get(source)
        return math.nan if clock is None else clock.rate

    def share_rate(self, rates: Mapping[str, RateClock], source: str) -> float:
        """The rate a key's ``source`` streams are given their share by (nan before a block).

        A block's rate, kept until a later block's is more than the factor off it: blocks of
        similar rates give a stream the same ERT, whichever of them it was calibrated after.
        """
        clock = rates.get(source)
        return math.nan if clock is None else clock.share

    def ert(
        self, rates: Mapping[str, RateClock], source: str, streams: int, detector: str
    ) -> float:
        """The ERT the budget gives a stream of a key's ``source`` among ``streams``."""
        rate = self.share_rate(rates, source)
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
        self,
        rates: Mapping[str, RateClock],
        source: str,
        streams: int,
        detector: str,
        current: float,
    ) -> float | None:
        """A new ERT if the one in use (``current``) is off by more than the factor, else None.

        Up to the key's :data:`SETTLING_BLOCKS`-th block of ``source`` any other ERT is due.
        """
        clock = rates.get(source)
        if clock is None or math.isnan(clock.share):
            return None
        want = self.ert(rates, source, streams, detector)
        if want == current or (clock.blocks > SETTLING_BLOCKS and _within(want, current)):
            return None
        return want

    def recalibrate(
        self,
        rates: Mapping[str, RateClock],
        source: str,
        streams: int,
        name: str,
        detector: DriftDetector | None,
    ) -> bool:
        """Recalibrate ``detector`` if :meth:`due`; return whether it was."""
        current = getattr(detector, "ert", None)
        if detector is None or current is None:
            return False
        new = self.due(rates, source, streams, name, current)
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
    )
