"""Rolling macro precision, recall and F1 over the last ``window`` labelled predictions.

A rolling confusion matrix: each (true label, predicted label) pair enters the window and
leaves it ``window`` pairs later. The macro averages are taken over the classes seen in the
window (a class counts while it is the true or the predicted label of a pair in the window), as
river's ``utils.Rolling(metrics.MacroPrecision(), window)`` (and ``MacroRecall``, ``MacroF1``)
compute them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["ClassificationScores", "RollingClassification"]


class ClassificationScores(NamedTuple):
    """Macro averages over the classes seen in the window (nan before any pair)."""

    precision: float
    recall: float
    f1: float


class RollingClassification:
    """Rolling confusion counts of the last ``window`` (true, predicted) label pairs.

    Parameters
    ----------
    window : int
        How many of the latest pairs are counted (>= 1).

    Notes
    -----
    For a class :math:`c` with :math:`tp_c` pairs predicted and true :math:`c`, :math:`P_c`
    pairs predicted :math:`c` and :math:`T_c` pairs truly :math:`c`: precision
    :math:`tp_c / P_c` (0 when :math:`P_c = 0`), recall :math:`tp_c / T_c` (0 when
    :math:`T_c = 0`), F1 their harmonic mean (0 when both are 0). Each macro average is the
    sum over the classes of the window divided by their number, as in river's ``MacroPrecision``,
    ``MacroRecall`` and ``MacroF1``.

    Labels are coded to integers; the code book holds at most ``2 * window`` labels (those of
    the window, which has at most that many), so memory is bounded by the window.

    Examples
    --------
    >>> r = RollingClassification(4)
    >>> r.update_many(["a", "b", "b", "c", "c"], ["a", "b", "c", "c", "b"])
    >>> s = r.scores()
    >>> print(f"{s.precision:.4f} {s.recall:.4f} {s.f1:.4f}")
    0.5000 0.5000 0.5000
    """

    __slots__ = ("_codes", "_counts", "_labels", "_rings", "_seen", "window")

    def __init__(self, window: int) -> None:
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.window = window
        # the rings of true and predicted label codes (rows 0 and 1), in the narrowest dtype
        # that holds the codes in use (int8 up to 128 labels; widened by _fit as more arrive)
        self._rings: npt.NDArray[np.signedinteger[Any]] = np.full((2, window), -1, dtype=np.int8)
        self._seen = 0  # pairs seen (the global index of the next one)
        self._labels: list[str] = []
        self._codes: dict[str, int] = {}
        # per class: pairs whose true label it is, whose predicted label it is, true positives
        self._counts = np.zeros((3, 0), dtype=np.int64)

    @property
    def n_seen(self) -> int:
        """Pairs seen since the start."""
        return self._seen

    def copy(self) -> RollingClassification:
        """An independent copy (the counts, rings and code book copied; labels shared)."""
        out = object.__new__(RollingClassification)
        out.window, out._seen = self.window, self._seen
        out._rings, out._counts = self._rings.copy(), self._counts.copy()
        out._labels, out._codes = list(self._labels), dict(self._codes)
        return out

    def _code(self, label: str) -> int:
        code = self._codes.get(label)
        if code is None:
            if type(label) is str:  # one copy of each label for all the windows that hold it
                label = sys.intern(label)
            code = self._codes[label] = len(self._labels)
            self._labels.append(label)
        return code

    def _encode(self, labels: Sequence[str]) -> npt.NDArray[np.int64]:
        """The labels' codes (at least one label), new labels coded in order of arrival."""
        codes = self._codes
        try:  # every label seen before: one lookup of them all (a tuple, or one code)
            got = itemgetter(*labels)(codes) if len(labels) > 1 else (codes[labels[0]],)
        except KeyError:  # a label not seen yet
            got = [self._code(y) for y in labels]
        return np.fromiter(got, dtype=np.int64, count=len(labels))

    def update(self, y_true: str, y_pred: str) -> None:
        """Count one pair (the oldest leaves once the window is full)."""
        self.update_many([y_true], [y_pred])

    def update_many(self, y_true: Sequence[str], y_pred: Sequence[str]) -> None:
        """Count pairs in order; the counts afterwards equal calling :meth:`update` on each."""
        n = len(y_true)
        if len(y_pred) != n:
            raise ValueError(f"y_true has {n} labels but y_pred has {len(y_pred)}")
        if n == 0:
            return
        if n > self.window:  # only the last window pairs matter
            self._seen += n - self.window
            y_true, y_pred, n = y_true[-self.window :], y_pred[-self.window :], self.window
        t, p = self._encode(y_true), self._encode(y_pred)
        self._grow()
        self._fit()
        _roll(self._rings, self._counts, t, p, self._seen)
        self._seen += n
        if len(self._labels) > 2 * self.window:
            self._compact()

    def _grow(self) -> None:
        extra = len(self._labels) - self._counts.shape[1]
        if extra > 0:
            pad = np.zeros((3, extra), dtype=np.int64)
            self._counts = np.concatenate([self._counts, pad], axis=1)

    def _fit(self) -> None:
        """Widen the rings when the largest code in use does not fit their dtype."""
        if len(self._labels) > _CAPACITY[self._rings.dtype.itemsize]:
            self._rings = self._rings.astype(_code_dtype(len(self._labels)))

    def _compact(self) -> None:
        """Forget the labels no longer in the window (their codes are reused)."""
        counts, rings = self._counts, self._rings
        keep = np.flatnonzero((counts[0] > 0) | (counts[1] > 0))
        remap = np.full(len(self._labels), -1, dtype=np.int64)
        remap[keep] = np.arange(keep.shape[0])
        filled = rings >= 0
        rings[filled] = remap[rings[filled]]
        self._labels = [self._labels[i] for i in keep]
        self._codes = {label: i for i, label in enumerate(self._labels)}
        self._counts = counts[:, keep]

    def scores(self) -> ClassificationScores:
        """Macro precision, recall and F1 of the window (all nan before the first pair)."""
        counts = self._counts
        present = (counts[0] > 0) | (counts[1] > 0)
        k = int(np.count_nonzero(present))
        if k == 0:
            return ClassificationScores(math.nan, math.nan, math.nan)
        row, col, tp = counts[:, present].astype(np.float64)
        p = np.divide(tp, col, out=np.zeros_like(tp), where=col > 0)
        r = np.divide(tp, row, out=np.zeros_like(tp), where=row > 0)
        pr = p + r
        f1 = np.divide(2.0 * p * r, pr, out=np.zeros_like(tp), where=pr > 0)
        # fsum: exactly rounded whatever the order of the classes' codes (which depends on
        # when labels arrived and were compacted), so a restored window gives the same bits
        return ClassificationScores(
            math.fsum(p.tolist()) / k, math.fsum(r.tolist()) / k, math.fsum(f1.tolist()) / k
        )

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The window as plain data: the pairs' label codes and the code book.

        The rings are given in their own (narrowest) dtype, and only their filled part while
        the window fills: the pairs seen so far are its first ``seen`` slots."""
        filled = min(self._seen, self.window)
        rings = self._rings if filled == self.window else self._rings[:, :filled]
        return {
            "window": self.window,
            "seen": self._seen,
            "labels": list(self._labels),
            "true": rings[0].copy(),
            "pred": rings[1].copy(),
        }

    @classmethod
    def from_state(cls, data: Any) -> RollingClassification:
        """Rebuild from :meth:`state` (counts are recomputed from the pairs); raises
        ``ValueError`` naming what is wrong."""
        names = ("window", "seen", "labels", "true", "pred")
        if not isinstance(data, dict) or not all(n in data for n in names):
            raise ValueError(f"classification state must hold {', '.join(names)}")
        window, seen, labels = data["window"], data["seen"], data["labels"]
        if not isinstance(seen, int) or isinstance(seen, bool) or seen < 0:
            raise ValueError(f"seen must be an integer >= 0, got {seen!r}")
        out = cls(window)
        if not (
            isinstance(labels, list)
            and len(labels) <= 2 * window
            and all(isinstance(x, str) for x in labels)
            and len(set(labels)) == len(labels)
        ):
            raise ValueError(f"labels must be at most {2 * window} distinct strings")
        filled = min(seen, window)
        rings: list[npt.NDArray[Any]] = []
        for name in ("true", "pred"):
            ring = data[name]
            if not (
                isinstance(ring, np.ndarray)
                and ring.dtype.kind == "i"
                and ring.shape in ((window,), (filled,))
                and bool(np.all((ring >= -1) & (ring < len(labels))))
            ):
                raise ValueError(
                    f"{name} must be {filled} or {window} integer codes in [-1, {len(labels)})"
                )
            if ring.shape[0] < window:  # the filled part only: the rest is empty
                ring = np.concatenate([ring, np.full(window - ring.shape[0], -1, ring.dtype)])
            rings.append(ring.astype(np.int64))
        expected = np.zeros(window, dtype=np.bool_)
        expected[(seen - np.arange(1, filled + 1)) % window] = True
        if not (
            np.array_equal(rings[0] >= 0, expected) and np.array_equal(rings[1] >= 0, expected)
        ):
            raise ValueError(f"the rings must hold exactly the last {filled} pairs")
        out._labels = [sys.intern(x) if type(x) is str else x for x in labels]
        out._codes = {label: i for i, label in enumerate(out._labels)}
        out._rings, out._seen = np.stack(rings).astype(_code_dtype(len(labels))), seen
        k = len(labels)
        t, p = rings[0][expected], rings[1][expected]
        out._counts = np.stack(
            [
                np.bincount(t, minlength=k),
                np.bincount(p, minlength=k),
                np.bincount(t[t == p], minlength=k),
            ]
        ).astype(np.int64)
        return out


@njit(cache=True)
def _roll(
    rings: npt.NDArray[np.signedinteger[Any]],
    counts: npt.NDArray[np.int64],
    t: npt.NDArray[np.int64],
    p: npt.NDArray[np.int64],
    seen: int,
) -> None:  # pragma: no cover - compiled
    """Put the pairs ``(t[i], p[i])`` (at most a window of them) into the rings at stream
    indices ``seen + i``, each replacing the pair there (if any) in the per-class counts."""
    window = rings.shape[1]
    for i in range(t.shape[0]):
        at = (seen + i) % window
        old_t, old_p = rings[0, at], rings[1, at]
        if old_t >= 0:
            counts[0, old_t] -= 1
            counts[1, old_p] -= 1
            if old_t == old_p:
                counts[2, old_t] -= 1
        new_t, new_p = t[i], p[i]
        counts[0, new_t] += 1
        counts[1, new_p] += 1
        if new_t == new_p:
            counts[2, new_t] += 1
        rings[0, at], rings[1, at] = new_t, new_p


#: How many labels the rings' codes can hold, by the rings' item size (see _code_dtype).
_CAPACITY = {1: 128, 2: 32_768, 4: 2**31}


def _code_dtype(n_labels: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed dtype holding the codes ``-1 .. n_labels - 1``."""
    for dtype in (np.int8, np.int16):
        if n_labels - 1 <= np.iinfo(dtype).max:
            return dtype
    return np.int32
