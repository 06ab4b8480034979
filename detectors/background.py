"""Calibrations that run in the background, so that building thousands of detectors never stalls.

:class:`BackgroundCalibrated` is the one place where a detector's calibration is submitted,
waited for, cancelled and installed. A detector calls :meth:`~BackgroundCalibrated._start`
with the calibration function; :attr:`~BackgroundCalibrated.calibration` waits for the result
and hands it once to the detector's ``_install`` hook; :attr:`calibration_ready` tells whether
it would wait; :meth:`close` cancels a calibration that has not started.

Two thread pools run them: compiled calibrations (the KS detectors' numba kernels release the
GIL) on two threads, calibrations that run river's Python detectors (which hold it) on one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

__all__ = ["BackgroundCalibrated", "executor", "queued"]

_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_THREADS = {"compiled": 2, "python": 1}


def executor(kind: Literal["compiled", "python"] = "compiled") -> ThreadPoolExecutor:
    """The shared pool for calibrations of this kind (created on first use)."""
    with _LOCK:
        pool = _POOLS.get(kind)
        if pool is None:
            pool = _POOLS[kind] = ThreadPoolExecutor(
                max_workers=_THREADS[kind], thread_name_prefix=f"driftwatch-calibration-{kind}"
            )
        return pool


def queued() -> int:
    """Calibrations submitted to the pools and not yet started (a backlog gauge reads it)."""
    with _LOCK:
        pools = list(_POOLS.values())
    # ThreadPoolExecutor keeps its not-yet-started work in this queue; nowhere else to ask
    return sum(pool._work_queue.qsize() for pool in pools)


class BackgroundCalibrated:
    """Mixin: one background calibration per detector (re-started by a new reference).

    Subclasses set ``wait_for_calibration`` and implement :meth:`_install`.
    """

    _pending: Future[Any] | None
    _calibration: Any
    wait_for_calibration: bool

    def _init_calibration(self) -> None:
        self._pending = None
        self._calibration = None

    def _start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        kind: Literal["compiled", "python"] = "compiled",
        **kwargs: Any,
    ) -> None:
        """Submit ``fn(*args, **kwargs)``; its result becomes the calibration."""
        self._calibration = None
        self._pending = executor(kind).submit(fn, *args, **kwargs)

    def _install(self, calibration: Any) -> None:
        """Called once with a finished calibration, before anyone reads it."""

    def close(self) -> None:
        """Cancel a calibration that has not started (e.g. the stream is being dropped)."""
        pending = self._pending
        if pending is not None and not pending.done() and pending.cancel():
            self._pending = None

    @property
    def calibration_ready(self) -> bool:
        """False while a calibration is still running (reading ``calibration`` would wait)."""
        return self._pending is None or self._pending.done()

    @property
    def calibration(self) -> Any:
        """The calibration, or None without one; waits for one still running."""
        pending = self._pending
        if pending is not None:
            cal = pending.result()
            self._pending = None
            self._calibration = cal
            self._install(cal)
        return self._calibration

    def __getstate__(self) -> dict[str, Any]:
        """Copies carry the finished calibration, never the pending future (detectors with
        their own state format override this)."""
        self.calibration  # noqa: B018 - wait for a pending calibration
        state = dict(self.__dict__)
        state["_pending"] = None
        return state

    def _testable(self) -> bool:
        """True if a test may run now: calibrated, waited for, or nothing to wait for."""
        return self.wait_for_calibration or self.calibration_ready
