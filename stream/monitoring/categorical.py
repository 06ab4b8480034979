"""Categorical streams: per (key, categorical feature) a chi-square detector, like a numeric stream.

Each feature of ``categorical_features`` gets, per key, a
:class:`~detectors.categorical.CategoricalDetector`: its reference is the first
``reference_size`` values the key shows for the feature (warm-up; the reference file holds
numeric features only), its window the last ``window_size`` values, its alarm calibrated to the
same ERT as the numeric streams (the fleet budget counts these streams too). Events without the
feature do not feed it (sparse rule). ``drift_started`` and ``drift_resolved`` events carry
``detector = "chi2"`` and ``largest_change``: the category whose share moved most, with its
reference and window shares.

A re-baseline (control topic, source ``window``) makes the stream's window its reference: the
stream starts afresh on it (a new detector; it tests again once a new window has filled), and an
open episode ends with ``drift_resolved`` of reason ``rebaselined``.

State is data only: the detector's :meth:`~detectors.categorical.CategoricalDetector.state`,
the warm-up categories, the offset ring and counters (see :meth:`CategoricalStreams.to_data`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import DRIFT_STARTED, Transition
from detectors.base import EmptyList
from detectors.categorical import MAX_CATEGORY_CHARS, CategoricalDetector, category_of
from detectors.registry import CHI2, StateError, detector_from_state, detector_state, from_data
from detectors.registry import to_data as _to_data
from stream.metrics import Metrics
from stream.monitoring.events import EventFactory, Refresh, Span, StreamId
from stream.monitoring.rings import NO_OFFSET, first_offset, push_ring, ring_from_data, ring_to_data
from stream.settings import Settings
from stream.telemetry.records import DISTRIBUTION, DriftEvent, Telemetry

__all__ = ["CategoricalStreams", "CategoryStream"]


@dataclass(frozen=True, slots=True)
class _Context:
    """A stream being re-baselined: where its window is."""

    key: str
    name: str
    stream: CategoryStream
    first: int
    last: int
    observations: int
    command_id: str | None
    window: int


@dataclass(slots=True)
class CategoryStream:
    """One (key, categorical feature) stream."""

    offsets: npt.NDArray[np.int64]  # ring of the offsets of its latest observations
    detector: CategoricalDetector | None = None
    warmup: list[str] = field(default_factory=list)
    seen: int = 0  # observations of this stream so far (the index of the next one)
    n_base: int = 0  # observations fed to earlier detectors of this stream
    dirty: bool = True
    opened: Transition | None = None  # the alarm of the episode open now
    refreshed_at: int | None = None  # observations (n_base + n_seen) at the last refresh
    last_ts: float = 0.0
    partition: int = 0

    @property
    def active(self) -> bool:
        """Whether a drift episode is open."""
        return self.detector is not None and self.detector.in_drift

    def close(self) -> None:
        """Cancel the detector's queued calibration."""
        if self.detector is not None:
            self.detector.close()


#: The categorical streams of every key when no categorical feature is configured (shared).
NO_STREAMS: list[CategoryStream] = EmptyList()


