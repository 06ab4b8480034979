"""The drift monitor: telemetry batches in, drift events out, with no Kafka in sight.

The Faust agent and ``driftwatch replay`` both drive a :class:`DriftMonitor`. It keeps, per key,
the offsets of the recent events, and per (key, feature) one detector from :mod:`detectors`.
A batch is split by key and each feature's values go to their detector in one
``update_many`` call, so the per-event cost stays near the detector's own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import (
    ADWINDetector,
    DriftDetector,
    IncrementalKS,
    KSWINDetector,
    PageHinkleyDetector,
    Transition,
    WindowedKS,
)
from stream.metrics import Metrics
from stream.records import DriftEvent, Telemetry
from stream.settings import DetectorName, Settings

__all__ = ["DriftMonitor", "ReferenceSource", "build_detector"]

#: ``(key, feature) -> reference values or None``; None means "learn it from warm-up".
ReferenceSource = Callable[[str, str], npt.NDArray[np.float64] | None]

REFERENCE_FREE: frozenset[str] = frozenset({"adwin", "kswin", "page_hinkley"})


def build_detector(
    name: DetectorName, settings: Settings, reference: npt.NDArray[np.float64] | None
) -> DriftDetector:
    """A detector of the configured kind (KS detectors need ``reference``)."""
    resolve_after = settings.resolve_after
    if name == "incremental_ks":
        return IncrementalKS(
            reference,  # type: ignore[arg-type]
            settings.window_size,
            duration=settings.window_duration,
            alpha=settings.alpha,
            resolve_ratio=settings.resolve_ratio,
            resolve_after=resolve_after,
        )
    if name == "windowed_ks":
        return WindowedKS(
            reference,  # type: ignore[arg-type]
            settings.window_size,
            duration=settings.window_duration,
            stride=max(1, settings.window_size // 10),
            alpha=settings.alpha,
            resolve_ratio=settings.resolve_ratio,
            resolve_after=resolve_after or 1,
        )
    river_resolve = resolve_after or settings.window_size
    if name == "adwin":
        return ADWINDetector(resolve_after=river_resolve)
    if name == "kswin":
        return KSWINDetector(seed=0, resolve_after=river_resolve)
    if name == "page_hinkley":
        return PageHinkleyDetector(resolve_after=river_resolve)
    raise ValueError(f"detector must be one of the known names, got {name!r}")


@dataclass(slots=True)
class FeatureState:
    """One (key, feature) stream."""

    detector: DriftDetector | None = None
    warmup: list[float] = field(default_factory=list)
    dirty: bool = True


@dataclass(slots=True)
class KeyState:
    """One key: its features' streams and the offsets of its latest events."""

    features: list[FeatureState]
    offsets: npt.NDArray[np.int64]
    seen: int = 0  # events of this key fed so far (the global index of the next one)
    partition: int = 0


