"""river's drift detectors (ADWIN, KSWIN, PageHinkley) behind the driftwatch contract.

river resets itself after each detection; the adapter turns detections into drift episodes: a
detection opens one, and it resolves after ``resolve_after`` updates without a new detection.

Each adapter takes either river's sensitivity parameter (ADWIN ``delta``, KSWIN ``alpha``,
PageHinkley ``threshold``) or ``ert`` with a ``reference`` sample: the parameter is then
calibrated so that false drift episodes start on average once per ``ert`` observations when
the stream keeps the reference's distribution (see :mod:`detectors.river_calibration`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift, stats

from detectors.background import BackgroundCalibrated
from detectors.base import DRIFT_RESOLVED, DRIFT_STARTED, DriftDetector, Transition
from detectors.river_calibration import (
    RiverCalibration,
    calibrate_direct,
    calibrate_kswin,
    check_river_ert,
)
from detectors.validation import as_reference

__all__ = ["ADWINDetector", "KSWINDetector", "PageHinkleyDetector", "RiverDetector"]


def _check_resolve_after(resolve_after: object) -> int:
    if not (isinstance(resolve_after, int) and resolve_after >= 1):
        raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
    return resolve_after


def _check_ert_args(
    parameter: str,
    value: object,
    ert: object,
    reference: npt.ArrayLike | None,
    shortest_episode: int,
) -> npt.NDArray[np.float64] | None:
    """Validate ``ert`` against the explicit parameter and the reference; the reference array."""
    if ert is None:
        if reference is not None:
            raise ValueError(
                "reference is only used to calibrate ert: give ert too, or leave reference unset"
            )
        return None
    if value is not None:
        raise ValueError(
            f"give {parameter} or ert, not both (got {parameter}={value!r}, ert={ert!r})"
        )
    check_river_ert(ert, parameter, shortest_episode)
    if reference is None:
        raise ValueError("ert needs a reference sample to calibrate on: pass reference=...")
    return as_reference(reference)


class RiverDetector(BackgroundCalibrated, DriftDetector):
    """Base adapter around one river drift detector.

    Parameters
    ----------
    detector : river drift detector or None
        The river detector; None while an ``ert`` calibration is pending (see
        :meth:`_calibrate`).
    resolve_after : int
        Updates without a new detection that close a drift episode.
    wait_for_calibration : bool
        With ``ert``: True, the first update waits for the background calibration, so results
        are reproducible; False, updates before it is ready are counted but not tested.
    """

    #: Name of the river parameter that ``ert`` calibrates.
    parameter: str = ""

    def __init__(
        self,
        detector: Any,
        *,
        resolve_after: int = 1000,
        wait_for_calibration: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(resolve_after, int) and resolve_after >= 1):
            raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
        self.resolve_after = resolve_after
        self.wait_for_calibration = wait_for_calibration
        self._detector = detector
        self._quiet = 0
        self._init_calibration()

    # ------------------------------------------------------------------ calibration
    def _calibrate(self) -> RiverCalibration:  # pragma: no cover - overridden with ert
        raise NotImplementedError

    def _build(self, value: float) -> Any:  # pragma: no cover - overridden with ert
        """The river detector with the calibrated parameter set to ``value``."""
        raise NotImplementedError

    def _submit_calibration(self) -> None:
        # The simulation costs 0.5-30 s (measured in BENCHMARKS.md): run it in the background so
        # that building many detectors does not stall; the first update waits for it unless
        # wait_for_calibration is off.
        self._start(self._calibrate, kind="python")

    def _install(self, calibration: RiverCalibration) -> None:
        self._detector = self._build(calibration.value)

    @property
    def calibration(self) -> RiverCalibration | None:
        """The ``ert`` calibration (value, simulated rate, cost), or None without ``ert``.

        Waits for a calibration still running.
        """
        cal: RiverCalibration | None = super().calibration
        return cal

    # ------------------------------------------------------------------ updates
    def update(self, x: float, t: float | None = None) -> None:
        """Add one observation (``t`` is ignored: river detectors are count-based)."""
        if self.transitions:
            self.transitions = []
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"x must be finite, got {x!r}")
        det = self._detector
        if det is None:
            if self._testable():
                self.calibration  # noqa: B018 - installs the calibrated river detector
                det = self._detector
            if det is None:  # calibration not ready and not waited for: not tested
                self.n_seen += 1
                self._drift_detected = False
                return
        det.update(x)
        self.n_seen += 1
        detected = bool(det.drift_detected)
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

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """The detector's state as plain data (see :mod:`detectors.registry`).

        The river detector is kept as its constructor parameters and its attributes; ADWIN's
        (a compiled extension) are the bytes of its own serialisation, read back by river.
        A pending calibration is waited for, unless updates do not wait for it either: the
        restored copy then calibrates again (same seed, same result).
        """
        from detectors.registry import to_data

        recalibrate = False
        if self._pending is not None:
            if self.wait_for_calibration or self.calibration_ready:
                self.calibration  # noqa: B018 - wait for a pending calibration
            else:
                recalibrate = True
        transient = {"_pending", "transitions", "_detector"}
        out = {k: to_data(v) for k, v in self.__dict__.items() if k not in transient}
        det = self._detector
        out["_detector"] = None if det is None else _river_state(det)
        out["_recalibrate"] = recalibrate
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RiverDetector:
        """Rebuild a detector from :meth:`state`, checking types against a fresh river detector.

        Raises
        ------
        detectors.registry.StateError
            If the state is not one this version can continue from.
        """
        from detectors.registry import StateError, restore_attributes

        state = dict(state)
        recalibrate = state.pop("_recalibrate", False)
        river_state = state.pop("_detector", None)
        det = cls.__new__(cls)
        restore_attributes(det, state, _RIVER_STATE_TYPES)
        if det.resolve_after < 1 or det._quiet < 0 or det.n_seen < 0:
            raise StateError(f"{cls.__name__} counters out of range")
        if det._calibration is not None and not isinstance(det._calibration, RiverCalibration):
            raise StateError(f"{cls.__name__} calibration has the wrong type")
        det.transitions = []
        det._pending = None
        det._detector = (
            None if river_state is None else _river_from_state(_RIVER_CLASSES[cls], river_state)
        )
        if recalibrate:
            det._submit_calibration()
        return det


#: Attributes every river adapter's state must hold, and their types.
_RIVER_STATE_TYPES: dict[str, type | tuple[type, ...]] = {
    "n_seen": int,
    "_in_drift": bool,
    "_drift_detected": bool,
    "resolve_after": int,
    "wait_for_calibration": bool,
    "_quiet": int,
}

#: Largest serialised ADWIN accepted back (its buckets grow with log of the stream length).
MAX_ADWIN_STATE_BYTES = 4_000_000


def _river_state(det: Any) -> dict[str, Any]:
    """A river detector as ``{"params": ..., "attrs": ...}`` of plain data."""
    from detectors.registry import to_data

    params = det._get_params()
    attrs: dict[str, Any] = {}
    for name, value in det.__dict__.items():
        if name in params or callable(value):
            continue  # parameters are rebuilt by the constructor, bound methods by it too
        if isinstance(value, stats.Mean):
            attrs[name] = {"$": "river_mean", "n": value.n, "mean": value._mean}
        elif type(value).__module__.startswith("river._river_rust"):
            attrs[name] = {"$": "river_native", "v": value.__getstate__()}
        else:
            attrs[name] = to_data(value)
    return {"params": to_data(params), "attrs": attrs}


def _river_from_state(river_cls: type, state: Any) -> Any:
    """Rebuild a river detector of ``river_cls`` from :func:`_river_state`."""
    from detectors.registry import StateError, from_data

    if not isinstance(state, dict) or set(state) != {"params", "attrs"}:
        raise StateError("river state must hold params and attrs")
    params, attrs = from_data(state["params"]), state["attrs"]
    if not isinstance(params, dict) or not isinstance(attrs, dict):
        raise StateError("river params and attrs must be mappings")
    try:
        det = river_cls(**params)
    except (TypeError, ValueError) as exc:
        raise StateError(f"bad {river_cls.__name__} parameters: {exc}") from None
    fresh = det.__dict__
    for name, data in attrs.items():
        if name not in fresh or name in params:
            raise StateError(f"{river_cls.__name__} has no state attribute {name!r}")
        current = fresh[name]
        tag = data.get("$") if isinstance(data, dict) else None
        if isinstance(current, stats.Mean):
            if tag != "river_mean":
                raise StateError(f"{river_cls.__name__}.{name} must be a running mean")
            n, mean = data.get("n"), data.get("mean")
            if not all(isinstance(v, float | int) and math.isfinite(v) for v in (n, mean)):
                raise StateError(f"{river_cls.__name__}.{name} needs finite n and mean")
            current.n, current._mean = float(n), float(mean)
        elif type(current).__module__.startswith("river._river_rust"):
            blob = data.get("v") if tag == "river_native" else None
            if not isinstance(blob, bytes) or len(blob) > MAX_ADWIN_STATE_BYTES:
                raise StateError(f"{river_cls.__name__}.{name} needs its serialised bytes")
            try:
                current.__setstate__(blob)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # river's extension panics on malformed bytes
                # (pyo3's PanicException derives from BaseException): the state is refused
                raise StateError(f"{river_cls.__name__}.{name} rejected its bytes: {exc}") from None
        else:
            value = from_data(data)
            number = (int, float, np.integer, np.floating)
            same = (
                isinstance(value, number) and not isinstance(value, bool)
                if isinstance(current, number) and not isinstance(current, bool)
                else isinstance(value, type(current))
            )
            if not same:
                raise StateError(
                    f"{river_cls.__name__}.{name}: expected {type(current).__name__}, "
                    f"got {type(value).__name__}"
                )
            fresh[name] = value
    return det


class ADWINDetector(RiverDetector):
    """river's ADWIN (adaptive windowing) through the driftwatch contract.

    Parameters
    ----------
    delta : float, optional
        ADWIN's confidence parameter, in (0, 1). Default 0.002 without ``ert``; with ``ert``
        it is set to the calibrated value once the calibration is done.
    ert : float, optional
        Expected run time: the mean number of observations between false drift episode starts
        when the stream keeps the reference's distribution. ``delta`` is then calibrated by
        simulation (see :mod:`detectors.river_calibration`). At least ``5 * (resolve_after +
        1)``, at most 1,000,000 (extrapolated beyond 20,000). ADWIN cannot alarm as often as
        every ~1,000-1,800 observations even at ``delta`` near 1 (with ``resolve_after=100``):
        a shorter ``ert`` gets the most sensitive ``delta``, and ``calibration.simulated_ert``
        says what it attains.
    reference : array-like of float, optional
        The sample the null streams are drawn from (``ert`` only).
    seed : int
        Seed of the calibration's simulation (``ert`` only).
    resolve_after : int
        Updates without a detection that close an episode.
    wait_for_calibration : bool
        With ``ert``: the calibration runs in a background thread from construction (0.5-12 s
        measured, the longer for longer ERTs and on a loaded machine).
        True: the first update waits for it, so results are reproducible. False: updates
        before it is ready are counted but not tested.

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

    Calibrated to one false episode per 5,000 observations on average:

    >>> rng = np.random.default_rng(7)
    >>> det = ADWINDetector(ert=5_000, reference=rng.normal(size=1000), resolve_after=100)
    >>> for i, x in enumerate(np.r_[rng.normal(size=3000), rng.normal(1.0, 1.0, size=500)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 3039
    drift detected at index 3263
    """

    parameter = "delta"

    def __init__(
        self,
        delta: float | None = None,
        *,
        ert: float | None = None,
        reference: npt.ArrayLike | None = None,
        seed: int = 0,
        resolve_after: int = 1000,
        wait_for_calibration: bool = True,
    ) -> None:
        _check_resolve_after(resolve_after)
        if delta is not None and not (isinstance(delta, int | float) and 0.0 < delta < 1.0):
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self._reference = _check_ert_args("delta", delta, ert, reference, resolve_after + 1)
        self.delta = 0.002 if delta is None and ert is None else delta
        self.ert = ert
        self.seed = seed
        super().__init__(
            None if ert is not None else drift.ADWIN(delta=self.delta),
            resolve_after=resolve_after,
            wait_for_calibration=wait_for_calibration,
        )
        if ert is not None:
            self._submit_calibration()

    def _calibrate(self) -> RiverCalibration:
        assert self.ert is not None and self._reference is not None
        return calibrate_direct(
            partial(ADWINDetector, resolve_after=self.resolve_after),
            self._reference,
            self.ert,
            parameter="delta",
            conservative=1e-12,
            sensitive=0.999,
            shortest_episode=self.resolve_after + 1,
            seed=self.seed,
        )

    def _build(self, value: float) -> Any:
        self.delta = value
        return drift.ADWIN(delta=value)


class KSWINDetector(RiverDetector):
    """river's KSWIN (KS test inside one sliding window) through the driftwatch contract.

    Parameters
    ----------
    alpha : float, optional
        Per-test level of river's KS test, in (0, 1). Default 0.005 without ``ert``; with
        ``ert`` it is set to the calibrated value once the calibration is done.
    window_size, stat_size : int
        river's window and the size of its most recent part that is compared.
    seed : int, optional
        Seed of river's random sampling, and of the calibration's simulation (0 if None).
    ert : float, optional
        Expected run time: the mean number of observations between false drift episode starts
        when the stream keeps the reference's distribution; ``alpha`` is then calibrated by
        simulation (see :mod:`detectors.river_calibration`). KSWIN's p-value takes one value
        per attainable statistic ``k / stat_size``, so only a ladder of run times is
        attainable (rungs ~2-3x apart at ``stat_size=30``): the rung nearest ``ert`` on the
        log scale is taken, and ``calibration.simulated_ert`` says which. At least ``5 *
        max(resolve_after + 1, window_size)``, at most 30,000 (extrapolated beyond ~3,000: a
        scipy test per update makes river's KSWIN slow to simulate; extrapolated rungs are
        conservative, about half the target rate at 10,000).
    reference : array-like of float, optional
        The sample the null streams are drawn from (``ert`` only).
    resolve_after : int
        Updates without a detection that close an episode.
    wait_for_calibration : bool
        With ``ert``: the calibration runs in a background thread from construction (30,000
        river updates: ~5 s on an idle core, up to 30 s on a loaded one).
        True: the first update waits for it, so results are reproducible. False: updates
        before it is ready are counted but not tested.

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

    parameter = "alpha"

    def __init__(
        self,
        alpha: float | None = None,
        window_size: int = 100,
        stat_size: int = 30,
        *,
        seed: int | None = None,
        ert: float | None = None,
        reference: npt.ArrayLike | None = None,
        resolve_after: int = 1000,
        wait_for_calibration: bool = True,
    ) -> None:
        _check_resolve_after(resolve_after)
        if alpha is not None and not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not (isinstance(window_size, int) and window_size >= 2):
            raise ValueError(f"window_size must be an integer >= 2, got {window_size!r}")
        if not (isinstance(stat_size, int) and 1 <= stat_size < window_size):
            raise ValueError(f"stat_size must be an integer in [1, window_size), got {stat_size!r}")
        shortest = max(resolve_after + 1, window_size)
        self._reference = _check_ert_args("alpha", alpha, ert, reference, shortest)
        self.alpha = 0.005 if alpha is None and ert is None else alpha
        self.window_size = window_size
        self.stat_size = stat_size
        self.seed = seed
        self.ert = ert
        super().__init__(
            None if ert is not None else self._build(self.alpha),  # type: ignore[arg-type]
            resolve_after=resolve_after,
            wait_for_calibration=wait_for_calibration,
        )
        if ert is not None:
            self._submit_calibration()

    def _calibrate(self) -> RiverCalibration:
        assert self.ert is not None and self._reference is not None
        seed = 0 if self.seed is None else self.seed
        return calibrate_kswin(
            self._reference,
            self.ert,
            window_size=self.window_size,
            stat_size=self.stat_size,
            resolve_after=self.resolve_after,
            river_seed=seed,
            seed=seed,
        )

    def _build(self, value: float) -> Any:
        self.alpha = value
        return drift.KSWIN(
            alpha=value, window_size=self.window_size, stat_size=self.stat_size, seed=self.seed
        )

    @property
    def p_value(self) -> float:
        p = getattr(self._detector, "p_value", None)
        return math.nan if p is None else float(p)

    @property
    def drift_score(self) -> float:
        """``log p / log alpha`` of river's latest test: 1 or more when ``p <= alpha`` (river
        also needs its statistic above 0.1 to detect); nan before a test."""
        p, alpha = self.p_value, getattr(self._detector, "alpha", math.nan)
        if math.isnan(p) or not 0 < alpha < 1 or p >= 1:
            return 0.0 if p >= 1 else math.nan
        return math.log(max(p, 1e-300)) / math.log(alpha)


class PageHinkleyDetector(RiverDetector):
    """river's Page-Hinkley test through the driftwatch contract.

    Parameters
    ----------
    min_instances : int
        Observations before a detection is possible.
    delta, threshold, alpha : float
        river's magnitude tolerance, detection threshold and forgetting factor. ``threshold``
        defaults to 50 without ``ert``; with ``ert`` it is set to the calibrated value once the
        calibration is done.
    ert : float, optional
        Expected run time: the mean number of observations between false drift episode starts
        when the stream keeps the reference's distribution. ``threshold`` (in the data's units)
        is then calibrated by simulation on streams at the reference's scale (see
        :mod:`detectors.river_calibration`). At least ``5 * max(resolve_after + 1,
        min_instances)``, at most 1,000,000 (extrapolated beyond 20,000).
    reference : array-like of float, optional
        The sample the null streams are drawn from (``ert`` only).
    seed : int
        Seed of the calibration's simulation (``ert`` only).
    resolve_after : int
        Updates without a detection that close an episode.
    wait_for_calibration : bool
        With ``ert``: the calibration runs in a background thread from construction (2-25 s
        measured, the longer for longer ERTs and on a loaded machine).
        True: the first update waits for it, so results are reproducible. False: updates
        before it is ready are counted but not tested.

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

    On latencies in seconds, calibrated to one false episode per 5,000 observations (the
    threshold comes out on the data's scale):

    >>> rng = np.random.default_rng(7)
    >>> latency = lambda size, median=0.8: median * np.exp(0.5 * rng.normal(size=size))
    >>> det = PageHinkleyDetector(ert=5_000, reference=latency(1000), resolve_after=100)
    >>> for i, x in enumerate(np.r_[latency(3000), latency(500, median=1.2)]):
    ...     det.update(x)
    ...     if det.drift_detected:
    ...         print(f"drift detected at index {i}")
    drift detected at index 3066
    drift detected at index 3344
    >>> round(det.threshold, 1)
    31.4
    """

    parameter = "threshold"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float | None = None,
        alpha: float = 1 - 0.0001,
        *,
        ert: float | None = None,
        reference: npt.ArrayLike | None = None,
        seed: int = 0,
        resolve_after: int = 1000,
        wait_for_calibration: bool = True,
    ) -> None:
        _check_resolve_after(resolve_after)
        if not (isinstance(min_instances, int) and min_instances >= 1):
            raise ValueError(f"min_instances must be an integer >= 1, got {min_instances!r}")
        if threshold is not None and not (isinstance(threshold, int | float) and threshold > 0):
            raise ValueError(f"threshold must be > 0, got {threshold!r}")
        shortest = max(resolve_after + 1, min_instances)
        self._reference = _check_ert_args("threshold", threshold, ert, reference, shortest)
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = 50.0 if threshold is None and ert is None else threshold
        self.alpha = alpha
        self.ert = ert
        self.seed = seed
        super().__init__(
            None if ert is not None else self._build(self.threshold),  # type: ignore[arg-type]
            resolve_after=resolve_after,
            wait_for_calibration=wait_for_calibration,
        )
        if ert is not None:
            self._submit_calibration()

    def _calibrate(self) -> RiverCalibration:
        assert self.ert is not None and self._reference is not None
        scale = float(np.std(self._reference)) or 1.0
        mi, d, a, r = self.min_instances, self.delta, self.alpha, self.resolve_after

        def make(value: float) -> PageHinkleyDetector:
            return PageHinkleyDetector(mi, d, value, a, resolve_after=r)

        return calibrate_direct(
            make,
            self._reference,
            self.ert,
            parameter="threshold",
            conservative=2000.0 * scale,
            sensitive=0.05 * scale,
            shortest_episode=max(r + 1, mi),
            seed=self.seed,
        )

    @property
    def drift_score(self) -> float:
        """river's Page-Hinkley statistic (the larger of the two one-sided cumulative
        deviations) over ``threshold``: 1 or more detects; nan before a detector exists."""
        det = self._detector
        if det is None or not self.threshold:
            return math.nan
        up = det._sum_increase - det._min_increase
        down = det._max_decrease - det._sum_decrease
        return float(max(up, down) / self.threshold)

    def _build(self, value: float) -> Any:
        self.threshold = value
        return drift.PageHinkley(
            min_instances=self.min_instances, delta=self.delta, threshold=value, alpha=self.alpha
        )


#: The river detector behind each adapter.
_RIVER_CLASSES: dict[type[RiverDetector], type] = {
    ADWINDetector: drift.ADWIN,
    KSWINDetector: drift.KSWIN,
    PageHinkleyDetector: drift.PageHinkley,
}
