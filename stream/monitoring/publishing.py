"""Publishing a monitor's streams to its Prometheus metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable

from stream.metrics import Metrics
from stream.monitoring.categorical import CategoricalStreams, CategoryStream
from stream.monitoring.keys import KeyStore
from stream.monitoring.streams import FeatureStream
from stream.settings import Settings
from stream.telemetry.records import ACCURACY_FEATURE

__all__ = ["publish_metrics"]


def publish_metrics(
    m: Metrics, settings: Settings, store: KeyStore, categorical: CategoricalStreams
) -> None:
    """Publish every changed stream's statistic, p-value, state and window fill.

    A key refused per-key series (over ``max_metric_keys``) is skipped before anything is
    computed: its exact p-values, the costliest part, are never evaluated for nothing.
    """
    for key, state in store.keys.items():
        if not m.admits(key):
            _clean(state.features)
            _clean(state.categorical)
            if state.accuracy is not None:
                state.accuracy.dirty = False
            continue
        for feature, fs in zip(settings.features, state.features, strict=True):
            if fs.dirty:
                fs.dirty = False
                _publish_stream(m, key, feature, fs)
        if state.categorical:
            categorical.publish(m, key, state.categorical)
        acc = state.accuracy
        if acc is not None and acc.dirty:
            acc.dirty = False
            m.set_accuracy(key, acc.rolling_accuracy)
            if acc.classes is not None:
                m.set_classification(key, *acc.classes.scores())
            _publish_stream(m, key, ACCURACY_FEATURE, acc)


def _clean(streams: Iterable[FeatureStream | CategoryStream]) -> None:
    for s in streams:
        s.dirty = False


def _publish_stream(m: Metrics, key: str, feature: str, fs: FeatureStream) -> None:
    det = fs.detector
    if det is None:  # still learning its reference
        m.set_stream(key, feature, math.nan, math.nan, False, 0.0)
        return
    size = getattr(det, "window_size", None)
    fill = len(det.window) / size if size else 1.0  # type: ignore[attr-defined]
    m.set_stream(key, feature, det.statistic, det.p_value, fs.active, fill)
    m.set_score(key, feature, det.drift_score, getattr(det, "ert", None))
