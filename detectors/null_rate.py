"""False alarms of a calibrated KS detector on given streams, counted by the compiled rule.

:func:`count_false_starts` feeds each row of a 2-D array of observations to a fresh copy of a
calibrated :class:`~detectors.IncrementalKS` (same reference, window, thresholds, randomised
boundary and hysteresis) and counts drift episode starts -- what the detector itself would
raise (the tests check they agree exactly), at tens of millions of observations a second, so
that null false-alarm rates can be measured at long expected run times.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from detectors.kernels import count_starts, record_streams
from detectors.ks import IncrementalKS

__all__ = ["count_false_starts"]


def count_false_starts(detector: IncrementalKS, streams: npt.ArrayLike) -> int:
    """Episode starts of ``detector``'s calibrated rule over each row of ``streams``.

    Parameters
    ----------
    detector : IncrementalKS
        A count-window detector with ``ert`` (its calibration is waited for).
    streams : array-like of float, shape (rows, steps)
        Observations; each row is fed from an empty window. Row ``r``'s observation ``t``
        (1-based) takes index ``r * steps + t`` in the randomised boundary's draw.

    Returns
    -------
    int
    """
    cal = detector.calibration
    if cal is None or detector.duration is not None:
        raise ValueError("count_false_starts needs a count-window detector calibrated with ert")
    xs = np.asarray(streams, dtype=np.float64)
    if xs.ndim != 2 or not np.isfinite(xs).all():
        raise ValueError(f"streams must be a finite 2-D array, got shape {xs.shape}")
    slots = detector._slots_of(xs.ravel()).astype(np.int64).reshape(xs.shape)
    slot_ref = np.diff(detector._ref_end, prepend=0)
    floor = cal.floor
    after = detector._resolve_after
    gaps, index, bounds = record_streams(
        slots,
        slot_ref,
        detector._n,
        detector.window_size,
        1,
        floor,
        math.ceil(detector.resolve_ratio * floor),
        after,
    )
    return int(
        count_starts(
            gaps,
            index,
            bounds,
            cal.gap_high,
            cal.gap_low,
            cal.gap_mixed,
            cal.mix,
            after,
            detector.seed,
        )
    )
