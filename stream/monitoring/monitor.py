"""The drift monitor: telemetry batches in, drift events out, with no Kafka in sight.

The Faust agent and ``driftwatch replay`` both drive a :class:`DriftMonitor`. It keeps, per key,
the offsets of the recent events, and per (key, feature) one detector from :mod:`detectors`.
A batch is split by key and each feature's values go to their detector in one
``update_many`` call, so the per-event cost stays near the detector's own
(:mod:`~stream.monitoring.detection`). Per key it also follows the accuracy of labelled events
(:mod:`~stream.monitoring.accuracy`) and the categorical features
(:mod:`~stream.monitoring.categorical`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from detectors.registry import CHI2
from stream.metrics import Metrics
from stream.monitoring.accuracy import AccuracyFeeder
from stream.monitoring.categorical import CategoricalStreams
from stream.monitoring.context import MonitorContext
from stream.monitoring.detection import FeatureFeeder
from stream.monitoring.events import EventFactory
from stream.monitoring.keys import KeyState, KeyStore
from stream.monitoring.processing import KeyProcessor
from stream.monitoring.publishing import publish_metrics
from stream.monitoring.rates import EVENTS, worker_budget
from stream.monitoring.rebaselining import Rebaseliner
from stream.monitoring.state import KeyCodec, snapshot_data
from stream.monitoring.streams import FeatureStream, ReferenceSource, TransitionHook
from stream.settings import Settings
from stream.telemetry.records import ACCURACY_FEATURE, DriftEvent, Telemetry

__all__ = ["DriftMonitor"]

log = logging.getLogger(__name__)


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
    metrics_interval : float
        Seconds between metric updates of :meth:`process` (without events).
    reload_references : callable, optional
        Reads the reference file again (for :meth:`rebaseline` with source ``file``).
    on_transition : TransitionHook, optional
        Called with a :class:`~stream.monitoring.streams.TransitionSnapshot` for every
        transition of a KS stream. Costs a copy of each such stream's window per batch when set.
    track_accuracy : bool
        Follow the accuracy of labelled events (off if a feature is named ``accuracy``).
    reproducible : bool
        Whether a detector's first test waits for its calibration.
    input_id : str, optional
        The input's identity in event ids (``sha256:<hex>`` of a replayed file); None means
        the telemetry topic.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        references: ReferenceSource | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics_interval: float = 1.0,
        reload_references: Callable[[], ReferenceSource] | None = None,
        on_transition: TransitionHook | None = None,
        track_accuracy: bool = True,
        reproducible: bool = True,
        input_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.input_id = input_id
        self.reproducible = reproducible
        self.metrics = metrics
        self.clock = clock
        self.metrics_interval = metrics_interval
        self.on_transition = on_transition
        self._last_publish = -float("inf")
        self.track_accuracy = track_accuracy and ACCURACY_FEATURE not in settings.features
        if track_accuracy and not self.track_accuracy:
            log.warning(
                "a feature is named %r: the rolling-accuracy stream is disabled", ACCURACY_FEATURE
            )
        #: Per-stream ERTs from the worker's daily budget (None with alpha, ert or a fleet budget)
        self.budget = worker_budget(settings)
        store = KeyStore(settings.max_tracked_keys, metrics, lambda: self.stream_names)
        events = EventFactory(settings, metrics, input_id)
        snapshot = on_transition is not None
        self._ctx = MonitorContext(
            settings, metrics, store, events, self.budget, reproducible, snapshot
        )
        self._categorical = CategoricalStreams(
            settings, events, reproducible=reproducible, ert_for=self._categorical_ert
        )
        self._codec = KeyCodec(settings, self._categorical)
        self._features = FeatureFeeder(self._ctx, references)
        self._accuracy = AccuracyFeeder(self._ctx)
        self._rebaseliner = Rebaseliner(
            self._ctx,
            self._features,
            self._accuracy,
            self._categorical,
            self.stream_names,
            reload_references,
        )
        feeders = (
            self._features,
            self._categorical,
            self._accuracy if self.track_accuracy else None,
        )
        self._keys = KeyProcessor(self._ctx, self._codec, feeders, self._new_key)

    # ------------------------------------------------------------------ state
    @property
    def keys(self) -> OrderedDict[str, KeyState]:
        """The tracked keys' state, least recently fed first."""
        return self._ctx.store.keys

    @property
    def evictions(self) -> int:
        """Keys evicted (the least recently fed, beyond ``max_tracked_keys``)."""
        return self._ctx.store.evictions

    @property
    def references(self) -> ReferenceSource | None:
        """Where references come from in ``file`` mode (None: warm-up)."""
        return self._features.references

    @references.setter
    def references(self, value: ReferenceSource | None) -> None:
        self._features.references = value

    @property
    def stream_names(self) -> tuple[str, ...]:
        """The features, and ``accuracy`` when accuracy is tracked."""
        extra = (ACCURACY_FEATURE,) if self.track_accuracy else ()
        return (*self.settings.features, *self.settings.categorical_features, *extra)

    @property
    def tracked_streams(self) -> int:
        """Streams tracked: every key's features, plus the accuracy streams."""
        return self._ctx.tracked_streams

    def _categorical_ert(self, key: str, feature: str) -> float | None:
        """The worker budget's ERT for a new categorical stream of ``key`` (None without)."""
        return self._ctx.budget_ert(key, EVENTS, CHI2)

    def _new_key(self) -> KeyState:
        size = self.settings.window_size
        return KeyState(
            [FeatureStream() for _ in self.settings.features],
            np.full(size, -1, dtype=np.int64),
            categorical=self._categorical.new_streams(),
        )

    # ------------------------------------------------------------------ checkpoints
    def snapshot(
        self, partitions: Collection[int] | None = None, *, keys: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Every key's state (or only the keys of ``partitions``, or ``keys``) as plain data.

        Restoring it into a fresh monitor and feeding the events that follow the last one
        processed here gives exactly the results of a monitor that never stopped: windows,
        references, episodes, accuracy and offsets all continue. The result holds numbers,
        strings, numpy arrays, lists and dicts only (see :mod:`stream.monitoring.state`).
        """
        held = self.keys
        chosen = held.items() if keys is None else ((k, held[k]) for k in keys if k in held)
        return snapshot_data(
            (k, st) for k, st in chosen if partitions is None or st.partition in partitions
        )

    def restore(self, data: Any) -> int:
        """Load keys from a :meth:`snapshot`; return how many. Newer state wins over older.

        Raises
        ------
        detectors.registry.StateError
            If ``data`` is not a snapshot this version can continue from (nothing is loaded).
        """
        loaded = self._codec.keys_from_snapshot(data)
        store = self._ctx.store
        for key, state in loaded:
            store.put(key, state)
            state.changed = False
            state.replay_until = state.last_offset
            for fs in state.features:
                fs.dirty = True
        store.trim()
        return len(loaded)

    def take_changed(self, partition: int) -> list[str]:
        """Keys of ``partition`` changed since last taken (and mark them unchanged)."""
        return self._ctx.store.take_changed(partition)

    def take_evicted(self) -> list[tuple[str, int]]:
        """(key, partition) pairs evicted since last taken."""
        return self._ctx.store.take_evicted()

    def drop_partitions(self, partitions: Collection[int]) -> int:
        """Forget the keys of ``partitions`` (handed to another worker); return how many."""
        return self._ctx.store.drop_partitions(partitions)

    # ------------------------------------------------------------------ processing
    def process(self, batch: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed a batch (in stream order) and return the drift events it caused."""
        by_key: dict[str, list[Telemetry]] = {}
        for ev in batch:
            evs = by_key.get(ev.key)
            if evs is None:
                by_key[ev.key] = [ev]
            else:
                evs.append(ev)
        if self.budget is not None:
            self._ctx.begin_batch(by_key, self.track_accuracy)
        events: list[DriftEvent] = []
        for key, evs in by_key.items():
            events.extend(self._keys.process_or_roll_back(key, evs))
        if self.metrics is not None:
            self.metrics.tracked_streams.set(self.tracked_streams)
            now = self.clock()
            # a drift state changed: publish now, not up to an interval later (or never, if
            # the stream goes quiet); otherwise at most once per interval
            if events or now - self._last_publish >= self.metrics_interval:
                self.publish_metrics()
                self._last_publish = now
        snapshots, self._ctx.snapshots = self._ctx.snapshots, []
        if self.on_transition is not None:
            for snapshot in snapshots:
                self.on_transition(snapshot)
        return events

    def take_failed(self) -> list[tuple[Telemetry, Exception]]:
        """Events whose processing raised since last taken (their key was rolled back)."""
        out, self._keys.failed = self._keys.failed, []
        return out

    @property
    def skipped(self) -> int:
        """Events not applied again after a restore: their key's state already held them."""
        return self._keys.skipped

    # ------------------------------------------------------------------ re-baselining
    def rebaseline(
        self,
        key: str | None = None,
        feature: str | None = None,
        source: str = "window",
        *,
        command_id: str | None = None,
        max_streams: int | None = None,
    ) -> list[DriftEvent]:
        """Give streams a new reference; return the events that record it.

        See :meth:`stream.monitoring.rebaselining.Rebaseliner.rebaseline` (parameters, rules
        and exceptions).
        """
        return self._rebaseliner.rebaseline(
            key, feature, source, command_id=command_id, max_streams=max_streams
        )

    # ------------------------------------------------------------------ metrics
    def publish_metrics(self) -> None:
        """Publish every changed stream's statistic, p-value, state and window fill.

        :meth:`process` calls it at most once per ``metrics_interval`` (and after every batch
        that emitted events); the worker also calls it on a timer, so that the last batch
        before a pause is published too.
        """
        if self.metrics is not None:
            publish_metrics(self.metrics, self.settings, self._ctx.store, self._categorical)
