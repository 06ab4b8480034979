"""river's drift detectors (ADWIN, KSWIN, PageHinkley) behind the driftwatch contract.

river resets itself after each detection; the adapter turns detections into drift episodes: a
detection opens one, and it resolves after ``resolve_after`` updates without a new detection.
"""

from __future__ import annotations

import math
from typing import Any

from river import drift

from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, DriftDetector, Transition

__all__ = ["ADWINDetector", "KSWINDetector", "PageHinkleyDetector", "RiverDetector"]


class RiverDetector(DriftDetector):
    """Base adapter around one river drift detector.

    Parameters
    ----------
    resolve_after : int
        Updates without a new detection that close a drift episode.
    """

    def __init__(self, detector: Any, *, resolve_after: int = 1000) -> None:
        super().__init__()
        if not (isinstance(resolve_after, int) and resolve_after >= 1):
            raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
        self.resolve_after = resolve_after
        self._detector = detector
        self._quiet = 0

    def update(self, x: float, t: float | None = None) -> None:
        """Add one observation (``t`` is ignored: river detectors are count-based)."""
        if self.transitions:
            self.transitions = []
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"x must be finite, got {x!r}")
        self._detector.update(x)
        self.n_seen += 1
        detected = bool(self._detector.drift_detected)
        self._drift_detected = detected and not self._in_drift
        if detected:
            self._quiet = 0
            if not self._in_drift:
                self._in_drift = True
                self.transitions.append(self._transition(DRIFT_STARTED))
        elif self._in_drift:
            self._quiet += 1
            if self._quiet >= self.resolve_after:
                self._in_drift = False
                self.transitions.append(self._transition(DRIFT_RESOLVED))

    def _transition(self, kind: str) -> Transition:
        return Transition(kind, self.n_seen, self.statistic, self.p_value)  # type: ignore[arg-type]

    @property
    def statistic(self) -> float:
        return math.nan

    @property
    def p_value(self) -> float:
        return math.nan


class ADWINDetector(RiverDetector):
    """river's ADWIN (adaptive windowing) through the driftwatch contract.

    Parameters
    ----------
    delta : float
        ADWIN's confidence parameter.
    resolve_after : int
        Updates without a detection that close an episode.

    Notes
    -----
    Null hypothesis: the mean of the stream is constant. ADWIN keeps a variable-length window and
    drops its older part when two sub-windows' means differ by more than a Hoeffding-style bound
    at confidence ``delta``.

    References
    ----------
    .. [1] Bifet, A., Gavaldà, R. (2007). Learning from time-changing data with adaptive
       windowing. SIAM SDM 2007.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> det = ADWINDetector()
    >>> for i, x in enumerate(np.r_[rng.normal(size=1000), rng.normal(1.0, 1.0, size=500)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 1055
    """

    def __init__(self, delta: float = 0.002, *, resolve_after: int = 1000) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self.delta = delta
        super().__init__(drift.ADWIN(delta=delta), resolve_after=resolve_after)


class KSWINDetector(RiverDetector):
    """river's KSWIN (KS test inside one sliding window) through the driftwatch contract.

    Parameters
    ----------
    alpha : float
        Per-test level of river's KS test.
    window_size, stat_size : int
        river's window and the size of its most recent part that is compared.
    seed : int, optional
        Seed of river's random sampling.
    resolve_after : int
        Updates without a detection that close an episode.

    Notes
    -----
    Null hypothesis: the last ``stat_size`` values and a random sample of the older part of the
    window come from one distribution; a detection when river's KS p-value is below ``alpha``.
    ``p_value`` is river's last p-value.

    References
    ----------
    .. [1] Raab, C., Heusinger, M., Schleif, F.-M. (2020). Reactive soft prototype computing for
       concept drift streams. Neurocomputing 416, 340-351.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> det = KSWINDetector(seed=1, resolve_after=100)
    >>> for i, x in enumerate(np.r_[rng.normal(size=1000), rng.normal(1.0, 1.0, size=500)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 786
    drift detected at index 1016
    drift detected at index 1187
    """

    def __init__(
        self,
        alpha: float = 0.005,
        window_size: int = 100,
        stat_size: int = 30,
        *,
        seed: int | None = None,
        resolve_after: int = 1000,
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not (isinstance(window_size, int) and window_size >= 2):
            raise ValueError(f"window_size must be an integer >= 2, got {window_size!r}")
        if not (isinstance(stat_size, int) and 1 <= stat_size < window_size):
            raise ValueError(f"stat_size must be an integer in [1, window_size), got {stat_size!r}")
        self.alpha = alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        super().__init__(
            drift.KSWIN(alpha=alpha, window_size=window_size, stat_size=stat_size, seed=seed),
            resolve_after=resolve_after,
        )

    @property
    def p_value(self) -> float:
        p = getattr(self._detector, "p_value", None)
        return math.nan if p is None else float(p)


class PageHinkleyDetector(RiverDetector):
    """river's Page-Hinkley test through the driftwatch contract.

    Parameters
    ----------
    min_instances : int
        Observations before a detection is possible.
    delta, threshold, alpha : float
        river's magnitude tolerance, detection threshold and forgetting factor.
    resolve_after : int
        Updates without a detection that close an episode.

    Notes
    -----
    Null hypothesis: the mean of the stream is constant; the cumulative deviation from the
    running mean is compared with ``threshold`` in both directions.

    References
    ----------
    .. [1] Page, E. S. (1954). Continuous inspection schemes. Biometrika 41, 100-115.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(42)
    >>> det = PageHinkleyDetector()
    >>> for i, x in enumerate(np.r_[rng.normal(size=1000), rng.normal(1.0, 1.0, size=500)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 1038
    """

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        *,
        resolve_after: int = 1000,
    ) -> None:
        if not (isinstance(min_instances, int) and min_instances >= 1):
            raise ValueError(f"min_instances must be an integer >= 1, got {min_instances!r}")
        if threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        super().__init__(
            drift.PageHinkley(
                min_instances=min_instances, delta=delta, threshold=threshold, alpha=alpha
            ),
            resolve_after=resolve_after,
        )
