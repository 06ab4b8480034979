"""Argument checks shared by the detectors: reference samples, alarm rules, batches of input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.calibration import check_ert
from detectors.windows import validate_window_args

__all__ = [
    "as_reference",
    "event_times",
    "finite_values",
    "smallest_tested",
    "validate_alarm_args",
]


def as_reference(reference: npt.ArrayLike, name: str = "reference") -> npt.NDArray[np.float64]:
    """Return ``reference`` as a 1-D float array, or raise ``ValueError`` naming the problem."""
    try:
        ref = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of finite numbers: {exc}") from None
    if ref.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {ref.shape}")
    if ref.size == 0:
        raise ValueError(f"{name} must hold at least one value, got an empty array")
    bad = ~np.isfinite(ref)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name} must hold finite numbers only: {int(bad.sum())} non-finite value(s), "
            f"the first at index {i} ({float(ref[i])!r})"
        )
    return ref


def validate_alarm_args(
    window_size: int,
    duration: float | None,
    min_window: int | None,
    alpha: float | None,
    ert: float | None,
    resolve_ratio: float,
    resolve_after: int | None,
    stride: int = 1,
) -> None:
    """Validate the window and alarm-rule arguments shared by the detectors.

    ``resolve_after`` counts tests, one every ``stride`` observations.
    """
    validate_window_args(window_size, duration)
    if alpha is not None and ert is not None:
        raise ValueError(f"give alpha or ert, not both (got alpha={alpha!r}, ert={ert!r})")
    if alpha is not None and not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not (isinstance(resolve_ratio, int | float) and 0.0 < resolve_ratio <= 1.0):
        raise ValueError(f"resolve_ratio must be in (0, 1], got {resolve_ratio!r}")
    if resolve_after is not None and not (isinstance(resolve_after, int) and resolve_after >= 1):
        raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
    if min_window is not None and not (isinstance(min_window, int) and min_window >= 1):
        raise ValueError(f"min_window must be an integer >= 1, got {min_window!r}")
    if ert is not None:
        check_ert(ert, int(window_size), resolve_after or int(window_size), stride)
        if duration is not None or min_window not in (None, window_size):
            raise ValueError(
                "ert calibration needs a count window tested when full: leave duration and "
                f"min_window unset (got duration={duration!r}, min_window={min_window!r})"
            )


def smallest_tested(window_size: int, duration: float | None, min_window: int | None) -> int:
    """The smallest window that is tested: ``min_window``, by default ``window_size`` for count
    windows (only full windows) and ``min(window_size, 30)`` for time windows; at most
    ``window_size``."""
    if min_window is None:
        min_window = window_size if duration is None else min(window_size, 30)
    return min(int(min_window), window_size)


def finite_values(xs: npt.ArrayLike, name: str = "xs") -> npt.NDArray[np.float64]:
    """``xs`` as a flat float array, or ``ValueError`` naming the first non-finite value."""
    values = np.asarray(xs, dtype=np.float64).ravel()
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} must be finite: value {float(values[i])!r} at index {i}")
    return values


def event_times(ts: Any, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The event times of a batch of ``values`` for a time window, checked: one finite time
    per value (``ValueError`` otherwise)."""
    if ts is None:
        raise ValueError("t (event time in seconds) is required for a time-based window: give ts")
    times = np.asarray(ts, dtype=np.float64).ravel()
    if times.shape != values.shape:
        raise ValueError(
            f"ts must have one time per value: got {times.shape[0]} times "
            f"for {values.shape[0]} values"
        )
    bad = ~np.isfinite(times)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"ts must be finite: value {float(times[i])!r} at index {i}")
    return times
