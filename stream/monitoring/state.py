"""A monitor's keys as plain data and back (what checkpoints hold), checked on the way in.

The layout (version :data:`SNAPSHOT_VERSION`) is ``{"version": 5, "keys": [[key, state], ...]}``;
a key's state holds its features' streams, its offset ring and counters, the ids of the commands
it applied, its categorical streams, its accuracy (``stream``, the ``wrong`` and ``offsets``
rings, ``labelled`` and the rest) and the worker budget's rate clocks (``rates``, version 4). It
holds numbers, strings, numpy arrays, lists and dicts only. Fields added after the first version
are optional when read.

Rings (the key's ``offsets``, a stream's own ``offsets``, the accuracy stream's ``wrong`` and
``offsets``, a categorical stream's ``offsets``) are written as their filled prefix while their
count (``seen``, ``labelled``) is below the window size, whole once full (version 5, see
:func:`~stream.monitoring.rings.ring_to_data`): a new key of a few events costs a few bytes per
ring, not a window's worth. Versions 3 (no ``rates``) and 4 (whole rings) are read too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from detectors import Transition
from detectors.classification import RollingClassification
from detectors.registry import StateError, detector_from_state, detector_state, from_data, to_data
from detectors.windows import check_array
from stream.monitoring.categorical import CategoricalStreams
from stream.monitoring.keys import NO_IDS, KeyState
from stream.monitoring.rates import rates_from_data, rates_to_data
from stream.monitoring.rings import NO_ERROR, NO_OFFSET, ring_from_data, ring_to_data
from stream.monitoring.streams import NO_VALUES, FeatureStream
from stream.settings import Settings

__all__ = [
    "APPLIED_REMEMBERED",
    "READABLE_SNAPSHOTS",
    "SNAPSHOT_VERSION",
    "KeyCodec",
    "key_to_data",
    "snapshot_data",
]

#: Format of a monitor's snapshot; bumped when the state's layout changes.
SNAPSHOT_VERSION = 5
#: Snapshot versions this one reads (3: without the rate clocks; 4: rings written whole).
READABLE_SNAPSHOTS = (3, 4, SNAPSHOT_VERSION)
#: Command ids remembered per key (a command read again after a restart is not re-applied).
APPLIED_REMEMBERED = 32

_KEY_FIELDS = ("features", "offsets", "seen", "partition", "last_offset", "last_ts", "accuracy")
_STREAM_FIELDS = ("detector", "warmup", "one_sided", "reported", "suppressed", "n_base")
_ACCURACY_FIELDS = ("stream", "wrong", "offsets", "labelled", "reference_accuracy", "last_ts")


def snapshot_data(keys: Iterable[tuple[str, KeyState]]) -> dict[str, Any]:
    """A snapshot of ``keys``."""
    return {"version": SNAPSHOT_VERSION, "keys": [[k, key_to_data(st)] for k, st in keys]}


def _stream_to_data(fs: FeatureStream, *, own_ring: bool = True) -> dict[str, Any]:
    # an accuracy stream's ring and count are stored beside it (``offsets``, ``labelled``)
    offsets = fs.offsets if own_ring else None
    return {
        "detector": None if fs.detector is None else detector_state(fs.detector),
        "warmup": np.asarray(fs.warmup, dtype=np.float64),
        "one_sided": fs.one_sided,
        "reported": fs.reported,
        "suppressed": to_data(fs.suppressed),
        "n_base": fs.n_base,
        "opened": to_data(fs.opened),
        "rebaselined": to_data(fs.rebaselined),
        "refreshed_at": fs.refreshed_at,
        "offsets": None if offsets is None else ring_to_data(offsets, fs.seen, NO_OFFSET),
        "seen": fs.seen if own_ring else 0,
    }


def _accuracy_to_data(acc: FeatureStream) -> dict[str, Any]:
    assert acc.wrong is not None and acc.offsets is not None
    return {
        "stream": _stream_to_data(acc, own_ring=False),
        "wrong": ring_to_data(acc.wrong, acc.seen, NO_ERROR),
        "offsets": ring_to_data(acc.offsets, acc.seen, NO_OFFSET),
        "labelled": acc.seen,
        "reference_accuracy": acc.reference_accuracy,
        "last_ts": acc.last_ts,
        "classes": None if acc.classes is None else acc.classes.state(),
    }


def key_to_data(state: KeyState) -> dict[str, Any]:
    """A key's state as plain data (what is needed to continue exactly; no caches)."""
    return {
        "features": [_stream_to_data(fs) for fs in state.features],
        "offsets": ring_to_data(state.offsets, state.seen, NO_OFFSET),
        "seen": state.seen,
        "partition": state.partition,
        "last_offset": state.last_offset,
        "last_ts": state.last_ts,
        "applied": list(state.applied),
        "categorical": CategoricalStreams.to_data(state.categorical),
        "accuracy": None if state.accuracy is None else _accuracy_to_data(state.accuracy),
        "rates": rates_to_data(state.rates),
    }


def _fields(data: Any, what: str, names: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(data, dict) or not all(n in data for n in names):
        raise StateError(f"{what} state must hold {', '.join(names)}")
    return data


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StateError(f"{name} must be an integer, got {type(value).__name__}")
    return value


def _count(value: Any, name: str) -> int:
    if _int(value, name) < 0:
        raise StateError(f"{name} must be >= 0, got {value}")
    return int(value)


def _float(value: Any, name: str, *, nan: bool = False) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        raise StateError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) or (nan and math.isnan(value))):
        raise StateError(f"{name} must be finite, got {value!r}")
    return float(value)


