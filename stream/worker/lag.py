"""Consumer lag: log end offset minus the next offset to process, per assigned partition.

The telemetry consumer refreshes it every :data:`LAG_INTERVAL` seconds on a timer of its own,
apart from fetching, so it keeps rising while a batch's delivery is retried and does not read
low between fetches. The series of a partition is removed when the partition is revoked, so
that sums over a fleet count each partition once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from prometheus_client import Gauge

__all__ = ["LAG_INTERVAL", "LagTracker", "consumer_lag", "refresh_every"]

log = logging.getLogger(__name__)

#: Seconds between two refreshes of ``driftwatch_consumer_lag``.
LAG_INTERVAL = 5.0


def consumer_lag(positions: Mapping[int, int], ends: Mapping[int, int]) -> dict[int, int]:
    """Messages still to process per partition: ``end - position`` (never below 0).

    Parameters
    ----------
    positions : mapping
        Partition -> next offset to process.
    ends : mapping
        Partition -> log end offset (the offset the next message written will get).

    Returns
    -------
    dict
        The partitions present in both, with their lag.
    """
    return {p: max(0, ends[p] - positions[p]) for p in sorted(positions) if p in ends}


class LagTracker:
    """Keeps one topic's ``driftwatch_consumer_lag`` series: set on refresh, removed on revoke.

    Parameters
    ----------
    gauge : Gauge
        ``driftwatch_consumer_lag`` (labels ``topic``, ``partition``).
    topic : str
        The telemetry topic.
    """

    def __init__(self, gauge: Gauge, topic: str) -> None:
        self.gauge = gauge
        self.topic = topic
        self.exported: set[int] = set()

    def refresh(
        self,
        positions: Mapping[int, int],
        ends: Mapping[int, int],
        assigned: Collection[int],
    ) -> dict[int, int]:
        """Set the lag of the ``assigned`` partitions; drop series of any other partition."""
        lags = consumer_lag({p: positions[p] for p in assigned if p in positions}, ends)
        for partition, lag in lags.items():
            self.gauge.labels(self.topic, str(partition)).set(lag)
        self.forget(self.exported - set(assigned))
        self.exported |= set(lags)
        return lags

    def forget(self, partitions: Collection[int]) -> None:
        """Remove the series of ``partitions`` (revoked: another worker reports them now)."""
        for partition in partitions:
            with contextlib.suppress(KeyError):
                self.gauge.remove(self.topic, str(partition))
            self.exported.discard(partition)


async def refresh_every(
    interval: float,
    refresh: Callable[[], Awaitable[object]],
    stopping: asyncio.Event,
) -> None:
    """Call ``refresh`` every ``interval`` seconds until ``stopping`` is set.

    A failing refresh is logged and tried again at the next tick (the gauge keeps its last
    values meanwhile).
    """
    while not stopping.is_set():
        try:
            await asyncio.wait_for(refresh(), timeout=max(interval, 1.0))
        except Exception as exc:  # a broker hiccup must not end the timer
            log.debug("consumer lag not refreshed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=interval)