class DriftMonitor:
    """Routes telemetry to per-(key, feature) detectors and turns their transitions into events.

    Parameters
    ----------
    settings : Settings
        Features, detectors, window and reference policy.
    references : ReferenceSource, optional
        Where references come from in ``file`` mode; ``None`` for warm-up.
    metrics : Metrics, optional
        Prometheus metrics to keep current.
    clock : callable
        Wall clock, for rate-limiting per-stream metric updates.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        references: ReferenceSource | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.references = references
        self.metrics = metrics
        self.clock = clock
        self.metrics_interval = metrics_interval
        self.keys: OrderedDict[str, KeyState] = OrderedDict()
        self.evictions = 0
        self._detector_names = [settings.detector_for(f) for f in settings.features]
        self._last_publish = -float("inf")

    # ------------------------------------------------------------------ state
    def _key_state(self, key: str) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            state = KeyState(
                [FeatureState() for _ in self.settings.features],
                np.full(self.settings.window_size, -1, dtype=np.int64),
            )
            self.keys[key] = state
            while len(self.keys) > self.settings.max_tracked_keys:
                old, _ = self.keys.popitem(last=False)
                self.evictions += 1
                if self.metrics is not None:
                    self.metrics.forget(old, self.settings.features)
        else:
            self.keys.move_to_end(key)
        return state

    @property
    def tracked_streams(self) -> int:
        return len(self.keys) * len(self.settings.features)

    def _reference(self, key: str, j: int) -> npt.NDArray[np.float64] | None:
        if self.references is None:
            return None
        return self.references(key, self.settings.features[j])

    # ------------------------------------------------------------------ processing
    def process(self, batch: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed a batch (in stream order) and return the drift events it caused."""
        by_key: dict[str, list[Telemetry]] = {}
        for ev in batch:
            by_key.setdefault(ev.key, []).append(ev)
        events: list[DriftEvent] = []
        for key, evs in by_key.items():
            events.extend(self._process_key(key, evs))
        if self.metrics is not None:
            self.metrics.tracked_streams.set(self.tracked_streams)
            now = self.clock()
            if now - self._last_publish >= self.metrics_interval:
                self.publish_metrics()
                self._last_publish = now
        return events

    def _process_key(self, key: str, evs: list[Telemetry]) -> list[DriftEvent]:
        state = self._key_state(key)
        values = np.array([e.values for e in evs], dtype=np.float64)
        offsets = np.fromiter((e.offset for e in evs), dtype=np.int64, count=len(evs))
        times = (
            np.fromiter((e.ts for e in evs), dtype=np.float64, count=len(evs))
            if self.settings.window_duration is not None
            else None
        )
        state.partition = evs[-1].partition
        base = state.seen
        out: list[DriftEvent] = []
        for j, fs in enumerate(state.features):
            start = 0
            if fs.detector is None:
                start = self._warm_up(key, j, fs, values[:, j])
                if fs.detector is None:
                    continue
            det = fs.detector
            n_before = det.n_seen
            det.update_many(values[start:, j], None if times is None else times[start:])
            fs.dirty = True
            for t in det.transitions:
                pos = start + (t.index - n_before) - 1
                out.append(self._drift_event(key, j, t, evs[pos], state, base, pos, offsets))
        cap = state.offsets.shape[0]
        tail = offsets[-cap:]
        idx = (base + len(evs) - tail.shape[0] + np.arange(tail.shape[0])) % cap
        state.offsets[idx] = tail
        state.seen += len(evs)
        if self.metrics is not None:
            for feature in self.settings.features:
                self.metrics.observations.labels(feature).inc(len(evs))
        return out

    def _warm_up(self, key: str, j: int, fs: FeatureState, xs: npt.NDArray[np.float64]) -> int:
        """Create the detector if its reference is ready; return how many values it used."""
        name = self._detector_names[j]
        if name in REFERENCE_FREE:
            fs.detector = build_detector(name, self.settings, None)
            return 0
        ref = self._reference(key, j)
        if ref is not None:
            fs.detector = build_detector(name, self.settings, ref)
            return 0
        need = self.settings.reference_size - len(fs.warmup)
        used = min(need, xs.shape[0])
        fs.warmup.extend(xs[:used].tolist())
        if len(fs.warmup) >= self.settings.reference_size:
            fs.detector = build_detector(name, self.settings, np.asarray(fs.warmup))
            fs.warmup = []
        return used

    def _drift_event(
        self,
        key: str,
        j: int,
        t: Transition,
        ev: Telemetry,
        state: KeyState,
        base: int,
        pos: int,
        offsets: npt.NDArray[np.int64],
    ) -> DriftEvent:
        # global index of the event at `pos` is base + pos; the window is its last n_window
        first = base + pos - max(t.n_window, 1) + 1
        if first >= base:
            first_offset = int(offsets[first - base])
        else:
            first_offset = int(state.offsets[first % state.offsets.shape[0]])
        feature = self.settings.features[j]
        if self.metrics is not None:
            self.metrics.drift_events.labels(t.kind, feature).inc()
        return DriftEvent(
            type=t.kind,
            key=key,
            feature=feature,
            detector=self._detector_names[j],
            event_time=ev.ts,
            statistic=t.statistic,
            p_value=t.p_value,
            threshold=t.threshold,
            reference_size=t.n_reference,
            window_size=t.n_window,
            statistic_location=t.statistic_location,
            statistic_sign=t.statistic_sign,
            topic=self.settings.telemetry_topic,
            partition=ev.partition,
            window_first_offset=first_offset,
            window_last_offset=ev.offset,
            observations=t.index,
        )

    # ------------------------------------------------------------------ metrics
    def publish_metrics(self) -> None:
        """Publish every changed stream's statistic, p-value, state and window fill."""
        m = self.metrics
        if m is None:
            return
        for key, state in self.keys.items():
            for feature, fs in zip(self.settings.features, state.features, strict=True):
                if not fs.dirty:
                    continue
                fs.dirty = False
                det = fs.detector
                if det is None:  # still learning its reference
                    m.set_stream(key, feature, float("nan"), float("nan"), False, 0.0)
                    continue
                size = getattr(det, "window_size", None)
                fill = len(det.window) / size if size else 1.0  # type: ignore[attr-defined]
                m.set_stream(key, feature, det.statistic, det.p_value, det.in_drift, fill)
