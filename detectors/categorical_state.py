"""The stored state of a :class:`~detectors.categorical.CategoricalDetector`, as plain data.

The reference is kept as its cells and their counts (what the test uses), the window as its
categories, oldest first, with the episode's scalars and the calibration; restoring checks the
cells, the counts and the window against each other before anything is built from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.calibration import KSCalibration, check_ert
from detectors.categorical import (
    MAX_CATEGORY_CHARS,
    OTHER,
    CategoricalDetector,
    CategoryCells,
    CategoryWindow,
    chi2_statistics,
)
from detectors.registry import StateError, from_data, to_data
from detectors.windows import check_array

__all__ = ["categorical_from_state", "categorical_state"]


def categorical_state(det: CategoricalDetector) -> dict[str, Any]:
    """``det``'s state as plain data (see :mod:`detectors.registry`).

    The reference is kept as its cells and their counts (what the test uses), the window
    as its categories, oldest first. A pending calibration is waited for, unless updates
    do not wait for it either: the restored copy then calibrates again (same seed, same
    result).
    """
    recalibrate = not (det.wait_for_calibration or det.calibration_ready)
    cal = None if recalibrate else det.calibration
    return {
        "window_size": det.window_size,
        "alpha": det.alpha,
        "ert": det.ert,
        "resolve_ratio": det.resolve_ratio,
        "resolve_after": det.resolve_after,
        "min_count": det.min_count,
        "max_categories": det.max_categories,
        "seed": det.seed,
        "wait_for_calibration": det.wait_for_calibration,
        "categories": list(det.categories),
        "reference_counts": det._ref.copy(),
        "window": det._window.categories(),
        "n_seen": det.n_seen,
        "in_drift": det._in_drift,
        "below": det._below,
        "calibration": to_data(cal),
        "recalibrate": recalibrate,
    }


def categorical_from_state(
    cls: type[CategoricalDetector], state: dict[str, Any]
) -> CategoricalDetector:
    """Rebuild a detector from :func:`categorical_state`, checking its shapes and invariants.

    Raises
    ------
    detectors.registry.StateError
        If the state is not one this version can continue from.
    """
    cats = state["categories"]
    window = state["window"]
    if not (
        isinstance(cats, list)
        and 2 <= len(cats) <= 10_000
        and all(isinstance(c, str) and len(c) <= MAX_CATEGORY_CHARS for c in cats)
        and cats[-1] == OTHER
        and len(set(cats)) == len(cats)
    ):
        raise StateError("categories must be distinct strings ending with the other cell")
    ref = check_array(state["reference_counts"], np.int64, len(cats), "reference counts")
    if np.any(ref < 0) or ref.sum() < 1:
        raise StateError("reference counts must be >= 0 with a positive total")
    det = cls(
        [cats[0]],
        state["window_size"],
        alpha=state["alpha"],
        ert=None,
        resolve_ratio=state["resolve_ratio"],
        resolve_after=state["resolve_after"],
        min_count=state["min_count"],
        max_categories=max(state["max_categories"], len(cats)),
        seed=state["seed"],
        wait_for_calibration=state["wait_for_calibration"],
    )
    det.max_categories = state["max_categories"]
    if not (
        isinstance(window, list)
        and len(window) <= det.window_size
        and all(isinstance(c, str) and len(c) <= MAX_CATEGORY_CHARS for c in window)
    ):
        raise StateError(f"window must hold at most {det.window_size} category strings")
    n_seen, below, in_drift = state["n_seen"], state["below"], state["in_drift"]
    if not (isinstance(n_seen, int) and n_seen >= len(window) and isinstance(below, int)):
        raise StateError("n_seen and below must be integers, n_seen >= the window")
    if not isinstance(in_drift, bool):
        raise StateError("in_drift must be a boolean")
    det.ert = state["ert"]
    if det.ert is not None:
        check_ert(float(det.ert), det.window_size, det._resolve_after)
    det._pool = CategoryCells(
        tuple(cats), ref.astype(np.int64), {c: i for i, c in enumerate(cats[:-1])}
    )
    det.categories = det._pool.categories
    det._ref = det._pool.counts
    det._thresholds = {}
    det._window = CategoryWindow(det.window_size)
    det._window.push(window, det._pool.cells_of(window))
    det._counts = np.bincount(det._window.cells(), minlength=len(cats)).astype(np.int64)
    det.n_seen, det._below, det._in_drift = n_seen, below, in_drift
    det._init_calibration()
    cal = from_data(state["calibration"])
    if det.ert is not None:
        if state["recalibrate"] or cal is None:
            det._start(det._chi2_calibration())
        elif isinstance(cal, KSCalibration):
            det._calibration = cal
        else:
            raise StateError("calibration must be a KSCalibration")
    if len(det._window):
        x2, dof = chi2_statistics(det._ref, det._counts[None, :])
        det._last = (float(x2[0]), int(dof[0]))
    return det
