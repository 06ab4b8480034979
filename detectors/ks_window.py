"""The window of an :class:`~detectors.IncrementalKS`, kept in the compiled kernel's buffers.

The kernel (:mod:`detectors.ks_kernel`) owns the detector's state as three packed arrays. A
:class:`PackedWindow` is a :class:`~detectors.windows.Window` whose ring arrays are views of
those arrays, made when they are read (the header says where they lie), and whose position
(``_start``, ``_size``) and clock (``now``) are read from and written to the kernel's header:
nothing is copied between an update and a read of the window, nothing but the three buffers is
kept, and every :class:`~detectors.windows.Window` method (``values``, ``state``, ...) works as
it is.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.ks_kernel import N_FLOATS, N_SLOTS, NOW, SIZE, START, Narrow
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
    ints, narrow, floats : ndarray
        The detector's kernel buffers: ``ints``'s header holds the ring's start and size and
        the number of slots, ``floats``'s the clock; the rings are their views (see
        :func:`detectors.ks_kernel.layout`), the slots (tags) are found from the values and
        the reference values when read. :meth:`bind` moves the window to other buffers.
    """

    __slots__ = ("_floats", "_ints", "_narrow")

    def __init__(
        self,
        capacity: int,
        duration: float | None,
        ints: npt.NDArray[np.int64],
        narrow: Narrow,
        floats: npt.NDArray[np.float64],
    ) -> None:
        validate_window_args(capacity, duration)
        self.capacity = int(capacity)
        self.duration = None if duration is None else float(duration)
        self.bind(ints, narrow, floats)

    def bind(
        self,
        ints: npt.NDArray[np.int64],
        narrow: Narrow,
        floats: npt.NDArray[np.float64],
    ) -> None:
        """Read the position from ``ints``, the clock from ``floats``, the rings from all three."""
        self._ints = ints
        self._narrow = narrow
        self._floats = floats

    @property
    def _values(self) -> npt.NDArray[np.float64]:  # type: ignore[override]
        """The ring's values (a view), after the distinct reference values."""
        at = N_FLOATS + max(self._ints.item(N_SLOTS) - 1, 0) // 2
        return self._floats[at : at + self.capacity]

    @property
    def _times(self) -> npt.NDArray[np.float64] | None:  # type: ignore[override]
        """The ring's event times (a view) after its values; None for a count window."""
        if self.duration is None:
            return None
        at = N_FLOATS + max(self._ints.item(N_SLOTS) - 1, 0) // 2 + self.capacity
        return self._floats[at : at + self.capacity]

    @property
    def _tags(self) -> Narrow:  # type: ignore[override]
        """The ring's slots (a view, int16 or int32), after the window's sorted slots."""
        return self._narrow[self.capacity : 2 * self.capacity]

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
