"""Feeding a stream's values to its detector, and a key's numeric features to their streams.

:func:`feed` returns the transitions to report: all of a two-sided stream's; of a one-sided
stream only the episodes whose window moved up; after a re-baseline closed an episode, not the
detector's own end of it, but a new episode once the window moves away from the new reference
by the closed alarm's threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from detectors import DRIFT_RESOLVED, DRIFT_STARTED, DriftDetector, IncrementalKS, Transition
from detectors.ks_bank import checkpoint, rewind
from detectors.registry import KINDS
from stream.monitoring.context import ACCURACY_DETECTOR, MonitorContext
from stream.monitoring.events import Span, StreamId
from stream.monitoring.keys import KeyState
from stream.monitoring.rates import EVENTS, LABELLED
from stream.monitoring.rings import first_offset, push_ring
from stream.monitoring.streams import (
    NO_VALUES,
    FeatureStream,
    KSDetector,
    ReferenceSource,
    TransitionSnapshot,
    ks_view,
)
from stream.telemetry.records import DISTRIBUTION, DriftEvent, Telemetry

__all__ = ["FeatureFeeder", "Hit", "feed", "record_snapshot"]

# Distinct KS statistics differ by at least 1 / (n m); this only absorbs float rounding.
_TIE = 1e-12

_NO_TIMES = np.empty(0, dtype=np.float64)
_VALUES, _OFFSET, _TS = attrgetter("values"), attrgetter("offset"), attrgetter("ts")

REFERENCE_FREE: frozenset[str] = frozenset(k.name for k in KINDS.values() if not k.needs_reference)


@dataclass(frozen=True, slots=True)
class Hit:
    """A transition to report: the position (in the values fed) of the value that caused it."""

    pos: int
    transition: Transition
    window: npt.NDArray[np.float64] | None


def _reopened(det: KSDetector, alarm: Transition) -> Transition:
    """A ``drift_started`` at ``det``'s current statistic, under an earlier alarm's threshold."""
    return Transition(
        DRIFT_STARTED,
        det.n_seen,
        det.statistic,
        det.p_value,
        det.statistic_location,
        det.statistic_sign,
        alarm.threshold,
        alarm.n_reference,
        alarm.n_window,
    )


def _window_of(det: DriftDetector) -> npt.NDArray[np.float64] | None:
    ks = ks_view(det)
    return None if ks is None else ks.window


def feed(
    fs: FeatureStream,
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64] | None,
    snapshot: bool,
    finite: bool = False,
) -> list[Hit]:
    """Feed one stream's values; return the transitions to report.

    With ``snapshot``, each hit of a KS stream carries the window at its transition.
    ``finite``: ``xs`` is known to hold finite values only (a count-window
    :class:`~detectors.IncrementalKS` then skips its own check).
    """
    det = fs.detector
    assert det is not None
    if fs.one_sided:
        return _feed_one_sided(fs, det, xs, ts, finite)
    if fs.rebaselined is not None:
        return _feed_rebaselined(fs, det, xs, ts)
    ks = ks_view(det) if snapshot else None
    before = None if ks is None else ks.window
    n_before = det.n_seen
    if finite and type(det) is IncrementalKS and det.duration is None:
        det._apply_many(xs, _NO_TIMES)
    else:
        det.update_many(xs, ts)
    hits: list[Hit] = []
    for t in det.transitions:
        pos = t.index - n_before - 1
        window = None
        if before is not None:
            # the window at the transition: the last n_window values fed up to it
            window = np.concatenate((before, xs[: pos + 1]))[-t.n_window :]
        hits.append(Hit(pos, t, window))
        fs.opened = t if t.kind == DRIFT_STARTED else None
    return hits


def _feed_rebaselined(
    fs: FeatureStream,
    det: DriftDetector,
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64] | None,
) -> list[Hit]:
    """Feed event by event while the detector's episode closed by a re-baseline goes on.

    Its end is not reported. If, before it ends, the window moves away from the new
    reference by the closed alarm's threshold, a new episode is reported from there.
    """
    hits: list[Hit] = []
    times = None if ts is None else ts.tolist()
    ks = ks_view(det)
    for i, x in enumerate(xs.tolist()):
        det.update(x, None if times is None else times[i])
        closed = fs.rebaselined
        if closed is None:
            for t in det.transitions:
                hits.append(Hit(i, t, _window_of(det)))
                fs.opened = t if t.kind == DRIFT_STARTED else None
            continue
        if any(t.kind == DRIFT_RESOLVED for t in det.transitions):
            fs.rebaselined = None  # the detector's episode ended: nothing to report
        elif ks is not None and ks.statistic >= closed.threshold - _TIE:
            t = _reopened(ks, closed)
            hits.append(Hit(i, t, ks.window))
            fs.rebaselined = None
            fs.opened = t
    return hits


def _feed_one_sided(
    fs: FeatureStream,
    det: DriftDetector,
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64] | None,
    finite: bool,
) -> list[Hit]:
    """Feed event by event, reporting only episodes whose window moved up.

    An alarm on a window below the reference is not reported, and neither is the end of its
    episode. While such an episode is open the detector cannot alarm again, so the stream is
    watched: once the window is above the reference by the alarm's own threshold, the episode
    is reported as starting there.

    Without such an episode to watch, a batch that causes no transition reports nothing: it is
    fed in one ``update_many`` call; a batch that causes one is rewound and fed event by event.
    """
    if (fs.suppressed is None or fs.reported) and isinstance(det, IncrementalKS):
        saved = checkpoint(det)
        if finite and type(det) is IncrementalKS and det.duration is None:
            det._apply_many(xs, _NO_TIMES)
        else:
            det.update_many(xs, ts)
        if not det.transitions:
            return []
        rewind(det, saved)
    hits: list[Hit] = []
    times = None if ts is None else ts.tolist()
    ks = ks_view(det)
    for i, x in enumerate(xs.tolist()):
        det.update(x, None if times is None else times[i])
        if det.transitions:
            for t in det.transitions:
                if t.kind == DRIFT_STARTED:
                    if t.statistic_sign > 0:
                        fs.reported = True
                        fs.opened = t
                        hits.append(Hit(i, t, _window_of(det)))
                    else:
                        fs.suppressed = t
                else:
                    if fs.reported:
                        hits.append(Hit(i, t, _window_of(det)))
                    fs.reported = False
                    fs.suppressed = None
        elif fs.suppressed is not None and not fs.reported and ks is not None:
            s = fs.suppressed
            if ks.statistic_sign > 0 and ks.statistic >= s.threshold - _TIE:
                fs.reported = True
                t = _reopened(ks, s)
                fs.opened = t
                hits.append(Hit(i, t, ks.window))
    return hits


def record_snapshot(
    ctx: MonitorContext,
    event: DriftEvent,
    det: DriftDetector | None,
    window: npt.NDArray[np.float64] | None,
) -> None:
    """Keep a :class:`TransitionSnapshot` of ``event`` for the transition hook."""
    ks = ks_view(det)
    if window is not None and ks is not None:
        ctx.snapshots.append(TransitionSnapshot(event, ks.reference, window))


@dataclass(slots=True)
class _Column:
    """One numeric feature's values in a key's batch: those present, and where they are.

    A stream that has seen every event of its key uses the key's offset ring; the first event
    without the feature gives it its own ring (a copy of the key's: until then both held the
    same offsets at the same indices), so window offsets stay exact for sparse features.
    """

    xs: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64] | None
    ring: npt.NDArray[np.int64]
    base: int
    where: npt.NDArray[np.intp] | None  # batch positions of the values (None: all)

    @classmethod
    def of(
        cls,
        fs: FeatureStream,
        state: KeyState,
        values: npt.NDArray[np.float64],
        offsets: npt.NDArray[np.int64],
        times: npt.NDArray[np.float64] | None,
        dense: bool,
    ) -> _Column:
        """The column of ``values``; ``dense``: the key's batch lacks no feature."""
        if fs.offsets is None:
            if dense or not np.isnan(values).any():
                return cls(values, offsets, times, state.offsets, state.seen, None)
            fs.offsets, fs.seen = state.offsets.copy(), state.seen
        where = np.flatnonzero(~np.isnan(values))
        return cls(
            values[where],
            offsets[where],
            None if times is None else times[where],
            fs.offsets,
            fs.seen,
            where,
        )

    def event_index(self, pos: int) -> int:
        """The batch position of the ``pos``-th value."""
        return pos if self.where is None else int(self.where[pos])

    def advance(self, fs: FeatureStream) -> None:
        """Record the values' offsets in the stream's own ring (the key's is pushed once)."""
        if self.where is not None:
            assert fs.offsets is not None
            push_ring(fs.offsets, fs.seen, self.offsets)
            fs.seen += self.xs.shape[0]


