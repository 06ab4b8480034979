"""A key's state set aside before a batch, and put back if processing the batch raises.

:func:`save_key` records only what processing can change, and builds nothing: each numeric
stream's fields as they are (one tuple a stream, read in one call; the scalars and episode
alarms are immutable values), copies of its rings, warm-up values and confusion counts, the
key's fields, offset ring and rate clocks and, for an :class:`~detectors.IncrementalKS`, its
packed buffers (:func:`detectors.ks_bank.checkpoint`; the detector object itself, its
calibration, reference and thresholds table are shared, not re-read). Other detectors and the
categorical streams are saved as plain data, as checkpoints hold them. :func:`restore_key`, run
only when a batch raised, builds the key back exactly as saved: its
:func:`~stream.monitoring.state.key_to_data` is the one it had, and the saved copy stays usable
for another restore.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import DriftDetector, IncrementalKS
from detectors.classification import RollingClassification
from detectors.ks_bank import KSCheckpoint, checkpoint, rewind
from detectors.registry import detector_from_state, detector_state
from stream.monitoring.categorical import NO_STREAMS, CategoricalStreams
from stream.monitoring.keys import NO_IDS, KeyState
from stream.monitoring.rates import RateClock
from stream.monitoring.streams import NO_VALUES, FeatureStream

__all__ = ["SavedKey", "SavedStream", "restore_key", "save_key"]

#: A detector saved: its packed buffers (an IncrementalKS), its plain-data state, or None.
_SavedDetector = KSCheckpoint | dict[str, Any] | None


#: Every field of a stream, of a key, in order, read in one call (the saved tuple is what the
#: constructor takes back: much cheaper than ``copy.copy`` of a slotted dataclass).
_stream_fields = attrgetter(*(f.name for f in fields(FeatureStream)))
_key_fields = attrgetter(*(f.name for f in fields(KeyState)))


@dataclass(slots=True, eq=False)  # never changed once made (not frozen: 3x cheaper to make)
class SavedStream:
    """A numeric stream as :func:`save_key` found it.

    ``fields`` holds every field, in order, as found: the immutable ones are the values
    saved; the mutable ones (the lists, rings and confusion counts, the detector) are put back
    from the copies and the detector's record beside it.
    """

    fields: tuple[Any, ...]
    warmup: list[float]
    offsets: npt.NDArray[np.int64] | None
    wrong: npt.NDArray[np.bool_] | None
    classes: RollingClassification | None
    detector: _SavedDetector

    @classmethod
    def of(cls, fs: FeatureStream) -> SavedStream:
        """What :meth:`build` needs to give ``fs`` back as it is now."""
        det, warmup, offsets, wrong, classes = (
            fs.detector,
            fs.warmup,
            fs.offsets,
            fs.wrong,
            fs.classes,
        )
        return cls(
            _stream_fields(fs),
            warmup if warmup is NO_VALUES else list(warmup),
            None if offsets is None else offsets.copy(),
            None if wrong is None else wrong.copy(),
            None if classes is None else classes.copy(),
            _save_detector(det),
        )

    def build(self) -> FeatureStream:
        """The stream as saved (a new one; an IncrementalKS detector rewound in place)."""
        out = FeatureStream(*self.fields)
        warmup, offsets, wrong, classes = self.warmup, self.offsets, self.wrong, self.classes
        out.warmup = warmup if warmup is NO_VALUES else list(warmup)
        out.offsets = None if offsets is None else offsets.copy()
        out.wrong = None if wrong is None else wrong.copy()
        out.classes = None if classes is None else classes.copy()
        det = self.detector
        if isinstance(det, KSCheckpoint):
            assert isinstance(out.detector, IncrementalKS)
            rewind(out.detector, det)
        elif det is not None:
            out.detector = detector_from_state(det)
        return out


@dataclass(slots=True, eq=False)  # never changed once made (not frozen: 3x cheaper to make)
class SavedKey:
    """A key's state as :func:`save_key` found it (see :class:`SavedStream` for ``fields``)."""

    fields: tuple[Any, ...]
    offsets: npt.NDArray[np.int64]
    applied: list[str]
    rates: dict[str, RateClock]
    features: tuple[SavedStream, ...]
    accuracy: SavedStream | None
    categorical: list[dict[str, Any]]


def _save_detector(det: DriftDetector | None) -> _SavedDetector:
    if det is None:
        return None
    if isinstance(det, IncrementalKS):
        return checkpoint(det)
    return detector_state(det)


def save_key(state: KeyState) -> SavedKey:
    """What :func:`restore_key` needs to put the key back as it is now."""
    applied, rates, acc = state.applied, state.rates, state.accuracy
    return SavedKey(
        _key_fields(state),
        state.offsets.copy(),
        applied if applied is NO_IDS else list(applied),
        {source: replace(clock) for source, clock in rates.items()} if rates else {},
        tuple(map(SavedStream.of, state.features)),
        None if acc is None else SavedStream.of(acc),
        CategoricalStreams.to_data(state.categorical) if state.categorical else [],
    )


def restore_key(
    saved: SavedKey, categorical: CategoricalStreams, current: KeyState | None
) -> KeyState:
    """The key as saved (a new state); ``current``'s detectors it does not hold are closed.

    IncrementalKS detectors are rewound in place (the saved state holds the same objects);
    other detectors and the categorical streams are rebuilt from their plain data.
    """
    state = KeyState(*saved.fields)
    state.features = [s.build() for s in saved.features]
    state.accuracy = None if saved.accuracy is None else saved.accuracy.build()
    state.offsets = saved.offsets.copy()
    state.applied = saved.applied if saved.applied is NO_IDS else list(saved.applied)
    state.rates = {source: replace(clock) for source, clock in saved.rates.items()}
    state.categorical = NO_STREAMS
    if saved.categorical:
        state.categorical = categorical.from_data(saved.categorical)
    if current is not None:
        kept = {id(fs.detector) for fs in state.streams()}
        for fs in current.streams():
            if fs.detector is not None and id(fs.detector) not in kept:
                fs.detector.close()
        for cs in current.categorical:
            cs.close()
    return state
