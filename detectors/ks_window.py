"""The window of an :class:`~detectors.IncrementalKS`, kept in the compiled kernel's buffers.

The kernel (:mod:`detectors.ks_kernel`) owns the detector's state as three packed arrays. A
:class:`PackedWindow` is a :class:`~detectors.windows.Window` whose ring arrays are views of
those arrays and whose position (``_start``, ``_size``) and clock (``now``) are read from and
written to the kernel's header: nothing is copied between an update and a read of the window,
and every :class:`~detectors.windows.Window` method (``values``, ``state``, ...) works as it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.ks_kernel import NOW, SIZE, START, Narrow
from detectors.windows import Window, validate_window_args

__all__ = ["PackedWindow"]


class PackedWindow(Window):
    """A tagged :class:`~detectors.windows.Window` over a detector's packed buffers.

    Parameters
    ----------
    capacity : int
        Most observations held.
    duration : float, optional
        Time window length in seconds (then the window keeps event times).
    ints, floats : ndarray
        The detector's kernel buffers, whose headers hold the ring's start and size and the
        clock. The rings start as arrays of their own; :meth:`bind` moves them into buffers.
    """

    __slots__ = ("_floats", "_ints")

    def __init__(
        self,
        capacity: int,
        duration: float | None,
        ints: npt.NDArray[np.int64],
        floats: npt.NDArray[np.float64],
    ) -> None:
        validate_window_args(capacity, duration)
        self.capacity = int(capacity)
        self.duration = None if duration is None else float(duration)
        self._ints = ints
        self._floats = floats
        self._values = np.zeros(self.capacity, dtype=np.float64)
        self._tags = np.zeros(self.capacity, dtype=np.int32)
        self._times = None if duration is None else np.zeros(self.capacity, dtype=np.float64)

    def bind(
        self,
        ints: npt.NDArray[np.int64],
        floats: npt.NDArray[np.float64],
        values: npt.NDArray[np.float64],
        tags: Narrow,
        times: npt.NDArray[np.float64] | None,
    ) -> None:
        """Read the position from ``ints``, the clock from ``floats``, the rings from the views."""
        self._ints = ints
        self._floats = floats
        self._values = values
        self._tags = tags  # type: ignore[assignment]  # int16 or int32; tags() gives int32
        self._times = times

    def tags(self) -> npt.NDArray[np.int32]:
        """Tags, oldest first (a copy, int32 whatever the ring's dtype)."""
        return super().tags().astype(np.int32, copy=False)

    @property
    def _start(self) -> int:
        return int(self._ints.item(START))

    @_start.setter
    def _start(self, value: int) -> None:
        self._ints[START] = value

    @property
    def _size(self) -> int:
        return int(self._ints.item(SIZE))

    @_size.setter
    def _size(self, value: int) -> None:
        self._ints[SIZE] = value

    @property
    def now(self) -> float:
        return float(self._floats.item(NOW))

    @now.setter
    def now(self, value: float) -> None:
        self._floats[NOW] = value
