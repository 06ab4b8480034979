"""A key's accuracy stream: its labelled events' errors against their first ``reference_size``.

Labelled events (both ``predicted_label`` and ``true_label``) feed a one-sided
:class:`~stream.monitoring.streams.FeatureStream` of 0/1 error indicators (1 = wrong) on an
exact incremental KS. On a two-point distribution the KS statistic is the difference of the
error rates; only a rise is reported, as a ``performance`` event with feature ``accuracy``,
carrying the rolling and reference accuracy and the window's macro precision, recall and F1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter, ne

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector
from detectors.classification import ClassificationScores, RollingClassification
from stream.monitoring.context import ACCURACY_DETECTOR, MonitorContext
from stream.monitoring.detection import feed, record_snapshot
from stream.monitoring.events import Performance, Span, StreamId
from stream.monitoring.keys import KeyState
from stream.monitoring.rates import LABELLED
from stream.monitoring.rings import first_offset, push_ring
from stream.monitoring.streams import NO_VALUES, FeatureStream, accuracy_stream
from stream.telemetry.records import ACCURACY_FEATURE, PERFORMANCE, DriftEvent, Telemetry

__all__ = ["AccuracyFeeder"]

_TRUE, _PREDICTED, _OFFSET = (
    attrgetter("true_label"),
    attrgetter("predicted_label"),
    attrgetter("offset"),
)


class _ClassFeed:
    """Feeds a batch's labelled events to the key's confusion counts up to each position.

    ``true`` and ``predicted`` are the events' labels, in order.
    """

    def __init__(self, acc: FeatureStream, true: list[object], predicted: list[object]) -> None:
        if acc.classes is None:
            assert acc.wrong is not None
            acc.classes = RollingClassification(acc.wrong.shape[0])
        self.classes = acc.classes
        self.true = list(map(str, true))
        self.predicted = list(map(str, predicted))
        self.done = 0

    def count_to(self, pos: int) -> None:
        """Count the events up to ``pos`` (inclusive) not counted yet."""
        if pos >= self.done:
            done, self.done = self.done, pos + 1
            self.classes.update_many(self.true[done : pos + 1], self.predicted[done : pos + 1])

    def scores_at(self, pos: int) -> ClassificationScores:
        """The scores once the events up to ``pos`` (inclusive) are counted."""
        self.count_to(pos)
        return self.classes.scores()


class AccuracyFeeder:
    """Feeds a key's labelled events to its accuracy stream (made at its first one)."""

    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx

    def detector(self, key: str, reference: npt.NDArray[np.float64]) -> DriftDetector:
        """A new accuracy detector of ``key`` on ``reference`` (0/1 errors)."""
        ert = self.ctx.budget_ert(key, LABELLED, ACCURACY_DETECTOR)
        return self.ctx.build(ACCURACY_DETECTOR, reference, ert, accuracy=True)

    def process(self, key: str, state: KeyState, evs: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed the labelled events of ``evs``; return the accuracy stream's events."""
        ctx = self.ctx
        # is_labelled, inlined (it runs on every event)
        labelled = [e for e in evs if e.predicted_label is not None and e.true_label is not None]
        if not labelled:
            return []
        acc = state.accuracy
        if acc is None:
            acc = state.accuracy = accuracy_stream(ctx.settings.window_size)
            ctx.store.accuracy_streams += 1
        assert acc.wrong is not None and acc.offsets is not None
        n = len(labelled)
        true, predicted = list(map(_TRUE, labelled)), list(map(_PREDICTED, labelled))
        wrong = np.fromiter(map(ne, predicted, true), dtype=np.bool_, count=n)
        errors = wrong.astype(np.float64)
        offsets = np.fromiter(map(_OFFSET, labelled), dtype=np.int64, count=n)
        acc.dirty = True
        acc.last_ts = labelled[-1].ts
        base = acc.seen
        out: list[DriftEvent] = []
        start = 0
        if acc.detector is None:
            start = min(ctx.settings.reference_size - len(acc.warmup), n)
            acc.warmup.extend(errors[:start].tolist())
            if len(acc.warmup) >= ctx.settings.reference_size:
                reference = np.asarray(acc.warmup)
                acc.detector = self.detector(key, reference)
                acc.reference_accuracy = 1.0 - float(reference.mean())
                acc.warmup = NO_VALUES
        classes = _ClassFeed(acc, true, predicted)
        stream = StreamId(key, ACCURACY_FEATURE, ACCURACY_DETECTOR, PERFORMANCE)
        if acc.detector is not None and start < n:
            for hit in feed(acc, errors[start:], None, False, finite=True):  # 0/1 errors
                pos = start + hit.pos
                t = hit.transition
                window = hit.window
                ev = labelled[pos]
                span = Span(
                    ev.ts,
                    ev.partition,
                    first_offset(acc.offsets, base, offsets, pos, t.n_window),
                    ev.offset,
                )
                performance = Performance(
                    math.nan if window is None else 1.0 - float(window.mean()),
                    acc.reference_accuracy,
                    classes.scores_at(pos),
                )
                event = ctx.events.transition(stream, t, span, acc.n_base + t.index, performance)
                out.append(event)
                if ctx.snapshot:
                    record_snapshot(ctx, event, acc.detector, window)
        classes.count_to(n - 1)
        push_ring(acc.wrong, base, wrong)
        push_ring(acc.offsets, base, offsets)
        acc.seen += n
        if ctx.metrics is not None:
            ctx.metrics.observations.labels(ACCURACY_FEATURE).inc(n)
        return out
