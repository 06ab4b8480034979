"""Offset rings: where the events of a stream's window are, for the offsets of drift events.

A stream's ``ring`` holds the Kafka offsets of its latest observations at ``index % len(ring)``
(``index`` counts the stream's observations from 0), so the first offset of any window of at
most ``len(ring)`` observations can be found exactly, also after a restart from a checkpoint.

A ring starts filled with a *fill* value (``-1`` for offsets, ``False`` for the accuracy
stream's errors) and its ``seen`` count at 0; while ``seen < len(ring)`` only ``ring[:seen]``
has been written. Checkpoints hold that filled prefix only (:func:`ring_to_data`), and
:func:`ring_from_data` reads either it or a whole ring back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.registry import StateError

__all__ = [
    "NO_ERROR",
    "NO_OFFSET",
    "RingError",
    "first_offset",
    "push_ring",
    "ring_from_data",
    "ring_to_data",
]

#: The value of an offset ring's slots not written yet.
NO_OFFSET = -1
#: The value of the accuracy stream's error ring's slots not written yet.
NO_ERROR = False


class RingError(StateError):
    """A ring in a checkpoint that cannot be read back (wrong type, dtype, shape or length).

    Parameters
    ----------
    name : str
        The ring's field, as named in the message.
    detail : str
        What is wrong with it.
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name} {detail}")
        self.name = name
        self.detail = detail


def first_offset(
    ring: npt.NDArray[np.int64],
    base: int,
    batch_offsets: npt.NDArray[np.int64],
    pos: int,
    n_window: int,
) -> int:
    """Offset of the first event of a window of ``n_window`` ending at batch position ``pos``.

    ``base`` is the stream index of the batch's first event; ``ring`` holds the offsets of the
    events before it at ``index % len(ring)``.
    """
    first = base + pos - max(n_window, 1) + 1
    if first >= base:
        return int(batch_offsets[first - base])
    return int(ring[first % ring.shape[0]])


def push_ring(ring: npt.NDArray[Any], seen: int, values: npt.NDArray[Any]) -> None:
    """Write ``values`` (stream indices ``seen, seen + 1, ...``) into ``ring``."""
    cap = ring.shape[0]
    if values.shape[0] == 1:  # one event of the key in the batch: common with many keys
        ring[seen % cap] = values[0]
        return
    tail = values[-cap:]
    # indices seen + len(values) - len(tail) + i (mod cap): at most two contiguous slices
    first = (seen + values.shape[0] - tail.shape[0]) % cap
    head = min(tail.shape[0], cap - first)
    ring[first : first + head] = tail[:head]
    ring[: tail.shape[0] - head] = tail[head:]


def ring_to_data(ring: npt.NDArray[Any], seen: int, fill: Any) -> npt.NDArray[Any]:
    """The part of ``ring`` a checkpoint holds: its filled prefix, or all of it once full.

    Parameters
    ----------
    ring : numpy.ndarray
        The ring (``index % len(ring)`` layout, unwritten slots holding ``fill``).
    seen : int
        Values pushed into it so far.
    fill : scalar
        The value of its unwritten slots. Should a slot past ``seen`` hold another value, the
        whole ring is written (nothing is lost; :func:`ring_from_data` reads either).

    Returns
    -------
    numpy.ndarray
        A copy: ``ring[:seen]`` while ``seen < len(ring)``, else the whole ring.

    Examples
    --------
    >>> import numpy as np
    >>> ring = np.full(5, -1, dtype=np.int64)
    >>> push_ring(ring, 0, np.array([7, 8], dtype=np.int64))
    >>> ring_to_data(ring, 2, -1)
    array([7, 8])
    >>> ring_from_data(ring_to_data(ring, 2, -1), np.int64, 5, 2, -1, "offsets")
    array([ 7,  8, -1, -1, -1])
    """
    if seen >= ring.shape[0] or np.any(ring[seen:] != fill):
        return ring.copy()
    return ring[:seen].copy()


def ring_from_data(
    value: Any, dtype: type, capacity: int, seen: int, fill: Any, name: str
) -> npt.NDArray[Any]:
    """A ring of ``capacity`` slots from :func:`ring_to_data` (or from a whole ring).

    Parameters
    ----------
    value : numpy.ndarray
        The ring as read back: all of its ``capacity`` slots (snapshot versions 3 and 4, and a
        full ring), or its ``min(seen, capacity)`` filled ones (version 5).
    dtype : type
        The ring's dtype (``np.int64``, ``np.bool_``).
    capacity : int
        Its slots (the window size).
    seen : int
        Values pushed into it (the stream's count, already checked).
    fill : scalar
        The value of the slots not written yet.
    name : str
        The field, for the error message.

    Returns
    -------
    numpy.ndarray
        A new, writable array of ``capacity`` values, padded with ``fill``.

    Raises
    ------
    RingError
        (a :class:`~detectors.registry.StateError`) if ``value`` is not a 1-d array of
        ``dtype``, or holds neither ``capacity`` nor ``min(seen, capacity)`` values.
    """
    want = np.dtype(dtype)
    if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype != want:
        got = (
            f"a {value.ndim}-d {value.dtype} array"
            if isinstance(value, np.ndarray)
            else type(value).__name__
        )
        raise RingError(name, f"must be a 1-d {want} array, got {got}")
    filled = min(seen, capacity)
    if value.shape[0] not in (capacity, filled):
        raise RingError(
            name,
            f"must hold {capacity} entries or its {filled} filled ones, got {value.shape[0]}",
        )
    out = np.full(capacity, fill, dtype=want)
    out[: value.shape[0]] = value
    return out
