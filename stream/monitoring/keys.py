"""The tracked keys: their state, least recently fed evicted first beyond the cap.

A :class:`KeyStore` holds at most ``max_tracked_keys`` :class:`KeyState`; it remembers which
keys changed since their last checkpoint and which were evicted (so the worker can delete their
checkpoints), and forgets the keys of partitions handed to another worker.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors.base import EmptyList
from stream.metrics import Metrics
from stream.monitoring.categorical import NO_STREAMS, CategoryStream
from stream.monitoring.rates import RateClock
from stream.monitoring.streams import FeatureStream

__all__ = ["NO_IDS", "KeyState", "KeyStore"]

#: The ids of the commands applied to a key that has had none (shared: ``applied`` is replaced,
#: never added to).
NO_IDS: list[str] = EmptyList()


@dataclass(slots=True)
class KeyState:
    """One key: its features' streams and the offsets of its latest events."""

    features: list[FeatureStream]
    offsets: npt.NDArray[np.int64]
    seen: int = 0  # events of this key fed so far (the global index of the next one)
    partition: int = 0
    last_offset: int = -1  # offset of the latest event applied (in ``partition``)
    replay_until: int = -1  # restored from a snapshot: events up to here are already held
    changed: bool = True  # changed since the last checkpoint of the key
    last_ts: float = 0.0
    accuracy: FeatureStream | None = None
    applied: list[str] = field(default_factory=lambda: NO_IDS)  # ids of the latest commands
    categorical: list[CategoryStream] = field(default_factory=lambda: NO_STREAMS)
    rates: dict[str, RateClock] = field(default_factory=dict)  # the worker budget's clocks

    def streams(self) -> Iterator[FeatureStream]:
        """The numeric streams: the features', then the accuracy stream if any."""
        yield from self.features
        if self.accuracy is not None:
            yield self.accuracy

    def close(self) -> None:
        """Cancel the background work (queued calibrations) of the key's detectors."""
        for fs in self.streams():
            fs.close()
        for cs in self.categorical:
            cs.close()


class KeyStore:
    """The tracked keys, in least recently fed order.

    Parameters
    ----------
    max_keys : int
        Keys kept; the least recently fed is evicted beyond it.
    metrics : Metrics, optional
        Where evictions are counted and forgotten keys' series removed.
    stream_names : callable
        The stream names of a key (for the series to remove).
    """

    def __init__(
        self,
        max_keys: int,
        metrics: Metrics | None,
        stream_names: Callable[[], tuple[str, ...]],
    ) -> None:
        self.max_keys = max_keys
        self.metrics = metrics
        self.stream_names = stream_names
        self.keys: OrderedDict[str, KeyState] = OrderedDict()
        self.evictions = 0
        self.evicted: list[tuple[str, int]] = []  # (key, partition) evicted since last taken
        self.accuracy_streams = 0  # keys with an accuracy stream

    def get(self, key: str, new: Callable[[], KeyState]) -> KeyState:
        """``key``'s state, made by ``new`` if it is not tracked; it becomes the most recent."""
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = new()
            self.trim()
        else:
            self.keys.move_to_end(key)
        return state

    def put(self, key: str, state: KeyState) -> None:
        """Track ``state`` as ``key``'s (most recent), in place of any held."""
        old = self.keys.pop(key, None)
        if old is not None and old.accuracy is not None:
            self.accuracy_streams -= 1
        self.keys[key] = state
        if state.accuracy is not None:
            self.accuracy_streams += 1

    def pop(self, key: str) -> KeyState | None:
        """Stop tracking ``key`` (its detectors closed); return its state, if it was tracked."""
        state = self.keys.pop(key, None)
        if state is not None:
            state.close()
            if state.accuracy is not None:
                self.accuracy_streams -= 1
        return state

    def trim(self) -> None:
        """Evict the least recently fed keys beyond the cap."""
        while len(self.keys) > self.max_keys:
            old = next(iter(self.keys))
            state = self.pop(old)
            assert state is not None
            self.evictions += 1
            self.evicted.append((old, state.partition))
            if self.metrics is not None:
                self.metrics.key_evictions.inc()
                self.metrics.forget(old, self.stream_names())

    def drop_partitions(self, partitions: Collection[int]) -> int:
        """Forget the keys of ``partitions``; return how many."""
        gone = [k for k, st in self.keys.items() if st.partition in partitions]
        for k in gone:
            self.pop(k)
            if self.metrics is not None:
                self.metrics.forget(k, self.stream_names())
        return len(gone)

    def take_changed(self, partition: int) -> list[str]:
        """Keys of ``partition`` changed since last taken (and mark them unchanged)."""
        out = [k for k, st in self.keys.items() if st.changed and st.partition == partition]
        for k in out:
            self.keys[k].changed = False
        return out

    def take_evicted(self) -> list[tuple[str, int]]:
        """(key, partition) pairs evicted since last taken."""
        out, self.evicted = self.evicted, []
        return out
