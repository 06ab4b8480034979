"""The alarm rule of the KS detectors: the exact test's critical gap, or an ``ert`` calibration.

With ``alpha``, a window of ``m`` against a reference of ``n`` alarms when the exact integer gap
``G = D n m`` reaches :meth:`KSAlarm._alpha_gap`. With ``ert``, the threshold is calibrated in
the background (:class:`~detectors.background.BackgroundCalibrated`) for the reference's value
counts, the window and the test schedule; the calibration's randomised boundary is decided by
:meth:`detectors.calibration.KSCalibration.fires` (in the compiled kernel for
:class:`~detectors.IncrementalKS`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from detectors.background import BackgroundCalibrated
from detectors.calibration import KSCalibration, calibrate_gap
from detectors.kstest import critical_gap

__all__ = ["KSAlarm"]


class KSAlarm(BackgroundCalibrated):
    """Mixin of :class:`~detectors.IncrementalKS` and :class:`~detectors.WindowedKS`.

    Reads the detector's ``window_size``, ``ert``, ``resolve_ratio``, ``seed``, ``guarantee``
    and ``_alpha``.
    """

    # No instance layout of its own: the subclass's slots (or instance dict) hold what this class
    # sets. Hidden from mypy, which would read the empty slots as the whole layout.
    if not TYPE_CHECKING:
        __slots__ = ()

    window_size: int
    ert: float | None
    resolve_ratio: float
    seed: int
    guarantee: float | None
    _alpha: float

    def _calibrate(
        self, atom_counts: npt.NDArray[np.int64], resolve_after: int, stride: int = 1
    ) -> None:
        """Start the ``ert`` calibration for a reference with these value counts.

        Nothing is tested before the window first fills, and (unless ``wait_for_calibration``
        is off) the first test waits for the result.
        """
        assert self.ert is not None
        self._start(
            calibrate_gap,
            atom_counts,
            self.window_size,
            self.ert,
            resolve_ratio=self.resolve_ratio,
            resolve_after=resolve_after,
            seed=self.seed,
            stride=stride,
            guarantee=self.guarantee,
        )

    @property
    def calibration(self) -> KSCalibration | None:
        """The ``ert`` calibration (thresholds, simulated rate, cost), or None with ``alpha``.

        Waits for a calibration still running in the background.
        """
        cal: KSCalibration | None = super().calibration
        return cal

    def _alpha_gap(self, n: int, m: int) -> int:
        """The gap ``G = D n m`` at which the exact test at level ``alpha`` rejects."""
        return critical_gap(n, m, self._alpha) * math.gcd(n, m)
