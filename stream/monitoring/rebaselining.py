"""Re-baselining: give streams a new reference, and record it with ``reference_refreshed`` events.

A refresh inside a reported drift episode closes it with a ``drift_resolved`` event of reason
``rebaselined``; the detector's own episode goes on against the new reference (its end is not
reported), and the stream moving away from the new reference by the alarm's threshold opens a
new one (see :mod:`stream.monitoring.detection`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector
from stream.exceptions import UnknownKeyError
from stream.monitoring.accuracy import AccuracyFeeder
from stream.monitoring.categorical import CategoricalStreams, CategoryStream
from stream.monitoring.context import ACCURACY_DETECTOR, MonitorContext
from stream.monitoring.detection import FeatureFeeder
from stream.monitoring.events import Performance, Refresh, Span, StreamId
from stream.monitoring.keys import KeyState
from stream.monitoring.state import APPLIED_REMEMBERED
from stream.monitoring.streams import FeatureStream, KSDetector, ReferenceSource, ks_view
from stream.telemetry.records import (
    ACCURACY_FEATURE,
    DISTRIBUTION,
    PERFORMANCE,
    REBASELINE_SOURCES,
    DriftEvent,
)

__all__ = ["Rebaseliner"]


@dataclass(frozen=True, slots=True)
class _Where:
    """A stream being refreshed: its name in events, offset ring and latest event."""

    stream: StreamId
    ring: npt.NDArray[np.int64]
    seen: int
    last_ts: float
    partition: int

    def span(self, window: int) -> Span:
        """Where the stream's latest ``window`` observations are."""
        ring, seen = self.ring, self.seen
        cap = ring.shape[0]
        last = int(ring[(seen - 1) % cap]) if seen else -1
        first = int(ring[(seen - window) % cap]) if window else last
        return Span(self.last_ts, self.partition, first, last)


class _Command:
    """One re-baseline command being applied: its events, rate limit and fan-out bound."""

    def __init__(
        self, ctx: MonitorContext, command_id: str | None, max_streams: int | None
    ) -> None:
        self.ctx = ctx
        self.command_id = command_id
        self.max_streams = max_streams
        self.refreshed = 0
        self.events: list[DriftEvent] = []

    def skip(self, reason: str) -> None:
        m = self.ctx.metrics
        if m is not None:
            m.rebaseline_skipped.labels(reason).inc()

    def admits(self, fs: FeatureStream | CategoryStream, det: DriftDetector) -> bool:
        """Whether ``fs`` may be refreshed now (and count it if so)."""
        seen = fs.n_base + det.n_seen
        if fs.refreshed_at is not None and seen - fs.refreshed_at < self.ctx.settings.window_size:
            self.skip("rate_limited")
            return False
        if self.max_streams is not None and self.refreshed >= self.max_streams:
            self.skip("fan_out")
            return False
        self.refreshed += 1
        fs.refreshed_at = seen
        return True

    def event(
        self,
        where: _Where,
        fs: FeatureStream,
        det: KSDetector,
        reference: npt.NDArray[np.float64],
        window: npt.NDArray[np.float64],
        source: str | None,
        performance: Performance | None = None,
    ) -> None:
        """Add a refresh's event (``source`` None: the ``drift_resolved`` of ``fs.opened``)."""
        threshold = float("nan") if source is not None or fs.opened is None else fs.opened.threshold
        r = Refresh(
            source,
            self.command_id,
            det.statistic,
            det.p_value,
            det.statistic_location,
            det.statistic_sign,
            int(reference.shape[0]),
            int(window.shape[0]),
            threshold,
        )
        span = where.span(int(window.shape[0]))
        observations = fs.n_base + det.n_seen
        self.events.append(
            self.ctx.events.refresh(where.stream, r, span, observations, performance)
        )

    def close_episode(
        self,
        where: _Where,
        fs: FeatureStream,
        det: KSDetector,
        window: npt.NDArray[np.float64],
        rolling_accuracy: float | None = None,
    ) -> None:
        """End a reported episode of ``fs`` with ``drift_resolved`` (reason ``rebaselined``)."""
        if not fs.active or fs.opened is None:
            return
        self.event(where, fs, det, det.reference, window, None, Performance(rolling_accuracy))
        # the detector's own episode goes on against the new reference: its end is not
        # reported, and the stream moving away from it by the alarm's threshold reopens one
        if fs.one_sided:
            fs.reported = False
            fs.suppressed = fs.opened
        else:
            fs.rebaselined = fs.opened
        fs.opened = None