def _transition(data: Any, name: str) -> Transition | None:
    value = from_data(data)
    if value is not None and not isinstance(value, Transition):
        raise StateError(f"{name} must be a transition")
    return value


def _stream_from_data(data: Any, size: int) -> FeatureStream:
    doc = _fields(data, "stream", _STREAM_FIELDS)
    suppressed = _transition(doc["suppressed"], "suppressed")
    one_sided, reported = doc["one_sided"], doc["reported"]
    if not isinstance(one_sided, bool) or not isinstance(reported, bool):
        raise StateError("one_sided and reported must be booleans")
    warmup = check_array(doc["warmup"], np.float64, None, "warm-up")
    if not np.all(np.isfinite(warmup)):
        raise StateError("warm-up values must be finite")
    detector = doc["detector"]
    # fields added after the first version are optional
    refreshed_at = doc.get("refreshed_at")
    offsets = doc.get("offsets")
    seen = _count(doc.get("seen", 0), "seen")
    return FeatureStream(
        None if detector is None else detector_from_state(detector),
        NO_VALUES if detector is not None and warmup.size == 0 else warmup.tolist(),
        one_sided=one_sided,
        reported=reported,
        suppressed=suppressed,
        n_base=_count(doc["n_base"], "n_base"),
        opened=_transition(doc.get("opened"), "opened"),
        rebaselined=_transition(doc.get("rebaselined"), "rebaselined"),
        refreshed_at=None if refreshed_at is None else _count(refreshed_at, "refreshed_at"),
        offsets=(
            None
            if offsets is None
            else ring_from_data(offsets, np.int64, size, seen, NO_OFFSET, "a stream's offsets")
        ),
        seen=seen,
    )


def _classes_from_data(data: Any, window: int) -> RollingClassification:
    """The accuracy stream's confusion counts (empty from a checkpoint written before them)."""
    if data is None:
        return RollingClassification(window)
    try:
        classes = RollingClassification.from_state(data)
    except ValueError as exc:
        raise StateError(f"classification: {exc}") from None
    if classes.window != window:
        raise StateError(f"classification window must be {window}, got {classes.window}")
    return classes


def _accuracy_from_data(data: Any, size: int) -> FeatureStream:
    a = _fields(data, "accuracy", _ACCURACY_FIELDS)
    acc = _stream_from_data(a["stream"], size)
    acc.seen = labelled = _count(a["labelled"], "labelled")
    acc.wrong = ring_from_data(a["wrong"], np.bool_, size, labelled, NO_ERROR, "accuracy ring")
    acc.offsets = ring_from_data(
        a["offsets"], np.int64, size, labelled, NO_OFFSET, "accuracy offsets"
    )
    acc.reference_accuracy = _float(a["reference_accuracy"], "reference_accuracy", nan=True)
    acc.last_ts = _float(a["last_ts"], "last_ts")
    acc.classes = _classes_from_data(a.get("classes"), size)
    return acc


class KeyCodec:
    """Reads key states back, checked against a monitor's settings.

    Parameters
    ----------
    settings : Settings
        The features and window the states must match.
    categorical : CategoricalStreams
        Reads the categorical streams.
    """

    def __init__(self, settings: Settings, categorical: CategoricalStreams) -> None:
        self.settings = settings
        self.categorical = categorical

    def keys_from_snapshot(self, data: Any) -> list[tuple[str, KeyState]]:
        """The keys of a snapshot; raise :class:`StateError` (nothing read) if malformed."""
        if not isinstance(data, dict) or data.get("version") not in READABLE_SNAPSHOTS:
            versions = " or ".join(map(str, READABLE_SNAPSHOTS))
            raise StateError(f"not a driftwatch monitor snapshot of version {versions}")
        items = data.get("keys")
        if not isinstance(items, list):
            raise StateError("snapshot without keys")
        loaded: list[tuple[str, KeyState]] = []
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise StateError("snapshot key entries must be [key, state]")
            try:
                loaded.append((item[0], self.key_from_data(item[1])))
            except (TypeError, KeyError, IndexError, AttributeError) as exc:
                raise StateError(f"key {item[0][:100]!r}: malformed state: {exc!r}") from None
        return loaded

    def key_from_data(self, data: Any) -> KeyState:
        """A key's state from :func:`key_to_data`."""
        size = self.settings.window_size
        doc = _fields(data, "key", _KEY_FIELDS)
        features = doc["features"]
        if not isinstance(features, list) or len(features) != len(self.settings.features):
            raise StateError(f"key state must hold {len(self.settings.features)} features")
        seen = _count(doc["seen"], "seen")
        state = KeyState(
            [_stream_from_data(f, size) for f in features],
            ring_from_data(doc["offsets"], np.int64, size, seen, NO_OFFSET, "key offsets"),
            seen=seen,
            partition=_count(doc["partition"], "partition"),
            last_offset=_int(doc["last_offset"], "last_offset"),
            last_ts=_float(doc["last_ts"], "last_ts"),
        )
        applied = doc.get("applied", [])
        if not (
            isinstance(applied, list)
            and len(applied) <= APPLIED_REMEMBERED
            and all(isinstance(a, str) and len(a) <= 200 for a in applied)
        ):
            raise StateError(f"applied must be a list of at most {APPLIED_REMEMBERED} ids")
        state.applied = applied or NO_IDS
        state.categorical = self.categorical.from_data(doc.get("categorical"))
        if doc["accuracy"] is not None:
            state.accuracy = _accuracy_from_data(doc["accuracy"], size)
        state.rates = rates_from_data(doc.get("rates"), self.settings.reference_size)
        return state
