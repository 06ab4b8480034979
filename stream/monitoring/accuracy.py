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

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector
from detectors.classification import ClassificationScores, RollingClassification
from stream.monitoring.context import ACCURACY_DETECTOR, MonitorContext
from stream.monitoring.detection import feed, record_snapshot
from stream.monitoring.events import Performance, Span, StreamId
from stream.monitoring.keys import KeyState
from stream.monitoring.rates import LABELLED, is_labelled
from stream.monitoring.rings import first_offset, push_ring
from stream.monitoring.streams import NO_VALUES, FeatureStream, accuracy_stream
from stream.telemetry.records import ACCURACY_FEATURE, PERFORMANCE, DriftEvent, Telemetry

__all__ = ["AccuracyFeeder"]


class _ClassFeed:
    """Feeds a batch's labelled events to the key's confusion counts up to each position."""

    def __init__(self, acc: FeatureStream, labelled: Sequence[Telemetry]) -> None:
        if acc.classes is None:
            assert acc.wrong is not None
            acc.classes = RollingClassification(acc.wrong.shape[0])
        self.classes = acc.classes
        self.labelled = labelled
        self.done = 0

    def count_to(self, pos: int) -> None:
        """Count the events up to ``pos`` (inclusive) not counted yet."""
        batch = self.labelled[self.done : pos + 1]
        if batch:
            self.classes.update_many(
                [str(e.true_label) for e in batch], [str(e.predicted_label) for e in batch]
            )
        self.done = max(self.done, pos + 1)

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
        labelled = [e for e in evs if is_labelled(e)]
        if not labelled:
            return []
        acc = state.accuracy
        if acc is None:
            acc = state.accuracy = accuracy_stream(ctx.settings.window_size)
            ctx.store.accuracy_streams += 1
        assert acc.wrong is not None and acc.offsets is not None
        n = len(labelled)
        wrong = np.fromiter(
            (e.predicted_label != e.true_label for e in labelled), dtype=np.bool_, count=n
        )
        errors = wrong.astype(np.float64)
        offsets = np.fromiter((e.offset for e in labelled), dtype=np.int64, count=n)
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
        classes = _ClassFeed(acc, labelled)
        stream = StreamId(key, ACCURACY_FEATURE, ACCURACY_DETECTOR, PERFORMANCE)
        if acc.detector is not None and start < n:
            for hit in feed(acc, errors[start:], None, False):
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
