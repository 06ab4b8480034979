"""Drift events: one factory for every stream's transitions and reference refreshes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from detectors import DRIFT_RESOLVED, Transition
from detectors.classification import ClassificationScores
from stream.metrics import Metrics
from stream.settings import Settings
from stream.telemetry.records import DISTRIBUTION, REBASELINED, REFERENCE_REFRESHED, DriftEvent

__all__ = ["EventFactory", "Performance", "Refresh", "Span", "StreamId"]


@dataclass(frozen=True, slots=True)
class StreamId:
    """A stream as its events name it."""

    key: str
    feature: str
    detector: str
    kind: str = DISTRIBUTION


@dataclass(frozen=True, slots=True)
class Span:
    """Where an event's window is: its partition, first and last offsets, and latest time."""

    event_time: float
    partition: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class Performance:
    """A performance event's figures: window and reference accuracy, macro P/R/F1."""

    rolling_accuracy: float | None = None
    reference_accuracy: float | None = None
    classification: ClassificationScores | None = None


@dataclass(frozen=True, slots=True)
class Refresh:
    """A re-baseline's event: ``reference_refreshed``, or the ``drift_resolved`` it causes.

    ``source`` is the new reference's source (``window`` or ``file``) of a refresh; None for
    the resolution, whose ``threshold`` is that of the alarm it closes.
    """

    source: str | None
    command_id: str | None
    statistic: float
    p_value: float
    statistic_location: float
    statistic_sign: int
    n_reference: int
    n_window: int
    threshold: float = math.nan


class EventFactory:
    """Builds a monitor's drift events (and counts them in ``metrics``).

    Parameters
    ----------
    settings : Settings
        The telemetry topic and the deployment's ``app_id``.
    metrics : Metrics, optional
        Where drift events are counted.
    input_id : str, optional
        The input's identity (see :class:`~stream.telemetry.records.DriftEvent`).
    """

    def __init__(
        self, settings: Settings, metrics: Metrics | None, input_id: str | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.input_id = input_id

    def transition(
        self,
        stream: StreamId,
        t: Transition,
        span: Span,
        observations: int,
        performance: Performance | None = None,
    ) -> DriftEvent:
        """The event of transition ``t`` (a categorical one carries its largest change)."""
        change = getattr(t, "largest_change", None)
        p = Performance() if performance is None else performance
        scores = p.classification
        return self._event(
            t.kind,
            stream,
            t,
            span,
            observations,
            p,
            macro_precision=None if scores is None else scores.precision,
            macro_recall=None if scores is None else scores.recall,
            macro_f1=None if scores is None else scores.f1,
            largest_change=None if change is None else tuple(change),
        )

    def refresh(
        self,
        stream: StreamId,
        r: Refresh,
        span: Span,
        observations: int,
        performance: Performance | None = None,
    ) -> DriftEvent:
        """The event of a re-baseline (see :class:`Refresh`)."""
        refreshed = r.source is not None
        return self._event(
            REFERENCE_REFRESHED if refreshed else DRIFT_RESOLVED,
            stream,
            r,
            span,
            observations,
            Performance() if performance is None else performance,
            reference_source=r.source,
            reason=None if refreshed else REBASELINED,
            command_id=r.command_id,
        )

    def _event(
        self,
        event_type: str,
        stream: StreamId,
        figures: Transition | Refresh,
        span: Span,
        observations: int,
        p: Performance,
        **specific: Any,
    ) -> DriftEvent:
        """The fields every event has (counted in ``metrics``), and ``specific`` ones."""
        if self.metrics is not None:
            self.metrics.drift_events.labels(event_type, stream.feature).inc()
        return DriftEvent(
            type=event_type,
            key=stream.key,
            feature=stream.feature,
            detector=stream.detector,
            event_time=span.event_time,
            statistic=figures.statistic,
            p_value=figures.p_value,
            threshold=figures.threshold,
            reference_size=figures.n_reference,
            window_size=figures.n_window,
            statistic_location=figures.statistic_location,
            statistic_sign=figures.statistic_sign,
            topic=self.settings.telemetry_topic,
            app_id=self.settings.app_id,
            input_id=self.input_id,
            partition=span.partition,
            window_first_offset=span.first_offset,
            window_last_offset=span.last_offset,
            observations=observations,
            kind=stream.kind,
            rolling_accuracy=p.rolling_accuracy,
            reference_accuracy=p.reference_accuracy,
            **specific,
        )
