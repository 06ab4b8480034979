"""Many :class:`~detectors.IncrementalKS` streams updated by one compiled call per batch.

A worker holds thousands of detectors of one feature (one per agent) and receives batches of
observations of many of them at once. :class:`KSBank` packs the detectors' arrays (references,
slot counts, window rings, thresholds) into shared buffers and hands a whole batch, grouped by
stream, to :func:`detectors.ks_kernel.run_streams`: one kernel call instead of one Python call
per stream. The detectors keep working on their own (``update``, ``result``, ``state``): their
arrays *are* views of the bank's buffers, and only their scalar state is copied in and out, for
the streams a batch touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, Transition
from detectors.ks import IncrementalKS, _finite_values
from detectors.ks_kernel import (
    DONE,
    IN_DRIFT,
    N_FLOATS,
    N_INTS,
    NEED_THRESHOLDS,
    RESUME,
    STARTED,
    run_streams,
)

__all__ = ["KSBank"]


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
    A detector given a new reference (:meth:`IncrementalKS.set_reference`) or a finished
    calibration is re-packed at the next :meth:`update`.

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
        """Copy every detector's arrays into the shared buffers and make them views of these."""
        dets = self.detectors
        s = len(dets)
        refs = [np.frombuffer(d._ref, dtype=np.float64) for d in dets]
        self._ref_off = _offsets([r.shape[0] for r in refs])
        self._slot_off = _offsets([d._counts.shape[0] for d in dets])
        self._ring_off = _offsets([d.window_size for d in dets])
        self._table_off = _offsets([d.window_size + 1 for d in dets])
        self._ref = np.concatenate(refs) if s else np.empty(0)
        self._ref_end = np.concatenate([d._ref_end for d in dets]) if s else np.empty(0, np.int64)
        self._counts = np.concatenate([d._counts for d in dets]) if s else np.empty(0, np.int32)
        self._values = np.zeros(int(self._ring_off[-1]), dtype=np.float64)
        self._tags = np.zeros(int(self._ring_off[-1]), dtype=np.int32)
        self._table = np.full((int(self._table_off[-1]), 2), -1, dtype=np.int64)
        self._ints = np.zeros((s, N_INTS), dtype=np.int64)
        self._floats = np.zeros((s, N_FLOATS), dtype=np.float64)
        self._owned_ref = [d._ref for d in dets]
        # what each row was packed from: a row is current while its detector's n_seen and
        # calibration are unchanged (a read of ``gap`` only tightens the row's valid bound)
        self._seen: list[int | None] = [None] * s
        self._cal: list[object] = [None] * s
        for j, det in enumerate(dets):
            self._bind(j, det)

    def _bind(self, j: int, det: IncrementalKS) -> None:
        """Make detector ``j``'s counts, rings and threshold table views of the buffers."""
        s0, s1 = self._slot_off[j], self._slot_off[j + 1]
        r0, r1 = self._ring_off[j], self._ring_off[j + 1]
        t0, t1 = self._table_off[j], self._table_off[j + 1]
        win = det._window
        assert win._tags is not None
        self._values[r0:r1] = win._values
        self._tags[r0:r1] = win._tags
        win._values = self._values[r0:r1]
        win._tags = self._tags[r0:r1]
        self._counts[s0:s1] = det._counts
        det._counts = self._counts[s0:s1]
        table = self._table[t0:t1]
        table[:] = det._threshold_table()
        det._table = table

    def _refresh(self, j: int, det: IncrementalKS) -> bool:
        """Re-pack stream ``j`` if it changed outside the bank; True if all had to be re-packed."""
        if det._ref is not self._owned_ref[j]:  # a new reference: new sizes, re-pack all
            self._pack_all()
            return True
        if det._table is None:  # a calibration was installed
            t0, t1 = self._table_off[j], self._table_off[j + 1]
            table = self._table[t0:t1]
            table[:] = det._threshold_table()
            det._table = table
        return False

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
        values = _finite_values(xs)
        per = np.asarray(counts, dtype=np.int64).ravel()
        if per.shape[0] != len(self.detectors) or (per < 0).any() or per.sum() != values.size:
            raise ValueError(
                f"counts must give {len(self.detectors)} non-negative sizes summing to "
                f"{values.size}, got {per.shape[0]} summing to {int(per.sum())}"
            )
        active = np.flatnonzero(per).tolist()
        for j in active:
            if self._refresh(j, self.detectors[j]):
                break
        seen, cals = self._seen, self._cal
        for j in active:
            det = self.detectors[j]
            if det.n_seen != seen[j] or det._calibration is not cals[j] or det._pending is not None:
                self._ints[j], self._floats[j] = det._pack(0)
                cals[j] = det._calibration
            if det.transitions:
                det.transitions = []
            det._drift_detected = False
        batch_off = _offsets(per.tolist())
        done = np.zeros(len(self.detectors), dtype=np.int64)
        reasons = np.zeros(len(self.detectors), dtype=np.int64)
        while True:
            stopped = run_streams(
                self._ints,
                self._floats,
                self._table,
                self._table_off,
                self._ref,
                self._ref_off,
                self._ref_end,
                self._counts,
                self._slot_off,
                self._values,
                self._tags,
                np.empty(0, dtype=np.float64),
                self._ring_off,
                values,
                np.empty(0, dtype=np.float64),
                batch_off,
                done,
                reasons,
            )
            if not stopped:
                break
            for j in np.flatnonzero(reasons != DONE).tolist():
                self._resolve_stop(j, int(reasons[j]))
        out: list[list[Transition]] = [[] for _ in self.detectors]
        rows = self._ints[active, : IN_DRIFT + 1].tolist()
        for j, row in zip(active, rows, strict=True):
            det = self.detectors[j]
            win = det._window
            win._start, win._size, det.n_seen, det._G, det._ops, det._below, in_drift = row
            det._in_drift = bool(in_drift)
            det._result = None
            seen[j] = det.n_seen
            out[j] = det.transitions
            last = det.transitions[-1] if det.transitions else None
            det._drift_detected = (
                last is not None and last.kind == DRIFT_STARTED and last.index == det.n_seen
            )
        return out

    def _resolve_stop(self, j: int, reason: int) -> None:
        """Do for stream ``j`` what the kernel stopped for: thresholds, or a transition."""
        det = self.detectors[j]
        det._unpack(self._ints[j], self._floats[j])
        det._result = None
        m = det._window._size
        high, low = det._thresholds_for(m)  # may install a calibration (a new table)
        self._refresh(j, det)
        if reason == NEED_THRESHOLDS:
            assert det._table is not None
            det._table[m] = high, low
        elif reason == STARTED:
            det._record(DRIFT_STARTED, high / (det._n * m))
        else:
            det._record(DRIFT_RESOLVED, low / (det._n * m))
        resume = int(self._ints[j, RESUME])
        self._ints[j], self._floats[j] = det._pack(resume)
        self._cal[j] = det._calibration
