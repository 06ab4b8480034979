"""One numeric stream of a key: a feature's, or the accuracy of its labelled events.

Both kinds are a :class:`FeatureStream`: a detector (or the warm-up values it will learn its
reference from), the state of the reported drift episode, and where its observations' offsets
are. The accuracy stream also keeps the ring of its labelled events' errors and their
classification counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector, IncrementalKS, Transition, WindowedKS
from detectors.base import EmptyList
from detectors.classification import RollingClassification
from stream.telemetry.records import DriftEvent

__all__ = [
    "NO_VALUES",
    "FeatureStream",
    "KSDetector",
    "ReferenceSource",
    "TransitionHook",
    "TransitionSnapshot",
    "accuracy_stream",
    "ks_view",
]

#: ``(key, feature) -> reference values or None``; None means "learn it from warm-up".
ReferenceSource = Callable[[str, str], npt.NDArray[np.float64] | None]

#: The warm-up values of a stream that has its detector (shared by all of them).
NO_VALUES: list[float] = EmptyList()

#: The detectors that have a reference and a window (the others are reference-free).
KSDetector = IncrementalKS | WindowedKS


def ks_view(det: DriftDetector | None) -> KSDetector | None:
    """``det`` if it has a reference and a window (a KS detector), else None."""
    return det if isinstance(det, IncrementalKS | WindowedKS) else None


@dataclass(frozen=True, slots=True, eq=False)
class TransitionSnapshot:
    """A drift event with the reference and window its statistic was computed on.

    ``window`` is the detector's window at the moment of the transition (not at the end of the
    batch); for the accuracy stream both samples are 0/1 error indicators.
    """

    event: DriftEvent
    reference: npt.NDArray[np.float64]
    window: npt.NDArray[np.float64]


#: Called with every transition of a detector that has a reference and a window, once the batch
#: that caused it has been processed. It must not raise.
TransitionHook = Callable[[TransitionSnapshot], None]


@dataclass(slots=True)
class FeatureStream:
    """One (key, feature) stream, or a key's accuracy stream.

    A *one-sided* stream (the accuracy stream) reports only episodes whose alarm found the
    window above the reference (``statistic_sign == +1``). The detector's own episodes stay
    two-sided; the state below tracks which of them were reported.

    ``offsets`` and ``seen`` are the stream's own offset ring and observation count. A feature's
    stream has none (None) while it has seen every event of its key and uses the key's ring; a
    sparse feature, and the accuracy stream (its events are the labelled ones), have their own.
    Once the detector is built, ``warmup`` is the shared, empty :data:`NO_VALUES`.
    """

    detector: DriftDetector | None = None
    warmup: list[float] = field(default_factory=list)
    dirty: bool = True
    one_sided: bool = False
    reported: bool = False  # one-sided: the open episode has been reported
    suppressed: Transition | None = None  # one-sided: the unreported alarm of the open episode
    n_base: int = 0  # observations fed to earlier detectors of this stream
    opened: Transition | None = None  # the alarm of the reported episode open now
    rebaselined: Transition | None = None  # the alarm of an episode a re-baseline closed
    refreshed_at: int | None = None  # observations (n_base + n_seen) at the last refresh
    offsets: npt.NDArray[np.int64] | None = None
    seen: int = 0
    # accuracy streams: errors (True = wrong) of the last window_size labelled events, at the
    # ring positions of ``offsets``; the reference's accuracy; macro P/R/F1 over the window
    wrong: npt.NDArray[np.bool_] | None = None
    reference_accuracy: float = math.nan
    last_ts: float = 0.0
    classes: RollingClassification | None = None

    @property
    def active(self) -> bool:
        """Whether a reported drift episode is open."""
        det = self.detector
        if det is None:
            return False
        if self.one_sided:
            return self.reported
        return det.in_drift and self.rebaselined is None

    @property
    def rolling_accuracy(self) -> float:
        """Accuracy over the last ``window_size`` labelled events (nan before any)."""
        if self.wrong is None:
            return math.nan
        filled = min(self.seen, self.wrong.shape[0])
        if filled == 0:
            return math.nan
        return 1.0 - int(np.count_nonzero(self.wrong[:filled])) / filled

    def close(self) -> None:
        """Cancel the detector's background work (a queued calibration)."""
        if self.detector is not None:
            self.detector.close()


def accuracy_stream(window_size: int) -> FeatureStream:
    """A new key's accuracy stream (one-sided, with its own rings)."""
    return FeatureStream(
        one_sided=True,
        offsets=np.full(window_size, -1, dtype=np.int64),
        wrong=np.zeros(window_size, dtype=np.bool_),
        classes=RollingClassification(window_size),
    )
