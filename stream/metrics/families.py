"""Prometheus metrics of the worker, all built on an injected ``CollectorRegistry``.

Per-(key, feature) series are capped at ``max_keys`` distinct keys: further keys are still
monitored and still emit drift events, but get no per-key series; each refused key is counted
once in ``driftwatch_label_series_dropped_total``, and
``driftwatch_label_keys_over_cap`` is the number of tracked keys refused them right now (it stays
up in a steady fleet above the cap, where the counter stops rising).
"""

from __future__ import annotations

import contextlib
import math
import sys
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.metrics.consumer import ConsumerMetrics

__all__ = ["LATENCY_BUCKETS", "Metrics", "calibrations_pending"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _version() -> str:
    try:
        return version("driftwatch")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def calibrations_pending() -> int:
    """Calibrations queued and not yet started on the detectors' background pools (read at
    scrape time). Nothing is imported here: pools exist only once detectors were loaded."""
    module = sys.modules.get("detectors.background")
    return 0 if module is None else int(module.queued())


class Metrics(ConsumerMetrics):
    """Every metric the worker exports: detection and streams here, the consumer's in
    :class:`~stream.metrics.consumer.ConsumerMetrics`."""

    def __init__(self, registry: CollectorRegistry, *, max_keys: int = 500) -> None:
        super().__init__(registry)
        self.max_keys = max_keys
        self._keys: set[str] = set()
        self._refused: set[str] = set()
        p = "driftwatch_"
        self.events_consumed = Counter(
            p + "events_consumed", "Telemetry messages consumed.", ["topic"], registry=registry
        )
        self.invalid_events = Counter(
            p + "invalid_events",
            "Messages rejected and sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.skipped = Counter(
            p + "skipped",
            "Telemetry events (or spans) skipped, not dead-lettered: filtered out by the span "
            "filter, without the key fields, or without any feature; by reason.",
            ["reason"],
            registry=registry,
        )
        self.missing_features = Counter(
            p + "missing_features",
            "Valid telemetry events that lacked a feature (its other features still count).",
            ["feature"],
            registry=registry,
        )
        self.chi2_statistic = Gauge(
            p + "chi2_statistic",
            "Current chi-square statistic of a categorical (key, feature) stream.",
            ["key", "feature"],
            registry=registry,
        )
        self.observations = Counter(
            p + "observations", "Feature values fed to detectors.", ["feature"], registry=registry
        )
        self.ks_statistic = Gauge(
            p + "ks_statistic",
            "Current detector statistic (KS D) per key and feature.",
            ["key", "feature"],
            registry=registry,
        )
        self.p_value = Gauge(
            p + "p_value",
            "Current p-value per key and feature.",
            ["key", "feature"],
            registry=registry,
        )
        self.drift_active = Gauge(
            p + "drift_active",
            "1 while a drift episode is open for the key and feature.",
            ["key", "feature"],
            registry=registry,
        )
        self.drift_score = Gauge(
            p + "drift_score",
            "Current statistic over the alarm threshold per key and feature: 1 or more alarms.",
            ["key", "feature"],
            registry=registry,
        )
        self.stream_ert = Gauge(
            p + "stream_ert",
            "Observations between false alarms the stream's threshold is calibrated to.",
            ["key", "feature"],
            registry=registry,
        )
        self.drift_events = Counter(
            p + "drift_events",
            "Drift events emitted, by type.",
            ["type", "feature"],
            registry=registry,
        )
        self.window_fill = Gauge(
            p + "window_fill_ratio",
            "Window observations over window capacity.",
            ["key", "feature"],
            registry=registry,
        )
        self.rolling_accuracy = Gauge(
            p + "rolling_accuracy",
            "Accuracy (predicted_label == true_label) over the last window_size labelled events.",
            ["key"],
            registry=registry,
        )
        self.macro_precision, self.macro_recall, self.macro_f1 = (
            Gauge(
                p + name,
                f"Macro {what} over the classes of the last window_size labelled events.",
                ["key"],
                registry=registry,
            )
            for name, what in (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))
        )
        self.processing_latency = Histogram(
            p + "processing_latency_seconds",
            "Time to process one batch of telemetry.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tracked_streams = Gauge(
            p + "tracked_streams", "(key, feature) streams held in memory.", registry=registry
        )
        self.key_evictions = Counter(
            p + "key_evictions",
            "Keys evicted (least recently seen first) to stay within max_tracked_keys.",
            registry=registry,
        )
        self.events_skipped = Counter(
            p + "events_skipped",
            "Events read again after a restore whose key's restored state already held them.",
            registry=registry,
        )
        self.rebaseline_skipped = Counter(
            p + "rebaseline_skipped",
            "Streams a re-baseline command did not refresh, by reason (rate_limited: refreshed "
            "less than a window ago; fan_out: over the per-command bound; already_applied).",
            ["reason"],
            registry=registry,
        )
        self.series_dropped = Counter(
            p + "label_series_dropped",
            "Keys refused per-key series because of the label cap.",
            registry=registry,
        )
        self.keys_over_cap = Gauge(
            p + "label_keys_over_cap",
            "Tracked keys currently without per-key series because of the label cap.",
            registry=registry,
        )
        self.calibrations_pending = Gauge(
            p + "calibrations_pending",
            "Detector calibrations queued and not yet started (read at scrape time).",
            registry=registry,
        )
        self.calibrations_pending.set_function(calibrations_pending)
        self.build_info = Gauge(
            p + "build_info", "Build information.", ["version"], registry=registry
        )
        self.build_info.labels(_version()).set(1)
        for reason in ("invalid_json",):
            self.invalid_events.labels(reason)
        for reason in ("filtered", "missing_key", "no_features"):
            self.skipped.labels(reason)

    def admits(self, key: str) -> bool:
        """Whether ``key`` gets per-key series (the first ``max_keys`` keys do)."""
        if key in self._keys:
            return True
        if len(self._keys) < self.max_keys:
            self._keys.add(key)
            return True
        if key not in self._refused:
            self._refused.add(key)
            self.series_dropped.inc()
            self.keys_over_cap.set(len(self._refused))
        return False

    def forget(self, key: str, features: tuple[str, ...]) -> None:
        """Drop a key's series (when the key is evicted), or forget that it was refused them."""
        if key in self._refused:
            self._refused.discard(key)
            self.keys_over_cap.set(len(self._refused))
        if key in self._keys:
            self._keys.discard(key)
            for feature in features:
                for gauge in (
                    self.ks_statistic,
                    self.chi2_statistic,
                    self.p_value,
                    self.drift_active,
                    self.window_fill,
                    self.drift_score,
                    self.stream_ert,
                ):
                    with contextlib.suppress(KeyError):
                        gauge.remove(key, feature)
            for gauge in self._classification_gauges:
                with contextlib.suppress(KeyError):
                    gauge.remove(key)

    def set_accuracy(self, key: str, accuracy: float) -> None:
        """Publish one key's rolling accuracy (if the key is admitted and it is known)."""
        if math.isnan(accuracy) or not self.admits(key):
            return
        self.rolling_accuracy.labels(key).set(accuracy)

    @property
    def _classification_gauges(self) -> tuple[Gauge, ...]:
        return (self.rolling_accuracy, self.macro_precision, self.macro_recall, self.macro_f1)

    def set_classification(self, key: str, precision: float, recall: float, f1: float) -> None:
        """Publish one key's rolling macro precision, recall and F1 (if admitted and known)."""
        if math.isnan(precision) or not self.admits(key):
            return
        self.macro_precision.labels(key).set(precision)
        self.macro_recall.labels(key).set(recall)
        self.macro_f1.labels(key).set(f1)

    def set_stream(
        self,
        key: str,
        feature: str,
        statistic: float,
        p_value: float,
        active: bool,
        fill: float,
        *,
        chi2: bool = False,
    ) -> None:
        """Publish one (key, feature) stream's state (if the key is admitted); ``chi2``: the
        statistic is a categorical stream's chi-square, not a KS distance."""
        if not self.admits(key):
            return
        if not math.isnan(statistic):
            gauge = self.chi2_statistic if chi2 else self.ks_statistic
            gauge.labels(key, feature).set(statistic)
        if not math.isnan(p_value):
            self.p_value.labels(key, feature).set(p_value)
        self.drift_active.labels(key, feature).set(1 if active else 0)
        self.window_fill.labels(key, feature).set(fill)

    def set_score(self, key: str, feature: str, score: float, ert: float | None) -> None:
        """Publish one stream's drift score and ERT (if the key is admitted and they are known)."""
        if not self.admits(key):
            return
        if not math.isnan(score):
            self.drift_score.labels(key, feature).set(score)
        if ert is not None:
            self.stream_ert.labels(key, feature).set(ert)
