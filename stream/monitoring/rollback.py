"""A key's state set aside before a batch, and put back if processing the batch raises.

:func:`save_key` copies only what processing can change: each numeric stream's scalars, rings and
warm-up values, the accuracy stream's confusion counts, the key's rate clocks and, for an
:class:`~detectors.IncrementalKS`, its packed buffers (:func:`detectors.ks_bank.checkpoint`; the
detector object itself, its calibration and reference are shared, not re-read). Other detectors
and the categorical streams are saved as plain data, as checkpoints hold them. :func:`restore_key`
gives the key back exactly as saved: its :func:`~stream.monitoring.state.key_to_data` is the one
it had, and the saved copy stays usable for another restore.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from operator import attrgetter
from typing import Any

from detectors import DriftDetector, IncrementalKS
from detectors.ks_bank import KSCheckpoint, checkpoint, rewind
from detectors.registry import detector_from_state, detector_state
from stream.monitoring.categorical import NO_STREAMS, CategoricalStreams
from stream.monitoring.keys import NO_IDS, KeyState
from stream.monitoring.streams import NO_VALUES, FeatureStream

__all__ = ["SavedKey", "restore_key", "save_key"]

#: A detector saved: its packed buffers (an IncrementalKS), its plain-data state, or None.
_SavedDetector = KSCheckpoint | dict[str, Any] | None


#: Every field of a stream, of a key, in order (a copy passes them all to the constructor: much
#: cheaper than ``copy.copy`` of a slotted dataclass).
_stream_fields = attrgetter(*(f.name for f in fields(FeatureStream)))
_key_fields = attrgetter(*(f.name for f in fields(KeyState)))


@dataclass(frozen=True, slots=True, eq=False)
class SavedKey:
    """A key's state as :func:`save_key` found it."""

    state: KeyState  # a copy whose streams share their detectors with the key's
    detectors: tuple[_SavedDetector, ...]  # the numeric streams' (features, then accuracy)
    categorical: list[dict[str, Any]]


def _save_detector(det: DriftDetector | None) -> _SavedDetector:
    if det is None:
        return None
    if isinstance(det, IncrementalKS):
        return checkpoint(det)
    return detector_state(det)


def _copy_stream(fs: FeatureStream) -> FeatureStream:
    """A copy of a stream's own mutable parts; the detector is shared (saved on its own)."""
    out = FeatureStream(*_stream_fields(fs))
    out.warmup = fs.warmup if fs.warmup is NO_VALUES else list(fs.warmup)
    out.offsets = None if fs.offsets is None else fs.offsets.copy()
    out.wrong = None if fs.wrong is None else fs.wrong.copy()
    out.classes = None if fs.classes is None else fs.classes.copy()
    return out


def _copy_key(state: KeyState) -> KeyState:
    out = KeyState(*_key_fields(state))
    out.features = [_copy_stream(fs) for fs in state.features]
    out.offsets = state.offsets.copy()
    out.applied = state.applied if state.applied is NO_IDS else list(state.applied)
    out.rates = {source: replace(clock) for source, clock in state.rates.items()}
    out.accuracy = None if state.accuracy is None else _copy_stream(state.accuracy)
    out.categorical = NO_STREAMS
    return out


def save_key(state: KeyState) -> SavedKey:
    """What :func:`restore_key` needs to put the key back as it is now."""
    data = CategoricalStreams.to_data(state.categorical) if state.categorical else []
    return SavedKey(
        _copy_key(state), tuple(_save_detector(fs.detector) for fs in state.streams()), data
    )


def restore_key(
    saved: SavedKey, categorical: CategoricalStreams, current: KeyState | None
) -> KeyState:
    """The key as saved (a new state); ``current``'s detectors it does not hold are closed.

    IncrementalKS detectors are rewound in place (the saved state holds the same objects);
    other detectors and the categorical streams are rebuilt from their plain data.
    """
    state = _copy_key(saved.state)
    for fs, det in zip(state.streams(), saved.detectors, strict=True):
        if isinstance(det, KSCheckpoint):
            assert isinstance(fs.detector, IncrementalKS)
            rewind(fs.detector, det)
        elif det is not None:
            fs.detector = detector_from_state(det)
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