class Rebaseliner:
    """Applies re-baseline commands to a monitor's keys.

    Parameters
    ----------
    ctx : MonitorContext
        The monitor's shared parts.
    features : FeatureFeeder
        The features' detectors and references (replaced by a ``file`` refresh).
    accuracy : AccuracyFeeder
        Builds accuracy detectors.
    categorical : CategoricalStreams
        Re-baselines the categorical streams.
    stream_names : tuple of str
        The streams a command may name.
    reload : callable, optional
        Reads the reference file again (source ``file``).
    """

    def __init__(
        self,
        ctx: MonitorContext,
        features: FeatureFeeder,
        accuracy: AccuracyFeeder,
        categorical: CategoricalStreams,
        stream_names: tuple[str, ...],
        reload: Callable[[], ReferenceSource] | None,
    ) -> None:
        self.ctx = ctx
        self.features = features
        self.detector_names = features.detector_names
        self.accuracy = accuracy
        self.categorical = categorical
        self.stream_names = stream_names
        self.reload = reload

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

        Parameters
        ----------
        key, feature : str, optional
            The key and the feature (or ``accuracy``) to refresh; None means every tracked key,
            every stream.
        source : {"window", "file"}
            ``window``: each stream's current window becomes its reference. ``file``: the
            reference file is read again and each stream gets its (per-key) reference from it;
            new keys then use it too, in ``file`` reference mode. The accuracy streams have no
            file reference and are left alone by ``file``.
        command_id : str, optional
            The command's id: carried by the events, remembered per key so that a command
            read again after a restart is not applied twice, and part of the event ids.
        max_streams : int, optional
            Refresh at most this many streams; the others are counted, not refreshed.

        Each refreshed stream gets a ``reference_refreshed`` event. A stream is refreshed at
        most once per window (``window_size`` observations since its last refresh); streams
        still learning their reference, with a reference-free detector, or (for ``window``)
        with an empty window are skipped. A refresh inside a reported drift episode closes it
        with a ``drift_resolved`` event of reason ``rebaselined``; if the stream then moves
        away from its new reference by the alarm's threshold, a new episode starts.

        Raises
        ------
        ValueError
            For an unknown source or feature, or ``file`` with no reference file configured.
        UnknownKeyError
            If ``key`` is not tracked here.
        InputFileError
            If the reference file cannot be read.
        """
        if source not in REBASELINE_SOURCES:
            raise ValueError(f"source must be one of {REBASELINE_SOURCES}, got {source!r}")
        if feature is not None and feature not in self.stream_names:
            raise ValueError(f"feature must be one of {self.stream_names}, got {feature!r}")
        if key is not None and key not in self.ctx.store.keys:
            raise UnknownKeyError(key)
        file_refs: ReferenceSource | None = None
        if source == "file":
            if feature == ACCURACY_FEATURE:
                raise ValueError("the accuracy stream has no file reference; use source 'window'")
            if self.reload is None:
                raise ValueError("source 'file' needs a reference_file")
            file_refs = self.reload()
            if self.features.references is not None:
                self.features.references = file_refs
        keys = list(self.ctx.store.keys) if key is None else [key]
        return self.apply(keys, feature, file_refs, source, command_id, max_streams)

    def apply(
        self,
        keys: list[str],
        feature: str | None,
        file_refs: ReferenceSource | None,
        source: str,
        command_id: str | None,
        max_streams: int | None,
    ) -> list[DriftEvent]:
        """Refresh the streams of ``keys`` (``feature`` None: all); return the events.

        ``file_refs`` are the file's references for source ``file`` (None: each stream's
        window); see :meth:`stream.monitoring.monitor.DriftMonitor.rebaseline`.
        """
        cmd = _Command(self.ctx, command_id, max_streams)
        for k in keys:
            state = self.ctx.store.keys[k]
            if command_id is not None:
                if command_id in state.applied:
                    cmd.skip("already_applied")
                    continue
                state.applied = [*state.applied[-(APPLIED_REMEMBERED - 1) :], command_id]
            state.changed = True
            self._features(k, state, feature, file_refs, cmd, source)
            if file_refs is None:
                acc = state.accuracy
                det = None if acc is None else ks_view(acc.detector)
                if (
                    acc is not None
                    and det is not None
                    and feature in (None, ACCURACY_FEATURE)
                    and cmd.admits(acc, det)
                ):
                    self._accuracy(k, state, acc, det, cmd)
                if state.categorical:
                    cmd.events.extend(
                        self.categorical.rebaseline(
                            k, state.categorical, feature, cmd.admits, command_id=command_id
                        )
                    )
        return cmd.events

    def _features(
        self,
        key: str,
        state: KeyState,
        feature: str | None,
        file_refs: ReferenceSource | None,
        cmd: _Command,
        source: str,
    ) -> None:
        for j, name in enumerate(self.ctx.settings.features):
            fs = state.features[j]
            det = ks_view(fs.detector)
            if feature not in (None, name) or det is None:
                continue
            window = det.window
            reference = window if file_refs is None else file_refs(key, name)
            if reference is None or reference.size == 0 or not cmd.admits(fs, det):
                continue
            ring, seen = (
                (state.offsets, state.seen) if fs.offsets is None else (fs.offsets, fs.seen)
            )
            stream = StreamId(key, name, self.detector_names[j], DISTRIBUTION)
            where = _Where(stream, ring, seen, state.last_ts, state.partition)
            cmd.close_episode(where, fs, det, window)
            det.set_reference(reference)
            fs.dirty = True
            cmd.event(where, fs, det, reference, window, source)

    def _accuracy(
        self, key: str, state: KeyState, acc: FeatureStream, det: KSDetector, cmd: _Command
    ) -> None:
        window = det.window
        if window.size == 0:
            return
        assert acc.offsets is not None
        stream = StreamId(key, ACCURACY_FEATURE, ACCURACY_DETECTOR, PERFORMANCE)
        where = _Where(stream, acc.offsets, acc.seen, acc.last_ts, state.partition)
        cmd.close_episode(where, acc, det, window, acc.rolling_accuracy)
        if acc.suppressed is not None and not acc.reported:
            # An unreported episode (accuracy went up) would keep the detector from alarming;
            # start afresh instead: the window replayed against itself raises no alarm.
            fresh = self.accuracy.detector(key, window)
            fresh.update_many(window)
            acc.n_base += det.n_seen - fresh.n_seen
            acc.detector = fresh
            acc.suppressed = None
        else:
            det.set_reference(window)
        acc.reference_accuracy = 1.0 - float(window.mean())
        acc.dirty = True
        new = ks_view(acc.detector)
        assert new is not None
        performance = Performance(acc.rolling_accuracy, acc.reference_accuracy)
        cmd.event(where, acc, new, window, window, "window", performance)
