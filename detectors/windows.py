"""Sliding windows over a stream: count-based, or time-based with a count cap.

A :class:`Window` is a FIFO ring buffer of values (and, for time windows, event times; optionally
an integer tag per value that a detector uses for its own bookkeeping). It never allocates after
construction, so its memory is fixed by ``capacity``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

_T = TypeVar("_T", bound=np.generic)

__all__ = ["Window", "check_array", "validate_window_args"]


def validate_window_args(window_size: int, duration: float | None) -> None:
    """Raise ``ValueError`` naming the parameter if a window specification is invalid."""
    if isinstance(window_size, bool) or not isinstance(window_size, int | np.integer):
        raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
    if window_size < 1:
        raise ValueError(f"window_size must be an integer >= 1, got {window_size!r}")
    if duration is not None and not (
        isinstance(duration, int | float) and math.isfinite(duration) and duration > 0
    ):
        raise ValueError(f"duration must be a finite number of seconds > 0, got {duration!r}")


def check_array(value: Any, dtype: type, size: int | None, name: str) -> npt.NDArray[Any]:
    """``value`` if it is a 1-d array of ``dtype`` (of ``size`` entries), else ``ValueError``."""
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != np.dtype(dtype):
        raise ValueError(f"{name} must be a 1-d {np.dtype(dtype)} array")
    if size is not None and value.shape[0] != size:
        raise ValueError(f"{name} must hold {size} entries, got {value.shape[0]}")
    return value


class Window:
    """FIFO of the latest observations.

    Parameters
    ----------
    capacity : int
        Most observations held; the oldest is dropped when a new one arrives at capacity.
    duration : float, optional
        If given, also drop observations whose event time is ``<= now - duration``, where
        ``now`` is the latest event time seen. Times are made monotone: an observation stamped
        earlier than one already seen is taken to arrive at the latest time.
    tagged : bool
        Keep an ``int32`` tag per observation.
    """

    __slots__ = ("_size", "_start", "_tags", "_times", "_values", "capacity", "duration", "now")

    def __init__(self, capacity: int, duration: float | None = None, *, tagged: bool = False):
        validate_window_args(capacity, duration)
        self.capacity = int(capacity)
        self.duration = None if duration is None else float(duration)
        self.now = -math.inf
        self._values = np.zeros(self.capacity, dtype=np.float64)
        self._times = None if duration is None else np.zeros(self.capacity, dtype=np.float64)
        self._tags = np.zeros(self.capacity, dtype=np.int32) if tagged else None
        self._start = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def state(self) -> dict[str, Any]:
        """The window as plain data (its entries oldest first); see :meth:`from_state`."""
        return {
            "capacity": self.capacity,
            "duration": self.duration,
            "now": self.now,
            "values": self.values(),
            "times": None if self._times is None else self.times(),
            "tags": None if self._tags is None else self.tags(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Window:
        """A window from :meth:`state`; ``ValueError`` if the state is malformed."""
        capacity, duration, now = state["capacity"], state["duration"], state["now"]
        tags, times, values = state["tags"], state["times"], state["values"]
        window = cls(capacity, duration, tagged=tags is not None)
        if not isinstance(now, float) or math.isnan(now):
            raise ValueError(f"window clock must be a float, got {now!r}")
        size = check_array(values, np.float64, None, "window values").shape[0]
        if size > window.capacity:
            raise ValueError(f"window holds {size} values, more than its capacity")
        window._values[:size] = values
        if window._times is not None:
            window._times[:size] = check_array(times, np.float64, size, "window times")
        elif times is not None:
            raise ValueError("a count window has no times")
        if window._tags is not None:
            window._tags[:size] = check_array(tags, np.int32, size, "window tags")
        window._size = size
        window.now = now
        return window

    @property
    def full(self) -> bool:
        return self._size == self.capacity

    def _ordered(self, ring: npt.NDArray[_T]) -> npt.NDArray[_T]:
        """``ring``'s held entries, oldest first (a copy): at most two contiguous slices."""
        start, end = self._start, self._start + self._size
        if end <= self.capacity:
            return ring[start:end].copy()
        return np.concatenate((ring[start:], ring[: end - self.capacity]))

    def values(self) -> npt.NDArray[np.float64]:
        """The observations, oldest first (a copy)."""
        return self._ordered(self._values)

    def times(self) -> npt.NDArray[np.float64]:
        """Event times, oldest first (a copy); empty for count windows."""
        if self._times is None:
            return np.empty(0)
        return self._ordered(self._times)

    def tags(self) -> npt.NDArray[np.int32]:
        """Tags, oldest first (a copy)."""
        if self._tags is None:
            raise ValueError("this window keeps no tags")
        return self._ordered(self._tags)

    def clock(self, t: float | None) -> float:
        """Advance the window's clock to event time ``t``; return the time to stamp with."""
        if self._times is None:
            return 0.0
        if t is None:
            raise ValueError("t (event time in seconds) is required for a time-based window")
        if not math.isfinite(t):
            raise ValueError(f"t must be a finite time in seconds, got {t!r}")
        if t > self.now:
            self.now = t
        return self.now

    def pop_expired(self) -> list[int]:
        """Drop observations that fell out of the time window; return their tags (or [])."""
        out: list[int] = []
        if self._times is None:
            return out
        horizon = self.now - self.duration  # type: ignore[operator]
        times, tags, cap = self._times, self._tags, self.capacity
        while self._size and times[self._start] <= horizon:
            if tags is not None:
                out.append(int(tags[self._start]))
            self._start = (self._start + 1) % cap
            self._size -= 1
        return out

    def push(self, x: float, t: float = 0.0, tag: int = 0) -> int:
        """Append one observation; return the tag of the one it pushed out, or -1."""
        cap = self.capacity
        evicted = -1
        if self._size == cap:
            pos = self._start
            if self._tags is not None:
                evicted = int(self._tags[pos])
            self._start = (pos + 1) % cap
        else:
            pos = (self._start + self._size) % cap
            self._size += 1
        self._values[pos] = x
        if self._times is not None:
            self._times[pos] = t
        if self._tags is not None:
            self._tags[pos] = tag
        return evicted

    def push_many(
        self, xs: npt.NDArray[np.float64], tags: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """Append up to ``capacity`` observations of a count window; return the evicted tags."""
        b = xs.shape[0]
        if b > self.capacity or self._times is not None:
            raise ValueError("push_many takes at most `capacity` values, on count windows only")
        cap = self.capacity
        fill = min(b, cap - self._size)
        # positions (start + size + i) % cap for i < b: at most two contiguous slices, the
        # last b - fill of which overwrite (evict) the oldest entries
        first = (self._start + self._size) % cap
        head = min(b, cap - first)
        tag_ring = self._tags
        if tag_ring is None:
            evicted = np.empty(0, dtype=np.int32)
        else:
            # evicted slots are those at positions fill..b-1, read before they are overwritten
            slide = b - fill
            lo = (first + fill) % cap
            if lo + slide <= cap:
                evicted = tag_ring[lo : lo + slide].copy()
            else:
                evicted = np.concatenate((tag_ring[lo:], tag_ring[: lo + slide - cap]))
        self._values[first : first + head] = xs[:head]
        self._values[: b - head] = xs[head:]
        if tag_ring is not None and tags is not None:
            tag_ring[first : first + head] = tags[:head]
            tag_ring[: b - head] = tags[head:]
        self._size += fill
        self._start = (self._start + (b - fill)) % cap
        return evicted

    def clear(self) -> None:
        """Forget every observation (the clock is kept)."""
        self._start = 0
        self._size = 0
