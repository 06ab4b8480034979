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
from typing import TYPE_CHECKING, Any, Literal

__all__ = ["THREADS", "BackgroundCalibrated", "queued", "submit"]

#: Threads of each pool: compiled calibrations release the GIL, river's (pure Python) do not.
THREADS = {"compiled": 2, "python": 1}
_POOLS: dict[str, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
#: Submitted work that has not started yet (cancelled work leaves it too).
_WAITING: set[Future[Any]] = set()


def _executor(kind: Literal["compiled", "python"]) -> ThreadPoolExecutor:
    """The shared pool for calibrations of this kind (created on first use; under _LOCK)."""
    pool = _POOLS.get(kind)
    if pool is None:
        pool = _POOLS[kind] = ThreadPoolExecutor(
            max_workers=THREADS[kind], thread_name_prefix=f"driftwatch-calibration-{kind}"
        )
    return pool


def submit(
    fn: Callable[..., Any],
    *args: Any,
    kind: Literal["compiled", "python"] = "compiled",
    **kwargs: Any,
) -> Future[Any]:
    """Run ``fn(*args, **kwargs)`` on the shared pool of ``kind``; counted by :func:`queued`
    until it starts (or is cancelled)."""
    box: list[Future[Any]] = []

    def run() -> Any:
        with _LOCK:  # held by submit until the future is known
            _WAITING.discard(box[0])
        return fn(*args, **kwargs)

    with _LOCK:
        future = _executor(kind).submit(run)
        box.append(future)
        _WAITING.add(future)
    future.add_done_callback(_forget)
    return future


def _forget(future: Future[Any]) -> None:
    with _LOCK:
        _WAITING.discard(future)


def queued() -> int:
    """Calibrations submitted to the pools and not yet started (a backlog gauge reads it)."""
    with _LOCK:
        return len(_WAITING)


class BackgroundCalibrated:
    """Mixin: one background calibration per detector (re-started by a new reference).

    Subclasses set ``wait_for_calibration`` and implement :meth:`_install`.
    """

    # No instance layout of its own: the subclass's slots (or instance dict) hold what this class
    # sets. Hidden from mypy, which would read the empty slots as the whole layout.
    if not TYPE_CHECKING:
        __slots__ = ()

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
        self._pending = submit(fn, *args, kind=kind, **kwargs)

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