class CategoricalStreams:
    """The categorical features' streams of a monitor (held in each key's state).

    Parameters
    ----------
    settings : Settings
        ``categorical_features``, window, reference size and alarm rule.
    events : EventFactory
        Builds (and counts) the drift events; its metrics also count the observations.
    reproducible : bool
        Whether the first test of a detector waits for its calibration.
    ert_for : callable, optional
        ``ert_for(key, feature)``: the ERT a new stream gets (the worker budget's share), or None
        for the settings' own alarm rule.
    """

    def __init__(
        self,
        settings: Settings,
        events: EventFactory,
        *,
        reproducible: bool = True,
        ert_for: Callable[[str, str], float | None] | None = None,
    ) -> None:
        self.settings = settings
        self.names: tuple[str, ...] = settings.categorical_features
        self.events = events
        self.metrics = events.metrics
        self.reproducible = reproducible
        self.ert_for = ert_for

    def new_streams(self) -> list[CategoryStream]:
        """Fresh streams for a new key (the shared :data:`NO_STREAMS` without categorical
        features)."""
        if not self.names:
            return NO_STREAMS
        size = self.settings.window_size
        return [CategoryStream(np.full(size, -1, dtype=np.int64)) for _ in self.names]

    def build(self, reference: Sequence[str], ert: float | None = None) -> CategoricalDetector:
        """A detector on ``reference`` with the monitor's window and alarm rule (``ert``, if
        given, in place of the settings' own)."""
        s = self.settings
        ert = s.effective_ert if ert is None else ert
        return CategoricalDetector(
            reference,
            s.window_size,
            alpha=s.alpha if ert is None else None,
            ert=ert,
            resolve_ratio=s.resolve_ratio,
            resolve_after=s.resolve_after,
            wait_for_calibration=self.reproducible,
        )

    # ------------------------------------------------------------------ processing
    def process(
        self, key: str, streams: list[CategoryStream], evs: Sequence[Telemetry]
    ) -> list[DriftEvent]:
        """Feed one key's events (in order) to its categorical streams; return the events."""
        out: list[DriftEvent] = []
        for j, name in enumerate(self.names):
            idx = [i for i, e in enumerate(evs) if e.categories[j] is not None]
            if idx:
                out.extend(self._feed(key, name, streams[j], [evs[i] for i in idx], j))
        return out

    def _feed(
        self, key: str, name: str, cs: CategoryStream, evs: list[Telemetry], j: int
    ) -> list[DriftEvent]:
        cats = [category_of(e.categories[j]) for e in evs]
        offsets = np.fromiter((e.offset for e in evs), dtype=np.int64, count=len(evs))
        out: list[DriftEvent] = []
        start = 0
        if cs.detector is None:
            start = min(self.settings.reference_size - len(cs.warmup), len(cats))
            cs.warmup.extend(cats[:start])
            if len(cs.warmup) >= self.settings.reference_size:
                ert = None if self.ert_for is None else self.ert_for(key, name)
                cs.detector = self.build(cs.warmup, ert)
                cs.warmup = []
        det = cs.detector
        if det is not None and start < len(cats):
            n_before = det.n_seen
            det.update_many(cats[start:])
            stream = StreamId(key, name, CHI2, DISTRIBUTION)
            for t in det.transitions:
                pos = start + t.index - n_before - 1
                ev = evs[pos]
                first = first_offset(cs.offsets, cs.seen, offsets, pos, t.n_window)
                span = Span(ev.ts, ev.partition, first, ev.offset)
                out.append(self.events.transition(stream, t, span, cs.n_base + t.index))
                cs.opened = t if t.kind == DRIFT_STARTED else None
        push_ring(cs.offsets, cs.seen, offsets)
        cs.seen += len(cats)
        cs.dirty = True
        cs.last_ts = evs[-1].ts
        cs.partition = evs[-1].partition
        if self.metrics is not None:
            self.metrics.observations.labels(name).inc(len(cats))
        return out

    # ------------------------------------------------------------------ re-baselining
    def rebaseline(
        self,
        key: str,
        streams: list[CategoryStream],
        feature: str | None,
        admits: Callable[[CategoryStream, CategoricalDetector], bool],
        *,
        command_id: str | None = None,
    ) -> list[DriftEvent]:
        """Make the window of each chosen stream its reference; return the events.

        ``feature`` None chooses every categorical stream; ``admits`` is the command's rate
        limit and fan-out bound. Streams still learning their reference, or with an empty
        window, are left alone.
        """
        out: list[DriftEvent] = []
        for name, cs in zip(self.names, streams, strict=True):
            det = cs.detector
            if feature not in (None, name) or det is None:
                continue
            window = det.window
            if not window or not admits(cs, det):
                continue
            last = int(cs.offsets[(cs.seen - 1) % cs.offsets.shape[0]])
            first = int(cs.offsets[(cs.seen - len(window)) % cs.offsets.shape[0]])
            n = cs.n_base + det.n_seen
            ctx = _Context(key, name, cs, first, last, n, command_id, len(window))
            if cs.active and cs.opened is not None:
                n_ref = int(det.reference_counts.sum())
                threshold = cs.opened.threshold
                out.append(
                    self._refresh_event(ctx, None, det.statistic, det.p_value, threshold, n_ref)
                )
            cs.n_base = ctx.observations
            cs.detector = self.build(window, det.ert)  # the stream keeps its ERT
            cs.opened = None
            cs.dirty = True
            det.close()
            out.append(
                self._refresh_event(ctx, "window", math.nan, math.nan, math.nan, len(window))
            )
        return out

    def _refresh_event(
        self,
        ctx: _Context,
        source: str | None,
        statistic: float,
        p_value: float,
        threshold: float,
        n_reference: int,
    ) -> DriftEvent:
        """A ``reference_refreshed`` event (``source`` None: the ``drift_resolved`` a refresh
        causes)."""
        cs = ctx.stream
        r = Refresh(
            source,
            ctx.command_id,
            statistic,
            p_value,
            math.nan,
            0,
            n_reference,
            ctx.window,
            threshold,
        )
        span = Span(cs.last_ts, cs.partition, ctx.first, ctx.last)
        return self.events.refresh(
            StreamId(ctx.key, ctx.name, CHI2, DISTRIBUTION), r, span, ctx.observations
        )

    # ------------------------------------------------------------------ metrics
    def publish(self, m: Metrics, key: str, streams: Sequence[CategoryStream]) -> None:
        """Publish the changed streams' statistic, p-value, state and window fill."""
        for name, cs in zip(self.names, streams, strict=True):
            if not cs.dirty:
                continue
            cs.dirty = False
            det = cs.detector
            if det is None:
                m.set_stream(key, name, math.nan, math.nan, False, 0.0, chi2=True)
                continue
            r = det.result()
            fill = r.n_window / det.window_size
            m.set_stream(key, name, r.statistic, r.pvalue, cs.active, fill, chi2=True)

    # ------------------------------------------------------------------ state
    @staticmethod
    def to_data(streams: Sequence[CategoryStream]) -> list[dict[str, Any]]:
        """The streams' state as plain data (what is needed to continue exactly)."""
        return [_stream_to_data(cs) for cs in streams]

    def from_data(self, data: Any) -> list[CategoryStream]:
        """Streams from :meth:`to_data` (None: fresh ones, e.g. a state written before
        categorical features were configured); raise :class:`StateError` if malformed."""
        if data is None:
            return self.new_streams()
        if not isinstance(data, list) or len(data) != len(self.names):
            raise StateError(f"key state must hold {len(self.names)} categorical streams")
        return [_stream_from_data(d, self.settings) for d in data] or NO_STREAMS


