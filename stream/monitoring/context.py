"""What the parts of a monitor share: settings, metrics, keys, budget, event factory, builder."""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector
from detectors.registry import KINDS
from stream.metrics import Metrics
from stream.monitoring.events import EventFactory
from stream.monitoring.keys import KeyStore
from stream.monitoring.rates import WorkerBudget, is_labelled
from stream.monitoring.streams import TransitionSnapshot
from stream.settings import DetectorName, Settings
from stream.telemetry.records import Telemetry

__all__ = ["ACCURACY_DETECTOR", "MonitorContext"]

#: The detector of the accuracy streams (always an exact incremental KS on a count window).
ACCURACY_DETECTOR: DetectorName = "incremental_ks"


@dataclass(slots=True)
class MonitorContext:
    """A monitor's shared parts.

    ``snapshots`` collects the :class:`TransitionSnapshot` of a batch when ``snapshot`` is set
    (a transition hook is installed); the monitor hands them over once the batch is done.

    ``budget_streams`` is the stream count the worker budget shares its false alarms among, as
    of the event being decided at (:meth:`streams_at`); the key processor sets it.
    """

    settings: Settings
    metrics: Metrics | None
    store: KeyStore
    events: EventFactory
    budget: WorkerBudget | None
    reproducible: bool
    snapshot: bool
    snapshots: list[TransitionSnapshot] = field(default_factory=list)
    budget_streams: int = 0
    # the batch's keys (and accuracy streams) not tracked at its start: their first event times
    _known: tuple[int, int] = (0, 0)
    _new_keys: list[float] = field(default_factory=list)
    _new_accuracy: list[float] = field(default_factory=list)

    @property
    def tracked_streams(self) -> int:
        """Streams tracked: every key's features, plus the accuracy streams."""
        return len(self.store.keys) * self._streams_per_key + self.store.accuracy_streams

    @property
    def _streams_per_key(self) -> int:
        """A key's streams that can alarm, its accuracy stream aside."""
        return len(self.settings.features) + len(self.settings.categorical_features)

    def begin_batch(self, by_key: Mapping[str, Sequence[Telemetry]], accuracy: bool) -> None:
        """Note the streams a batch makes (``accuracy``: labelled events make accuracy streams).

        A key of the batch not tracked yet counts, in :meth:`streams_at`, from its first
        event's time, and so does an accuracy stream from the key's first labelled event: the
        count at an event does not depend on which keys of its batch were processed before it.
        """
        keys = self.store.keys
        self._known = (len(keys), self.store.accuracy_streams)
        self._new_keys = sorted(evs[0].ts for k, evs in by_key.items() if k not in keys)
        self._new_accuracy = []
        if accuracy:
            for k, evs in by_key.items():
                state = keys.get(k)
                if state is None or state.accuracy is None:
                    first = next((e.ts for e in evs if is_labelled(e)), None)
                    if first is not None:
                        self._new_accuracy.append(first)
            self._new_accuracy.sort()

    def streams_at(self, ts: float) -> int:
        """Streams tracked as of event time ``ts`` of the batch begun (see :meth:`begin_batch`).

        The keys tracked at the batch's start, plus its new keys and accuracy streams whose
        first event is not later than ``ts`` (keys at most ``max_tracked_keys``).
        """
        keys, accuracy = self._known
        keys = min(keys + bisect_right(self._new_keys, ts), self.store.max_keys)
        return keys * self._streams_per_key + accuracy + bisect_right(self._new_accuracy, ts)

    def budget_ert(self, key: str, source: str, name: str) -> float | None:
        """The worker budget's ERT for a new stream of ``key`` (None without a budget)."""
        if self.budget is None:
            return None
        state = self.store.keys.get(key)
        rates = {} if state is None else state.rates
        return self.budget.ert(rates, source, self.budget_streams, name)

    def build(
        self,
        name: DetectorName,
        reference: npt.NDArray[np.float64] | None,
        ert: float | None = None,
        *,
        accuracy: bool = False,
    ) -> DriftDetector:
        """A detector of kind ``name``; an accuracy stream's window counts labelled events
        (whatever the features' window duration)."""
        options = self.settings.detector_options(wait_for_calibration=self.reproducible, ert=ert)
        if accuracy:
            options = dataclasses.replace(options, duration=None)
        return KINDS[name].build(reference, options)
