"""Offset rings: where the events of a stream's window are, for the offsets of drift events.

A stream's ``ring`` holds the Kafka offsets of its latest observations at ``index % len(ring)``
(``index`` counts the stream's observations from 0), so the first offset of any window of at
most ``len(ring)`` observations can be found exactly, also after a restart from a checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["first_offset", "push_ring"]


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
    tail = values[-cap:]
    # indices seen + len(values) - len(tail) + i (mod cap): at most two contiguous slices
    first = (seen + values.shape[0] - tail.shape[0]) % cap
    head = min(tail.shape[0], cap - first)
    ring[first : first + head] = tail[:head]
    ring[: tail.shape[0] - head] = tail[head:]
