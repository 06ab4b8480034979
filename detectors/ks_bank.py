"""Many :class:`~detectors.IncrementalKS` streams updated by one compiled call per batch.

A worker holds thousands of detectors of one feature (one per agent) and receives batches of
observations of many of them at once. :class:`KSBank` concatenates the detectors' packed
buffers (see :mod:`detectors.ks_kernel`) into shared ones and hands a whole batch, grouped by
stream, to :func:`detectors.ks_kernel.run_streams`: one kernel call instead of one Python call
per stream. The detectors keep working on their own (``update``, ``result``, ``state``): their
packed buffers -- the whole state the kernel reads and writes, scalars included -- *are* views
of the bank's, so nothing is copied in or out around a call.

:func:`checkpoint` and :func:`rewind` keep a copy of a detector's packed buffers and put it
back: a detector rewound is exactly as it was at its checkpoint (for a caller that undoes a
batch whose processing raised), for the cost of three array copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.base import NO_TRANSITIONS, Transition
from detectors.ks import IncrementalKS
from detectors.ks_kernel import DONE, run_streams
from detectors.ks_packed import PackedKS
from detectors.validation import finite_values

__all__ = ["KSBank", "KSCheckpoint", "checkpoint", "rewind"]


#: A packed detector's slots, in order, and all of them read in one call (AttributeError: one
#: is not set, e.g. an alpha-rule detector's ``_thresholds``).
_SLOTS = PackedKS.__slots__
_read_slots = attrgetter(*_SLOTS)
_TRANSITIONS, _PENDING = _SLOTS.index("transitions"), _SLOTS.index("_pending")
#: A slot not set, in :attr:`KSCheckpoint.slots`.
_UNSET: Any = object()


@dataclass(slots=True, eq=False)
class KSCheckpoint:
    """A detector's slots, instance dict and copies of its packed buffers (see
    :func:`checkpoint`).

    Never changed once made; not frozen, as a frozen dataclass's ``__init__`` costs about 3x
    and a caller may make one for every stream of every batch.
    """

    slots: tuple[Any, ...]  # every slot of PackedKS.__slots__, in order (_UNSET: not set)
    extra: dict[str, Any] | None  # a subclass's instance attributes, if any
    ints: npt.NDArray[np.int64]
    narrow: npt.NDArray[Any]
    floats: npt.NDArray[np.float64]


def checkpoint(det: IncrementalKS) -> KSCheckpoint:
    """What :func:`rewind` needs to put ``det`` back as it is now.

    The slots' values are held as they are: the mutable ones are either replaced, never
    changed in place (an ert detector's ``_thresholds``, the shared empty ``transitions``), or
    copied (a list of transitions).
    """
    try:
        slots = _read_slots(det)
    except AttributeError:  # a slot not set (an alpha-rule detector, a state without one)
        slots = tuple(getattr(det, name, _UNSET) for name in _SLOTS)
    transitions = slots[_TRANSITIONS]
    if transitions is not NO_TRANSITIONS and transitions is not _UNSET:
        slots = (*slots[:_TRANSITIONS], list(transitions), *slots[_TRANSITIONS + 1 :])
    extra = getattr(det, "__dict__", None)
    return KSCheckpoint(
        slots,
        dict(extra) if extra else None,
        det._ints.copy(),
        det._narrow.copy(),
        det._floats.copy(),
    )


def rewind(det: IncrementalKS, saved: KSCheckpoint) -> None:
    """Put ``det`` back as it was at ``saved`` (which stays usable: buffers are copied again).

    The detector gets buffers of its own; a bank it belonged to re-packs it at its next update.
    """
    if det._pending is not None and det._pending is not saved.slots[_PENDING]:
        det.close()  # a calibration started since (a new reference): not needed any more
    for name, value in zip(_SLOTS, saved.slots, strict=True):
        if value is not _UNSET:
            object.__setattr__(det, name, value)
        elif hasattr(det, name):
            object.__delattr__(det, name)
    extra = getattr(det, "__dict__", None)
    if extra is not None:
        extra.clear()
        extra.update(saved.extra or {})
    det.transitions = list(det.transitions) or NO_TRANSITIONS
    det._attach(saved.ints.copy(), saved.narrow.copy(), saved.floats.copy())


def _offsets(sizes: Sequence[int]) -> npt.NDArray[np.int64]:
    out = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


class KSBank:
    """Packed state of many count-window :class:`~detectors.IncrementalKS` detectors.

    Parameters
    ----------
    detectors : sequence of IncrementalKS
        The streams, in the order batches are grouped by. Count windows only (no
        ``duration``); each detector may belong to one bank at a time.

    Notes
    -----
    :meth:`update` leaves every detector exactly as ``detectors[j].update_many`` of its part of
    the batch would (same transitions, window, counts and alarm state; the same kernel runs).
    A detector updated on its own in between needs nothing (it writes into the bank's
    buffers); one given a new reference (:meth:`IncrementalKS.set_reference`, which gives it
    buffers of a new size) is re-packed at the next :meth:`update` that touches it.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors import IncrementalKS
    >>> from detectors.ks_bank import KSBank
    >>> rng = np.random.default_rng(0)
    >>> dets = [IncrementalKS(rng.normal(size=300), window_size=50, alpha=1e-3) for _ in range(3)]
    >>> bank = KSBank(dets)
    >>> for b in range(20):
    ...     xs = rng.normal(1.5 if b >= 10 else 0.0, 1.0, size=(3, 10))  # stream 0, 1, 2
    ...     for j, ts in enumerate(bank.update(xs.ravel(), [10, 10, 10])):
    ...         for t in ts:
    ...             print(f"stream {j}: {t.kind} at {t.index}")
    stream 1: drift_started at 120
    stream 2: drift_started at 114
    stream 0: drift_started at 131
    """

    def __init__(self, detectors: Sequence[IncrementalKS]) -> None:
        dets = tuple(detectors)
        for j, det in enumerate(dets):
            if not isinstance(det, IncrementalKS):
                raise ValueError(f"detectors[{j}] must be an IncrementalKS, got {type(det)!r}")
            if det.duration is not None:
                raise ValueError(f"detectors[{j}] has a time window; a bank takes count windows")
        if len({id(d) for d in dets}) != len(dets):
            raise ValueError("each detector may appear once in a bank")
        self.detectors = dets
        self._pack_all()

    def __len__(self) -> int:
        return len(self.detectors)

    def _pack_all(self) -> None:
        """Copy every detector's buffers into shared ones and make the detectors views of them."""
        dets = self.detectors
        self._ints_off = _offsets([d._ints.shape[0] for d in dets])
        self._narrow_off = _offsets([d._narrow.shape[0] for d in dets])
        self._floats_off = _offsets([d._floats.shape[0] for d in dets])
        self._ints = np.concatenate([d._ints for d in dets]) if dets else np.empty(0, np.int64)
        self._narrow = np.concatenate([d._narrow for d in dets]) if dets else np.empty(0, np.int32)
        self._floats = np.concatenate([d._floats for d in dets]) if dets else np.empty(0)
        i, j32, f = self._ints_off, self._narrow_off, self._floats_off
        for j, det in enumerate(dets):
            det._attach(
                self._ints[i[j] : i[j + 1]],
                self._narrow[j32[j] : j32[j + 1]],
                self._floats[f[j] : f[j + 1]],
            )
        self._bound = [d._ints for d in dets]  # a detector with other buffers needs re-packing

    def update(self, xs: npt.ArrayLike, counts: npt.ArrayLike) -> list[list[Transition]]:
        """Apply a batch grouped by stream: ``counts[j]`` observations of stream ``j`` in turn.

        Parameters
        ----------
        xs : array-like of float
            The observations, stream 0's first (in arrival order), then stream 1's, ...
        counts : array-like of int
            Observations per stream (``len(detectors)`` entries summing to ``len(xs)``).

        Returns
        -------
        list of list of Transition
            Each stream's episode changes in this batch (also in its ``transitions``).

        Raises
        ------
        ValueError
            If ``xs`` holds a non-finite value or ``counts`` does not match; nothing is applied.
        """
        values = finite_values(xs)
        per = np.asarray(counts, dtype=np.int64).ravel()
        dets = self.detectors
        if per.shape[0] != len(dets) or (per < 0).any() or per.sum() != values.size:
            raise ValueError(
                f"counts must give {len(dets)} non-negative sizes summing to "
                f"{values.size}, got {per.shape[0]} summing to {int(per.sum())}"
            )
        active = np.flatnonzero(per).tolist()
        bound, repack = self._bound, False
        for j in active:  # what IncrementalKS.update_many does before its kernel call
            det = dets[j]
            repack = repack or det._ints is not bound[j]
            if det.transitions:
                det.transitions = NO_TRANSITIONS
            det._drift_detected = False
            det._result = None
            if det._pending is not None:
                det._sync_testable()
        if repack:  # a new reference gave a detector buffers of its own
            self._pack_all()
        batch_off = _offsets(per.tolist())
        done = np.zeros(len(dets), dtype=np.int64)
        reasons = np.zeros(len(dets), dtype=np.int64)
        stopped: set[int] = set()
        while run_streams(
            self._ints,
            self._narrow,
            self._floats,
            self._ints_off,
            self._narrow_off,
            self._floats_off,
            values,
            batch_off,
            done,
            reasons,
        ):
            for j in np.flatnonzero(reasons != DONE).tolist():
                dets[j]._after_stop(int(reasons[j]))  # writes into the bank's buffers
                stopped.add(j)
        out: list[list[Transition]] = [[] for _ in dets]
        for j in stopped:
            det = dets[j]
            det._result = None
            det._drift_detected = det._started_last()
            out[j] = det.transitions
        return out