def _stream_to_data(cs: CategoryStream) -> dict[str, Any]:
    return {
        "detector": None if cs.detector is None else detector_state(cs.detector),
        "warmup": list(cs.warmup),
        "offsets": ring_to_data(cs.offsets, cs.seen, NO_OFFSET),
        "seen": cs.seen,
        "n_base": cs.n_base,
        "opened": _to_data(cs.opened),
        "refreshed_at": cs.refreshed_at,
        "last_ts": cs.last_ts,
        "partition": cs.partition,
    }


def _stream_from_data(doc: Any, settings: Settings) -> CategoryStream:
    names = ("detector", "warmup", "offsets", "seen", "n_base", "opened", "refreshed_at")
    if not isinstance(doc, dict) or not all(n in doc for n in names):
        raise StateError(f"categorical stream state must hold {', '.join(names)}")
    warmup = doc["warmup"]
    if not (
        isinstance(warmup, list)
        and len(warmup) <= settings.reference_size
        and all(isinstance(c, str) and len(c) <= MAX_CATEGORY_CHARS for c in warmup)
    ):
        raise StateError("warm-up must be a list of category strings")
    counts = [doc[n] for n in ("seen", "n_base")]
    refreshed = doc["refreshed_at"]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        raise StateError("seen and n_base must be integers >= 0")
    if refreshed is not None and not (isinstance(refreshed, int) and refreshed >= 0):
        raise StateError("refreshed_at must be an integer >= 0 or null")
    det: CategoricalDetector | None = None
    if doc["detector"] is not None:
        restored = detector_from_state(doc["detector"])
        if not isinstance(restored, CategoricalDetector):
            raise StateError(f"a categorical stream needs a {CHI2} detector")
        det = restored
        if det.window_size != settings.window_size:
            raise StateError(f"window_size {det.window_size} != {settings.window_size}")
    opened = from_data(doc["opened"])
    if opened is not None and not isinstance(opened, Transition):
        raise StateError("opened must be a transition")
    last_ts, partition = doc.get("last_ts", 0.0), doc.get("partition", 0)
    if not (isinstance(last_ts, float | int) and math.isfinite(last_ts)):
        raise StateError("last_ts must be a finite number")
    if not (isinstance(partition, int) and partition >= 0):
        raise StateError("partition must be an integer >= 0")
    offsets = ring_from_data(
        doc["offsets"], np.int64, settings.window_size, counts[0], NO_OFFSET, "categorical offsets"
    )
    return CategoryStream(
        offsets,
        det,
        warmup,
        seen=counts[0],
        n_base=counts[1],
        opened=opened,
        refreshed_at=refreshed,
        last_ts=float(last_ts),
        partition=partition,
    )
