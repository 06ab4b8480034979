"""What the parts of a monitor share: settings, metrics, keys, budget, event factory, builder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector
from detectors.registry import KINDS
from stream.metrics import Metrics
from stream.monitoring.events import EventFactory
from stream.monitoring.keys import KeyStore
from stream.monitoring.rates import WorkerBudget
from stream.monitoring.streams import TransitionSnapshot
from stream.settings import DetectorName, Settings

__all__ = ["ACCURACY_DETECTOR", "MonitorContext"]

#: The detector of the accuracy streams (always an exact incremental KS on a count window).
ACCURACY_DETECTOR: DetectorName = "incremental_ks"


@dataclass(slots=True)
class MonitorContext:
    """A monitor's shared parts.

    ``snapshots`` collects the :class:`TransitionSnapshot` of a batch when ``snapshot`` is set
    (a transition hook is installed); the monitor hands them over once the batch is done.
    """

    settings: Settings
    metrics: Metrics | None
    store: KeyStore
    events: EventFactory
    budget: WorkerBudget | None
    reproducible: bool
    snapshot: bool
    snapshots: list[TransitionSnapshot] = field(default_factory=list)

    @property
    def tracked_streams(self) -> int:
        """Streams tracked: every key's features, plus the accuracy streams."""
        s = self.settings
        per_key = len(s.features) + len(s.categorical_features)
        return len(self.store.keys) * per_key + self.store.accuracy_streams

    def budget_ert(self, key: str, source: str, name: str) -> float | None:
        """The worker budget's ERT for a new stream of ``key`` (None without a budget)."""
        if self.budget is None:
            return None
        return self.budget.ert(key, source, self.tracked_streams, name)

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
