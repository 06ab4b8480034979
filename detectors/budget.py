"""A whole worker's false-alarm budget, turned into each stream's expected run time (ERT).

People think in pages a day, not observations per false alarm. :func:`stream_ert` takes the
number of false alarms a day the whole worker may raise, the number of streams that can alarm
(every monitored (key, feature) pair, accuracy streams included) and one stream's event rate,
and returns the ERT that gives that stream an equal share of the budget:

``ert = events_per_second * 86,400 * streams / false_alarms_per_day``

Summed over streams, the expected false alarms a day are then exactly the budget, whatever
each stream's rate. A stream's rate is measured by :class:`EventRate` from event times (its
warm-up, or a replay's timestamps); :meth:`EventRate.changed` says when it has moved enough
to recalibrate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from detectors.calibration import MIN_ERT_EPISODES

__all__ = ["DEFAULT_FALSE_ALARMS_PER_DAY", "EventRate", "shortest_ert", "stream_ert"]

SECONDS_PER_DAY = 86_400.0

#: Default whole-worker budget: false drift episodes a day across all its streams.
DEFAULT_FALSE_ALARMS_PER_DAY = 0.5


def shortest_ert(window_size: int, resolve_after: int | None = None, stride: int = 1) -> float:
    """The shortest ERT a KS detector can be calibrated to (five false episodes' length)."""
    return float(MIN_ERT_EPISODES * (window_size + (resolve_after or window_size) * stride))


def stream_ert(
    false_alarms_per_day: float,
    streams: int,
    events_per_second: float,
    *,
    floor: float = 0.0,
) -> float:
    """One stream's ERT (observations between false alarms) from the worker's daily budget.

    Parameters
    ----------
    false_alarms_per_day : float
        False alarms a day the whole worker may raise (> 0).
    streams : int
        Streams that can alarm, accuracy streams included (>= 1).
    events_per_second : float
        This stream's measured event rate (> 0).
    floor : float
        Smallest ERT to return (e.g. :func:`shortest_ert` of the detector); a stream so slow
        that its share would need a shorter ERT then raises fewer false alarms than its share.

    Returns
    -------
    float

    Examples
    --------
    Two false alarms a day across 40 streams, for a stream of 5 events/s:

    >>> stream_ert(2.0, 40, 5.0)
    8640000.0
    """
    for name, value in (
        ("false_alarms_per_day", false_alarms_per_day),
        ("events_per_second", events_per_second),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise ValueError(f"streams must be an integer >= 1, got {streams!r}")
    ert = events_per_second * SECONDS_PER_DAY * streams / false_alarms_per_day
    return max(ert, float(floor))


@dataclass(frozen=True, slots=True)
class EventRate:
    """Events per second of one stream, measured from its event times (plain data).

    Attributes
    ----------
    count : int
        Events seen.
    first, last : float
        Earliest and latest event time (seconds).
    """

    count: int = 0
    first: float = math.inf
    last: float = -math.inf

    def observe(self, count: int, first: float, last: float) -> EventRate:
        """This measurement extended by ``count`` events stamped between ``first`` and ``last``."""
        if count < 1:
            return self
        return EventRate(self.count + count, min(self.first, first), max(self.last, last))

    @property
    def per_second(self) -> float:
        """The rate, or nan before two events at different times."""
        span = self.last - self.first
        if self.count < 2 or not span > 0:
            return math.nan
        return (self.count - 1) / span

    def changed(self, calibrated_at: float, factor: float = 2.0) -> bool:
        """True when the rate is more than ``factor`` times above or below ``calibrated_at``."""
        rate = self.per_second
        if math.isnan(rate) or not calibrated_at > 0:
            return False
        return rate > factor * calibrated_at or rate * factor < calibrated_at