class FeatureFeeder:
    """Feeds a key's events to its numeric features' streams.

    Parameters
    ----------
    ctx : MonitorContext
        The monitor's shared parts.
    references : ReferenceSource, optional
        Where references come from in ``file`` mode; None for warm-up.
    """

    def __init__(self, ctx: MonitorContext, references: ReferenceSource | None) -> None:
        self.ctx = ctx
        self.references = references
        self.detector_names = [ctx.settings.detector_for(f) for f in ctx.settings.features]

    def process(self, key: str, state: KeyState, evs: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed ``evs`` (new to the key, in order); return the features' drift events."""
        ctx = self.ctx
        settings = ctx.settings
        # one value per feature an event (one float each, nan: missing); a ragged batch fails
        # to reshape, as it would fail to make an array
        values = np.fromiter(chain.from_iterable(map(_VALUES, evs)), np.float64).reshape(
            len(evs), len(state.features)
        )
        offsets = np.fromiter(map(_OFFSET, evs), dtype=np.int64, count=len(evs))
        times = (
            np.fromiter(map(_TS, evs), dtype=np.float64, count=len(evs))
            if settings.window_duration is not None
            else None
        )
        state.partition = evs[-1].partition
        state.last_offset = evs[-1].offset
        state.changed = True
        state.last_ts = evs[-1].ts
        out: list[DriftEvent] = []
        # every value finite (the common case) is checked once here, not by each detector: a
        # non-finite value makes the sum non-finite (an overflow only takes the checked path)
        finite = math.isfinite(values.sum())
        dense = finite or not np.isnan(values).any()
        for j, fs in enumerate(state.features):
            # sparse events: the stream sees only the events that have the feature, and keeps
            # its own offset ring once one lacks it (see _Column)
            if dense and fs.offsets is None and fs.detector is not None:
                # the common case, without a _Column: every value, the key's ring
                hits = feed(fs, values[:, j], times, ctx.snapshot, finite)
                fs.dirty = True
                if hits:
                    col = _Column(values[:, j], offsets, times, state.offsets, state.seen, None)
                    out += self._report(key, j, fs, evs, col, 0, hits)
                if ctx.metrics is not None:
                    ctx.metrics.observations.labels(settings.features[j]).inc(len(evs))
                continue
            col = _Column.of(fs, state, values[:, j], offsets, times, dense)
            if col.xs.shape[0] == 0:
                continue
            start = 0 if fs.detector is not None else self._warm_up(key, j, fs, col.xs)
            if fs.detector is not None:
                ts = None if col.times is None else col.times[start:]
                hits = feed(fs, col.xs[start:], ts, ctx.snapshot, finite)
                fs.dirty = True
                if hits:
                    out += self._report(key, j, fs, evs, col, start, hits)
            col.advance(fs)
            if ctx.metrics is not None:
                ctx.metrics.observations.labels(settings.features[j]).inc(col.xs.shape[0])
        push_ring(state.offsets, state.seen, offsets)
        state.seen += len(evs)
        return out

    def _report(
        self,
        key: str,
        j: int,
        fs: FeatureStream,
        evs: Sequence[Telemetry],
        col: _Column,
        start: int,
        hits: list[Hit],
    ) -> list[DriftEvent]:
        """The drift events of feature ``j``'s ``hits`` (``col.xs[start:]`` was fed)."""
        ctx = self.ctx
        settings = ctx.settings
        stream = StreamId(key, settings.features[j], self.detector_names[j], DISTRIBUTION)
        out: list[DriftEvent] = []
        for hit in hits:
            pos = start + hit.pos
            t = hit.transition
            ev = evs[col.event_index(pos)]
            first = first_offset(col.ring, col.base, col.offsets, pos, t.n_window)
            span = Span(ev.ts, ev.partition, first, ev.offset)
            event = ctx.events.transition(stream, t, span, fs.n_base + t.index)
            out.append(event)
            record_snapshot(ctx, event, fs.detector, hit.window)
        return out

    def _warm_up(self, key: str, j: int, fs: FeatureStream, xs: npt.NDArray[np.float64]) -> int:
        """Create the detector if its reference is ready; return how many values it used."""
        ctx = self.ctx
        settings = ctx.settings
        name = self.detector_names[j]
        calibrated = settings.effective_ert is not None or ctx.budget is not None
        if name in REFERENCE_FREE and not calibrated:
            fs.detector = ctx.build(name, None)
            return 0
        ert = ctx.budget_ert(key, EVENTS, name)
        ref = None if self.references is None else self.references(key, settings.features[j])
        if ref is not None:
            fs.detector = ctx.build(name, ref, ert)
            return 0
        used = min(settings.reference_size - len(fs.warmup), xs.shape[0])
        fs.warmup.extend(xs[:used].tolist())
        if len(fs.warmup) >= settings.reference_size:
            fs.detector = ctx.build(name, np.asarray(fs.warmup), ert)
            fs.warmup = NO_VALUES
        return used

    def recalibrate(self, key: str, state: KeyState) -> None:
        """Worker budget: recalibrate the key's streams whose ERT is far from their share now."""
        budget = self.ctx.budget
        assert budget is not None
        streams = [
            (EVENTS, name, fs) for name, fs in zip(self.detector_names, state.features, strict=True)
        ]
        if state.accuracy is not None:
            streams.append((LABELLED, ACCURACY_DETECTOR, state.accuracy))
        count = self.ctx.budget_streams
        for source, name, fs in streams:
            if budget.recalibrate(state.rates, source, count, name, fs.detector):
                fs.dirty = True
