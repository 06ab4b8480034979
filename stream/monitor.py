"""The drift monitor: telemetry batches in, drift events out, with no Kafka in sight.

The Faust agent and ``driftwatch replay`` both drive a :class:`DriftMonitor`. It keeps, per key,
the offsets of the recent events, and per (key, feature) one detector from :mod:`detectors`.
A batch is split by key and each feature's values go to their detector in one
``update_many`` call, so the per-event cost stays near the detector's own.

Per key it also follows the accuracy of labelled events (those with both ``predicted_label``
and ``true_label``): the rolling accuracy over the last ``window_size`` of them, and an
:class:`~detectors.IncrementalKS` on the 0/1 error indicator (1 = wrong) against the first
``reference_size`` labelled events of the key. On a two-point distribution the KS statistic is
exactly the difference of the error rates, so the alarm rule is the one of every other stream.
That stream is *one-sided*: only a rise of the error rate (``statistic_sign == +1``) is reported,
as a ``performance`` event with feature ``accuracy``; an improvement is not an incident.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import (
    DRIFT_RESOLVED,
    DRIFT_STARTED,
    ADWINDetector,
    DriftDetector,
    IncrementalKS,
    KSWINDetector,
    PageHinkleyDetector,
    Transition,
    WindowedKS,
)
from detectors.classification import ClassificationScores, RollingClassification
from detectors.registry import (
    CHI2,
    KINDS,
    StateError,
    detector_from_state,
    detector_state,
    from_data,
    to_data,
)
from detectors.windows import check_array
from stream.exceptions import UnknownKeyError
from stream.metrics import Metrics
from stream.monitoring.categorical import CategoricalStreams, CategoryStream
from stream.monitoring.rates import EVENTS, LABELLED, WorkerBudget
from stream.monitoring.rings import first_offset as _first_offset
from stream.monitoring.rings import push_ring as _push_ring
from stream.settings import DetectorName, Settings
from stream.telemetry.records import (
    ACCURACY_FEATURE,
    DISTRIBUTION,
    PERFORMANCE,
    REBASELINE_SOURCES,
    REBASELINED,
    REFERENCE_REFRESHED,
    DriftEvent,
    Telemetry,
)

__all__ = [
    "DriftMonitor",
    "ReferenceSource",
    "TransitionHook",
    "TransitionSnapshot",
    "build_detector",
]

log = logging.getLogger(__name__)

#: ``(key, feature) -> reference values or None``; None means "learn it from warm-up".
ReferenceSource = Callable[[str, str], npt.NDArray[np.float64] | None]

#: The detector of the accuracy streams (always an exact incremental KS on a count window).
ACCURACY_DETECTOR: DetectorName = "incremental_ks"
#: Detectors that have a reference and a window (the others are reference-free).
KS_DETECTORS = (IncrementalKS, WindowedKS)
# Distinct KS statistics differ by at least 1 / (n m); this only absorbs float rounding.
_TIE = 1e-12


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

#: Per-evaluation level of ``windowed_ks`` on time windows when no ``alpha`` is set.
WINDOWED_ALPHA = 0.001

#: Format of :meth:`DriftMonitor.snapshot`; bumped when the state's layout changes.
SNAPSHOT_VERSION = 3

REFERENCE_FREE: frozenset[str] = frozenset(k.name for k in KINDS.values() if not k.needs_reference)


def build_detector(
    name: DetectorName,
    settings: Settings,
    reference: npt.NDArray[np.float64] | None,
    *,
    wait_for_calibration: bool = True,
    ert: float | None = None,
) -> DriftDetector:
    """A detector of the configured kind (KS detectors need ``reference``).

    ``wait_for_calibration=False`` lets an ``incremental_ks`` stream start testing only once its
    background calibration is ready, instead of waiting for it at its first test. ``ert``
    overrides ``settings.effective_ert`` (the worker budget's per-stream ERT).
    """
    resolve_after = settings.resolve_after
    ert = settings.effective_ert if ert is None else ert
    if name == "incremental_ks":
        return IncrementalKS(
            reference,  # type: ignore[arg-type]
            settings.window_size,
            duration=settings.window_duration,
            alpha=settings.alpha if ert is None else None,
            ert=ert,
            resolve_ratio=settings.resolve_ratio,
            resolve_after=resolve_after,
            wait_for_calibration=wait_for_calibration,
        )
    if name == "windowed_ks":
        return WindowedKS(
            reference,  # type: ignore[arg-type]
            settings.window_size,
            duration=settings.window_duration,
            stride=max(1, settings.window_size // 10),
            alpha=None if ert is not None else settings.alpha or WINDOWED_ALPHA,
            ert=ert,
            resolve_ratio=settings.resolve_ratio,
            resolve_after=resolve_after or 1,
        )
    river_resolve = resolve_after or settings.window_size
    # with an ert the river detectors calibrate on the stream's reference like the KS ones;
    # with alpha they run at river's defaults (and need no reference)
    calibrated: dict[str, Any] = (
        {}
        if ert is None
        else {"ert": ert, "reference": reference, "wait_for_calibration": wait_for_calibration}
    )
    if name == "adwin":
        return ADWINDetector(resolve_after=river_resolve, **calibrated)
    if name == "kswin":
        return KSWINDetector(seed=0, resolve_after=river_resolve, **calibrated)
    if name == "page_hinkley":
        return PageHinkleyDetector(resolve_after=river_resolve, **calibrated)
    raise ValueError(f"detector must be one of the known names, got {name!r}")


@dataclass(slots=True)
class FeatureState:
    """One (key, feature) stream.

    A *one-sided* stream reports only episodes whose alarm found the window above the reference
    (``statistic_sign == +1``). The detector's own episodes stay two-sided; the state below
    tracks which of them were reported.
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
    # a sparse stream (some of its key's events lack the feature) has its own offset ring and
    # count; None: the stream has seen every event of its key and uses the key's ring
    offsets: npt.NDArray[np.int64] | None = None
    seen: int = 0

    @property
    def active(self) -> bool:
        """Whether a reported drift episode is open."""
        det = self.detector
        if det is None:
            return False
        if self.one_sided:
            return self.reported
        return det.in_drift and self.rebaselined is None


@dataclass(slots=True)
class AccuracyState:
    """One key's labelled events: rolling correctness, their offsets, the accuracy stream."""

    stream: FeatureState
    wrong: npt.NDArray[np.bool_]  # ring of the last window_size labelled events
    offsets: npt.NDArray[np.int64]  # their offsets, same ring positions
    labelled: int = 0  # labelled events seen (the global index of the next one)
    reference_accuracy: float = math.nan
    last_ts: float = 0.0
    classes: RollingClassification | None = None  # macro P/R/F1 over the same window

    @property
    def rolling_accuracy(self) -> float:
        """Accuracy over the last ``window_size`` labelled events (nan before any)."""
        filled = min(self.labelled, self.wrong.shape[0])
        if filled == 0:
            return math.nan
        return 1.0 - int(np.count_nonzero(self.wrong[:filled])) / filled


class _ClassFeed:
    """Feeds a batch's labelled events to the key's confusion counts up to each position."""

    def __init__(self, acc: AccuracyState, labelled: Sequence[Telemetry]) -> None:
        if acc.classes is None:  # restored from a checkpoint written before the counts
            acc.classes = RollingClassification(acc.wrong.shape[0])
        self.classes = acc.classes
        self.labelled = labelled
        self.done = 0

    def scores_at(self, pos: int) -> ClassificationScores:
        """The scores once the events up to ``pos`` (inclusive) are counted."""
        batch = self.labelled[self.done : pos + 1]
        self.classes.update_many(
            [str(e.true_label) for e in batch], [str(e.predicted_label) for e in batch]
        )
        self.done = max(self.done, pos + 1)
        return self.classes.scores()


@dataclass(slots=True)
class KeyState:
    """One key: its features' streams and the offsets of its latest events."""

    features: list[FeatureState]
    offsets: npt.NDArray[np.int64]
    seen: int = 0  # events of this key fed so far (the global index of the next one)
    partition: int = 0
    last_offset: int = -1  # offset of the latest event applied (in ``partition``)
    replay_until: int = -1  # restored from a snapshot: events up to here are already held
    changed: bool = True  # changed since the last checkpoint of the key
    last_ts: float = 0.0
    accuracy: AccuracyState | None = None
    applied: list[str] = field(default_factory=list)  # ids of the latest commands applied
    categorical: list[CategoryStream] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Hit:
    """A transition to report: the position (in the values fed) of the value that caused it."""

    pos: int
    transition: Transition
    window: npt.NDArray[np.float64] | None


def _reopened(det: IncrementalKS | WindowedKS, alarm: Transition) -> Transition:
    """A ``drift_started`` at ``det``'s current statistic, under an earlier alarm's threshold."""
    return Transition(
        DRIFT_STARTED,
        det.n_seen,
        det.statistic,
        det.p_value,
        det.statistic_location,
        det.statistic_sign,
        alarm.threshold,
        alarm.n_reference,
        alarm.n_window,
    )


def _close(state: KeyState) -> None:
    """Cancel the background work (queued calibrations) of a key's detectors."""
    streams = [*state.features, *(() if state.accuracy is None else (state.accuracy.stream,))]
    for fs in streams:
        if fs.detector is not None:
            fs.detector.close()
    for cs in state.categorical:
        if cs.detector is not None:
            cs.detector.close()


_KEY_FIELDS = ("features", "offsets", "seen", "partition", "last_offset", "last_ts", "accuracy")
_STREAM_FIELDS = ("detector", "warmup", "one_sided", "reported", "suppressed", "n_base")
_ACCURACY_FIELDS = ("stream", "wrong", "offsets", "labelled", "reference_accuracy", "last_ts")


def _stream_to_data(fs: FeatureState) -> dict[str, Any]:
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
        "offsets": None if fs.offsets is None else fs.offsets.copy(),
        "seen": fs.seen,
    }


def _key_to_data(state: KeyState) -> dict[str, Any]:
    """A key's state as plain data (what is needed to continue exactly; no caches)."""
    acc = state.accuracy
    return {
        "features": [_stream_to_data(fs) for fs in state.features],
        "offsets": state.offsets.copy(),
        "seen": state.seen,
        "partition": state.partition,
        "last_offset": state.last_offset,
        "last_ts": state.last_ts,
        "applied": list(state.applied),
        "categorical": CategoricalStreams.to_data(state.categorical),
        "accuracy": None
        if acc is None
        else {
            "stream": _stream_to_data(acc.stream),
            "wrong": acc.wrong.copy(),
            "offsets": acc.offsets.copy(),
            "labelled": acc.labelled,
            "reference_accuracy": acc.reference_accuracy,
            "last_ts": acc.last_ts,
            "classes": None if acc.classes is None else acc.classes.state(),
        },
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


def _stream_from_data(data: Any) -> FeatureState:
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
    return FeatureState(
        None if detector is None else detector_from_state(detector),
        warmup.tolist(),
        one_sided=one_sided,
        reported=reported,
        suppressed=suppressed,
        n_base=_count(doc["n_base"], "n_base"),
        opened=_transition(doc.get("opened"), "opened"),
        rebaselined=_transition(doc.get("rebaselined"), "rebaselined"),
        refreshed_at=None if refreshed_at is None else _count(refreshed_at, "refreshed_at"),
        offsets=None if offsets is None else check_array(offsets, np.int64, None, "offsets").copy(),
        seen=_count(doc.get("seen", 0), "seen"),
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


def _transition(data: Any, name: str) -> Transition | None:
    value = from_data(data)
    if value is not None and not isinstance(value, Transition):
        raise StateError(f"{name} must be a transition")
    return value


#: Command ids remembered per key (a command read again after a restart is not re-applied).
APPLIED_REMEMBERED = 32


@dataclass(frozen=True, slots=True)
class _StreamContext:
    """Where a stream's events are: its key, names, offset ring and latest event."""

    key: str
    feature: str
    detector: str
    ring: npt.NDArray[np.int64]
    seen: int
    last_ts: float


class _Refresh:
    """One re-baseline command being applied: its events, rate limit and fan-out bound."""

    def __init__(
        self, monitor: DriftMonitor, source: str, command_id: str | None, max_streams: int | None
    ) -> None:
        self.monitor = monitor
        self.source = source
        self.command_id = command_id
        self.max_streams = max_streams
        self.refreshed = 0
        self.events: list[DriftEvent] = []

    def skip(self, reason: str) -> None:
        m = self.monitor.metrics
        if m is not None:
            m.rebaseline_skipped.labels(reason).inc()

    def admits(self, fs: FeatureState | CategoryStream, det: DriftDetector) -> bool:
        """Whether ``fs`` may be refreshed now (and count it if so)."""
        seen = fs.n_base + det.n_seen
        if (
            fs.refreshed_at is not None
            and seen - fs.refreshed_at < self.monitor.settings.window_size
        ):
            self.skip("rate_limited")
            return False
        if self.max_streams is not None and self.refreshed >= self.max_streams:
            self.skip("fan_out")
            return False
        self.refreshed += 1
        fs.refreshed_at = seen
        return True

    def close_episode(
        self,
        fs: FeatureState,
        det: DriftDetector,
        window: npt.NDArray[np.float64],
        context: _StreamContext,
        partition: int,
        *,
        rolling_accuracy: float | None = None,
    ) -> None:
        """End a reported episode of ``fs`` with ``drift_resolved`` (reason ``rebaselined``)."""
        if not fs.active or fs.opened is None:
            return
        assert isinstance(det, KS_DETECTORS)
        self.events.append(
            self.monitor._refresh_event(
                context,
                fs,
                det.reference,
                window,
                None,
                partition,
                kind=PERFORMANCE if fs.one_sided else DISTRIBUTION,
                rolling_accuracy=rolling_accuracy,
                command_id=self.command_id,
                event_type=DRIFT_RESOLVED,
                threshold=fs.opened.threshold,
            )
        )
        # the detector's own episode goes on against the new reference: its end is not
        # reported, and the stream moving away from it by the alarm's threshold reopens one
        if fs.one_sided:
            fs.reported = False
            fs.suppressed = fs.opened
        else:
            fs.rebaselined = fs.opened
        fs.opened = None


@dataclass(slots=True)
class _Column:
    """One numeric feature's values in a key's batch: those present, and where they are.

    A stream that has seen every event of its key uses the key's offset ring; the first event
    without the feature gives it its own ring (a copy of the key's: until then both held the
    same offsets at the same indices), so window offsets stay exact for sparse features.
    """

    xs: npt.NDArray[np.float64]
    offsets: npt.NDArray[np.int64]
    times: npt.NDArray[np.float64] | None
    ring: npt.NDArray[np.int64]
    base: int
    where: npt.NDArray[np.intp] | None  # batch positions of the values (None: all)

    @classmethod
    def of(
        cls,
        fs: FeatureState,
        state: KeyState,
        values: npt.NDArray[np.float64],
        present: npt.NDArray[np.bool_],
        offsets: npt.NDArray[np.int64],
        times: npt.NDArray[np.float64] | None,
    ) -> _Column:
        if fs.offsets is None:
            if bool(present.all()):
                return cls(values, offsets, times, state.offsets, state.seen, None)
            fs.offsets, fs.seen = state.offsets.copy(), state.seen
        where = np.flatnonzero(present)
        return cls(
            values[where],
            offsets[where],
            None if times is None else times[where],
            fs.offsets,
            fs.seen,
            where,
        )

    def event_index(self, pos: int) -> int:
        """The batch position of the ``pos``-th value."""
        return pos if self.where is None else int(self.where[pos])

    def advance(self, fs: FeatureState) -> None:
        """Record the values' offsets in the stream's own ring (the key's is pushed once)."""
        if self.where is not None:
            assert fs.offsets is not None
            _push_ring(fs.offsets, fs.seen, self.offsets)
            fs.seen += self.xs.shape[0]


class DriftMonitor:
    """Routes telemetry to per-(key, feature) detectors and turns their transitions into events.

    Parameters
    ----------
    settings : Settings
        Features, detectors, window and reference policy.
    references : ReferenceSource, optional
        Where references come from in ``file`` mode; ``None`` for warm-up.
    metrics : Metrics, optional
        Prometheus metrics to keep current.
    clock : callable
        Wall clock, for rate-limiting per-stream metric updates.
    reload_references : callable, optional
        Reads the reference file again (for :meth:`rebaseline` with source ``file``).
    on_transition : TransitionHook, optional
        Called with a :class:`TransitionSnapshot` for every transition of a KS stream. Costs a
        copy of each such stream's window per batch when set, nothing when not.
    track_accuracy : bool
        Follow the accuracy of labelled events (off if a feature is named ``accuracy``).
    input_id : str, optional
        The input's identity in event ids (``sha256:<hex>`` of a replayed file); None means
        the telemetry topic.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        references: ReferenceSource | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics_interval: float = 1.0,
        reload_references: Callable[[], ReferenceSource] | None = None,
        on_transition: TransitionHook | None = None,
        track_accuracy: bool = True,
        reproducible: bool = True,
        input_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.input_id = input_id  # the events' input identity; None: the telemetry topic
        self.reproducible = reproducible
        self.references = references
        self.metrics = metrics
        self.clock = clock
        self.metrics_interval = metrics_interval
        self.reload_references = reload_references
        self.on_transition = on_transition
        self.keys: OrderedDict[str, KeyState] = OrderedDict()
        self.evictions = 0
        self.skipped = 0  # events not applied again: their key's state already holds them
        self.evicted: list[tuple[str, int]] = []  # (key, partition) evicted since last taken
        self._detector_names = [settings.detector_for(f) for f in settings.features]
        self._last_publish = -float("inf")
        self._snapshots: list[TransitionSnapshot] = []
        self.track_accuracy = track_accuracy and ACCURACY_FEATURE not in settings.features
        if track_accuracy and not self.track_accuracy:
            log.warning(
                "a feature is named %r: the rolling-accuracy stream is disabled",
                ACCURACY_FEATURE,
            )
        # the accuracy stream's window is the last window_size labelled events, whatever the
        # features' windows are
        self._accuracy_settings = (
            settings.replace(window_duration=None)
            if settings.window_duration is not None
            else settings
        )
        self._accuracy_streams = 0
        self._failed: list[tuple[Telemetry, Exception]] = []
        #: Per-stream ERTs from the worker's daily budget (None with alpha, ert or a fleet budget)
        self.budget = (
            None
            if settings.worker_budget is None
            else WorkerBudget(
                settings.worker_budget,
                window_size=settings.window_size,
                block=settings.reference_size,
                resolve_after=settings.resolve_after,
                max_sources=2 * settings.max_tracked_keys,
            )
        )
        self._categorical = CategoricalStreams(
            settings,
            metrics,
            reproducible=reproducible,
            ert_for=self._categorical_ert,
            input_id=input_id,
        )

    # ------------------------------------------------------------------ state
    @property
    def stream_names(self) -> tuple[str, ...]:
        """The features, and ``accuracy`` when accuracy is tracked."""
        extra = (ACCURACY_FEATURE,) if self.track_accuracy else ()
        return (*self.settings.features, *self.settings.categorical_features, *extra)

    # ------------------------------------------------------------------ checkpoints
    def snapshot(
        self, partitions: Collection[int] | None = None, *, keys: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Every key's state (or only the keys of ``partitions``, or ``keys``) as plain data.

        Restoring it into a fresh monitor and feeding the events that follow the last one
        processed here gives exactly the results of a monitor that never stopped: windows,
        references, episodes, accuracy and offsets all continue. The result holds numbers,
        strings, numpy arrays, lists and dicts only (see :mod:`stream.worker.checkpoints`).
        """
        chosen = [
            (key, state)
            for key, state in (
                self.keys.items()
                if keys is None
                else ((k, self.keys[k]) for k in keys if k in self.keys)
            )
            if partitions is None or state.partition in partitions
        ]
        return {
            "version": SNAPSHOT_VERSION,
            "keys": [[key, _key_to_data(state)] for key, state in chosen],
        }

    def take_changed(self, partition: int) -> list[str]:
        """Keys of ``partition`` changed since last taken (and mark them unchanged)."""
        out = [k for k, st in self.keys.items() if st.changed and st.partition == partition]
        for k in out:
            self.keys[k].changed = False
        return out

    def take_evicted(self) -> list[tuple[str, int]]:
        """(key, partition) pairs evicted since last taken."""
        out, self.evicted = self.evicted, []
        return out

    def drop_partitions(self, partitions: Collection[int]) -> int:
        """Forget the keys of ``partitions`` (handed to another worker); return how many."""
        gone = [k for k, st in self.keys.items() if st.partition in partitions]
        for k in gone:
            state = self.keys.pop(k)
            _close(state)
            if state.accuracy is not None:
                self._accuracy_streams -= 1
            if self.metrics is not None:
                self.metrics.forget(k, self.stream_names)
        return len(gone)

    def restore(self, data: Any) -> int:
        """Load keys from a :meth:`snapshot`; return how many. Newer state wins over older.

        Raises
        ------
        StateError
            If ``data`` is not a snapshot this version can continue from (nothing is loaded).
        """
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise StateError(f"not a driftwatch monitor snapshot of version {SNAPSHOT_VERSION}")
        items = data.get("keys")
        if not isinstance(items, list):
            raise StateError("snapshot without keys")
        loaded: list[tuple[str, KeyState]] = []
        for item in items:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise StateError("snapshot key entries must be [key, state]")
            try:
                loaded.append((item[0], self._key_from_data(item[1])))
            except (TypeError, KeyError, IndexError, AttributeError) as exc:
                raise StateError(f"key {item[0][:100]!r}: malformed state: {exc!r}") from None
        for key, state in loaded:
            old = self.keys.get(key)
            if old is not None and old.accuracy is not None:
                self._accuracy_streams -= 1
            self.keys[key] = state
            self.keys.move_to_end(key)
            state.changed = False
            state.replay_until = state.last_offset
            if state.accuracy is not None:
                self._accuracy_streams += 1
            for fs in state.features:
                fs.dirty = True
        while len(self.keys) > self.settings.max_tracked_keys:
            self._evict_oldest()
        return len(loaded)

    def _key_from_data(self, data: Any) -> KeyState:
        """A key's state from :func:`_key_to_data`, checked against this monitor's settings."""
        size = self.settings.window_size
        doc = _fields(data, "key", _KEY_FIELDS)
        features = doc["features"]
        if not isinstance(features, list) or len(features) != len(self.settings.features):
            raise StateError(f"key state must hold {len(self.settings.features)} features")
        state = KeyState(
            [_stream_from_data(f) for f in features],
            check_array(doc["offsets"], np.int64, size, "key offsets").copy(),
            seen=_count(doc["seen"], "seen"),
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
        state.applied = applied
        for fs in state.features:
            if fs.offsets is not None and fs.offsets.shape != (size,):
                raise StateError(f"a stream's offsets must hold {size} values")
        state.categorical = self._categorical.from_data(doc.get("categorical"))
        acc = doc["accuracy"]
        if acc is not None:
            a = _fields(acc, "accuracy", _ACCURACY_FIELDS)
            state.accuracy = AccuracyState(
                _stream_from_data(a["stream"]),
                check_array(a["wrong"], np.bool_, size, "accuracy ring").copy(),
                check_array(a["offsets"], np.int64, size, "accuracy offsets").copy(),
                labelled=_count(a["labelled"], "labelled"),
                reference_accuracy=_float(a["reference_accuracy"], "reference_accuracy", nan=True),
                last_ts=_float(a["last_ts"], "last_ts"),
                classes=_classes_from_data(a.get("classes"), size),
            )
        return state

    def _evict_oldest(self) -> None:
        old, old_state = self.keys.popitem(last=False)
        self.evictions += 1
        self.evicted.append((old, old_state.partition))
        _close(old_state)
        if old_state.accuracy is not None:
            self._accuracy_streams -= 1
        if self.metrics is not None:
            self.metrics.key_evictions.inc()
            self.metrics.forget(old, self.stream_names)

    def _key_state(self, key: str) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            state = KeyState(
                [FeatureState() for _ in self.settings.features],
                np.full(self.settings.window_size, -1, dtype=np.int64),
                categorical=self._categorical.new_streams(),
            )
            self.keys[key] = state
            while len(self.keys) > self.settings.max_tracked_keys:
                self._evict_oldest()
        else:
            self.keys.move_to_end(key)
        return state

    @property
    def tracked_streams(self) -> int:
        per_key = len(self.settings.features) + len(self.settings.categorical_features)
        return len(self.keys) * per_key + self._accuracy_streams

    def _reference(self, key: str, j: int) -> npt.NDArray[np.float64] | None:
        if self.references is None:
            return None
        return self.references(key, self.settings.features[j])

    # ------------------------------------------------------------------ processing
    def process(self, batch: Sequence[Telemetry]) -> list[DriftEvent]:
        """Feed a batch (in stream order) and return the drift events it caused."""
        by_key: dict[str, list[Telemetry]] = {}
        for ev in batch:
            by_key.setdefault(ev.key, []).append(ev)
        events: list[DriftEvent] = []
        for key, evs in by_key.items():
            events.extend(self._process_key_or_roll_back(key, evs))
        if self.metrics is not None:
            self.metrics.tracked_streams.set(self.tracked_streams)
            now = self.clock()
            # a drift state changed: publish now, not up to an interval later (or never, if
            # the stream goes quiet); otherwise at most once per interval
            if events or now - self._last_publish >= self.metrics_interval:
                self.publish_metrics()
                self._last_publish = now
        if self._snapshots:
            snapshots, self._snapshots = self._snapshots, []
            if self.on_transition is not None:
                for snapshot in snapshots:
                    self.on_transition(snapshot)
        return events

    def take_failed(self) -> list[tuple[Telemetry, Exception]]:
        """Events whose processing raised since last taken (their key was rolled back)."""
        out, self._failed = self._failed, []
        return out

    def _process_key_or_roll_back(self, key: str, evs: list[Telemetry]) -> list[DriftEvent]:
        """Process one key's events; if that raises, isolate the events that fail.

        The key is rolled back to its state before the batch and its events are applied again
        one by one, each from a copy of the state before it: an event that raises leaves the
        key as it was and is recorded in :meth:`take_failed`. Other keys are not touched.
        """
        saved = self._save_key(key)
        mark = len(self._snapshots)
        try:
            return self._process_key(key, evs)
        except Exception:
            log.exception("processing %d event(s) of key %r failed; isolating", len(evs), key)
        out: list[DriftEvent] = []
        for ev in evs:
            self._restore_key(key, saved)
            del self._snapshots[mark:]
            try:
                got = self._process_key(key, [ev])
            except Exception as exc:
                self._failed.append((ev, exc))
                continue
            out.extend(got)
            saved = self._save_key(key)
            mark = len(self._snapshots)
        self._restore_key(key, saved)
        del self._snapshots[mark:]
        return out

    def _save_key(self, key: str) -> tuple[dict[str, Any], bool, int] | None:
        state = self.keys.get(key)
        if state is None:
            return None
        return _key_to_data(state), state.changed, state.replay_until

    def _restore_key(self, key: str, saved: tuple[dict[str, Any], bool, int] | None) -> None:
        """Put a key back as :meth:`_save_key` found it (absent if it was)."""
        current = self.keys.pop(key, None)
        if current is not None:
            _close(current)
            if current.accuracy is not None:
                self._accuracy_streams -= 1
        if saved is None:
            return
        data, changed, replay_until = saved
        state = self._key_from_data(data)
        state.changed, state.replay_until = changed, replay_until
        self.keys[key] = state
        if state.accuracy is not None:
            self._accuracy_streams += 1

    def _process_key(self, key: str, evs: list[Telemetry]) -> list[DriftEvent]:
        state = self._key_state(key)
        if state.replay_until >= 0:
            # read again after a restore: the restored state already holds these events
            fresh = [
                e for e in evs if e.partition != state.partition or e.offset > state.replay_until
            ]
            self.skipped += len(evs) - len(fresh)
            if self.metrics is not None:
                self.metrics.events_skipped.inc(len(evs) - len(fresh))
            if not fresh:
                return []
            evs = fresh
            state.replay_until = -1
        if self.budget is not None:
            self.budget.observe(key, EVENTS, [e.ts for e in evs])
        values = np.array([e.values for e in evs], dtype=np.float64)
        offsets = np.fromiter((e.offset for e in evs), dtype=np.int64, count=len(evs))
        times = (
            np.fromiter((e.ts for e in evs), dtype=np.float64, count=len(evs))
            if self.settings.window_duration is not None
            else None
        )
        state.partition = evs[-1].partition
        state.last_offset = evs[-1].offset
        state.changed = True
        state.last_ts = evs[-1].ts
        base = state.seen
        snapshot = self.on_transition is not None
        out: list[DriftEvent] = []
        present = ~np.isnan(values)
        for j, fs in enumerate(state.features):
            # sparse events: the stream sees only the events that have the feature, and keeps
            # its own offset ring once one lacks it (see _Column)
            col = _Column.of(fs, state, values[:, j], present[:, j], offsets, times)
            if col.xs.shape[0] == 0:
                continue
            start = 0
            if fs.detector is None:
                start = self._warm_up(key, j, fs, col.xs)
            if fs.detector is not None:
                det = fs.detector
                ts = None if col.times is None else col.times[start:]
                hits = self._feed(fs, col.xs[start:], ts, snapshot)
                fs.dirty = True
            else:
                hits = []
            for hit in hits:
                pos = start + hit.pos
                t = hit.transition
                event = self._event(
                    key,
                    self.settings.features[j],
                    self._detector_names[j],
                    DISTRIBUTION,
                    t,
                    evs[col.event_index(pos)],
                    _first_offset(col.ring, col.base, col.offsets, pos, t.n_window),
                    fs.n_base + t.index,
                )
                out.append(event)
                if hit.window is not None and isinstance(det, KS_DETECTORS):
                    self._snapshots.append(TransitionSnapshot(event, det.reference, hit.window))
            col.advance(fs)
            if self.metrics is not None:
                self.metrics.observations.labels(self.settings.features[j]).inc(col.xs.shape[0])
        _push_ring(state.offsets, base, offsets)
        state.seen += len(evs)
        if state.categorical:
            out.extend(self._categorical.process(key, state.categorical, evs))
        if self.track_accuracy:
            out.extend(self._process_accuracy(key, state, evs))
        if self.budget is not None:
            self._recalibrate(key, state)
        return out

    def _recalibrate(self, key: str, state: KeyState) -> None:
        """Worker budget: recalibrate the key's streams whose ERT is far from their share now."""
        assert self.budget is not None
        streams = [
            (EVENTS, name, fs)
            for name, fs in zip(self._detector_names, state.features, strict=True)
        ]
        if state.accuracy is not None:
            streams.append((LABELLED, ACCURACY_DETECTOR, state.accuracy.stream))
        count = self.tracked_streams
        for source, name, fs in streams:
            if self.budget.recalibrate(key, source, count, name, fs.detector):
                fs.dirty = True

    def _feed(
        self,
        fs: FeatureState,
        xs: npt.NDArray[np.float64],
        ts: npt.NDArray[np.float64] | None,
        snapshot: bool,
    ) -> list[_Hit]:
        """Feed one stream's values; return the transitions to report."""
        det = fs.detector
        assert det is not None
        if fs.one_sided:
            return self._feed_one_sided(fs, det, xs, ts)
        if fs.rebaselined is not None:
            return self._feed_rebaselined(fs, det, xs, ts)
        before: npt.NDArray[np.float64] | None = None
        if snapshot and isinstance(det, KS_DETECTORS):
            before = det.window
        n_before = det.n_seen
        det.update_many(xs, ts)
        hits: list[_Hit] = []
        for t in det.transitions:
            pos = t.index - n_before - 1
            window = None
            if before is not None:
                # the window at the transition: the last n_window values fed up to it
                window = np.concatenate((before, xs[: pos + 1]))[-t.n_window :]
            hits.append(_Hit(pos, t, window))
            fs.opened = t if t.kind == DRIFT_STARTED else None
        return hits

    def _feed_rebaselined(
        self,
        fs: FeatureState,
        det: DriftDetector,
        xs: npt.NDArray[np.float64],
        ts: npt.NDArray[np.float64] | None,
    ) -> list[_Hit]:
        """Feed event by event while the detector's episode closed by a re-baseline goes on.

        Its end is not reported. If, before it ends, the window moves away from the new
        reference by the closed alarm's threshold, a new episode is reported from there.
        """
        hits: list[_Hit] = []
        times = None if ts is None else ts.tolist()
        for i, x in enumerate(xs.tolist()):
            det.update(x, None if times is None else times[i])
            closed = fs.rebaselined
            if closed is None:
                for t in det.transitions:
                    hits.append(_Hit(i, t, self._window_of(det)))
                    fs.opened = t if t.kind == DRIFT_STARTED else None
                continue
            if any(t.kind == DRIFT_RESOLVED for t in det.transitions):
                fs.rebaselined = None  # the detector's episode ended: nothing to report
            elif isinstance(det, KS_DETECTORS) and det.statistic >= closed.threshold - _TIE:
                t = _reopened(det, closed)
                hits.append(_Hit(i, t, self._window_of(det)))
                fs.rebaselined = None
                fs.opened = t
        return hits

    def _feed_one_sided(
        self,
        fs: FeatureState,
        det: DriftDetector,
        xs: npt.NDArray[np.float64],
        ts: npt.NDArray[np.float64] | None,
    ) -> list[_Hit]:
        """Feed event by event, reporting only episodes whose window moved up.

        An alarm on a window below the reference is not reported, and neither is the end of its
        episode. While such an episode is open the detector cannot alarm again, so the monitor
        watches it: once the window is above the reference by the alarm's own threshold, the
        episode is reported as starting there.
        """
        hits: list[_Hit] = []
        times = None if ts is None else ts.tolist()
        for i, x in enumerate(xs.tolist()):
            det.update(x, None if times is None else times[i])
            if det.transitions:
                for t in det.transitions:
                    if t.kind == DRIFT_STARTED:
                        if t.statistic_sign > 0:
                            fs.reported = True
                            fs.opened = t
                            hits.append(_Hit(i, t, self._window_of(det)))
                        else:
                            fs.suppressed = t
                    else:
                        if fs.reported:
                            hits.append(_Hit(i, t, self._window_of(det)))
                        fs.reported = False
                        fs.suppressed = None
            elif fs.suppressed is not None and not fs.reported and isinstance(det, KS_DETECTORS):
                s = fs.suppressed
                if det.statistic_sign > 0 and det.statistic >= s.threshold - _TIE:
                    fs.reported = True
                    t = _reopened(det, s)
                    fs.opened = t
                    hits.append(_Hit(i, t, self._window_of(det)))
        return hits

    @staticmethod
    def _window_of(det: DriftDetector) -> npt.NDArray[np.float64] | None:
        return det.window if isinstance(det, KS_DETECTORS) else None

    def _build(
        self,
        name: DetectorName,
        settings: Settings,
        reference: npt.NDArray[np.float64] | None,
        ert: float | None = None,
    ) -> DriftDetector:
        wait = self.reproducible
        return build_detector(name, settings, reference, wait_for_calibration=wait, ert=ert)

    def _budget_ert(self, key: str, source: str, name: DetectorName) -> float | None:
        """The worker budget's ERT for a new stream of ``key`` (None without a budget)."""
        if self.budget is None:
            return None
        return self.budget.ert(key, source, self.tracked_streams, name)

    def _categorical_ert(self, key: str, feature: str) -> float | None:
        """The worker budget's ERT for a new categorical stream of ``key`` (None without)."""
        if self.budget is None:
            return None
        return self.budget.ert(key, EVENTS, self.tracked_streams, CHI2)

    def _warm_up(self, key: str, j: int, fs: FeatureState, xs: npt.NDArray[np.float64]) -> int:
        """Create the detector if its reference is ready; return how many values it used."""
        name = self._detector_names[j]
        calibrated = self.settings.effective_ert is not None or self.budget is not None
        if name in REFERENCE_FREE and not calibrated:
            fs.detector = self._build(name, self.settings, None)
            return 0
        ert = self._budget_ert(key, EVENTS, name)
        ref = self._reference(key, j)
        if ref is not None:
            fs.detector = self._build(name, self.settings, ref, ert)
            return 0
        need = self.settings.reference_size - len(fs.warmup)
        used = min(need, xs.shape[0])
        fs.warmup.extend(xs[:used].tolist())
        if len(fs.warmup) >= self.settings.reference_size:
            fs.detector = self._build(name, self.settings, np.asarray(fs.warmup), ert)
            fs.warmup = []
        return used

    # ------------------------------------------------------------------ accuracy
    def _accuracy_detector(self, key: str, reference: npt.NDArray[np.float64]) -> DriftDetector:
        ert = self._budget_ert(key, LABELLED, ACCURACY_DETECTOR)
        return self._build(ACCURACY_DETECTOR, self._accuracy_settings, reference, ert)

    def _process_accuracy(
        self, key: str, state: KeyState, evs: list[Telemetry]
    ) -> list[DriftEvent]:
        labelled = [e for e in evs if e.predicted_label is not None and e.true_label is not None]
        if not labelled:
            return []
        acc = state.accuracy
        if acc is None:
            size = self.settings.window_size
            acc = state.accuracy = AccuracyState(
                FeatureState(one_sided=True),
                np.zeros(size, dtype=np.bool_),
                np.full(size, -1, dtype=np.int64),
                classes=RollingClassification(size),
            )
            self._accuracy_streams += 1
        n = len(labelled)
        wrong = np.fromiter(
            (e.predicted_label != e.true_label for e in labelled), dtype=np.bool_, count=n
        )
        errors = wrong.astype(np.float64)
        offsets = np.fromiter((e.offset for e in labelled), dtype=np.int64, count=n)
        fs = acc.stream
        fs.dirty = True
        acc.last_ts = labelled[-1].ts
        if self.budget is not None:
            self.budget.observe(key, LABELLED, [e.ts for e in labelled])
        base = acc.labelled
        out: list[DriftEvent] = []
        start = 0
        if fs.detector is None:
            start = min(self.settings.reference_size - len(fs.warmup), n)
            fs.warmup.extend(errors[:start].tolist())
            if len(fs.warmup) >= self.settings.reference_size:
                reference = np.asarray(fs.warmup)
                fs.detector = self._accuracy_detector(key, reference)
                acc.reference_accuracy = 1.0 - float(reference.mean())
                fs.warmup = []
        classes = _ClassFeed(acc, labelled)
        det = fs.detector
        if det is not None and start < n:
            for hit in self._feed(fs, errors[start:], None, False):
                pos = start + hit.pos
                t = hit.transition
                window = hit.window
                rolling = math.nan if window is None else 1.0 - float(window.mean())
                event = self._event(
                    key,
                    ACCURACY_FEATURE,
                    ACCURACY_DETECTOR,
                    PERFORMANCE,
                    t,
                    labelled[pos],
                    _first_offset(acc.offsets, base, offsets, pos, t.n_window),
                    fs.n_base + t.index,
                    rolling_accuracy=rolling,
                    reference_accuracy=acc.reference_accuracy,
                    classification=classes.scores_at(pos),
                )
                out.append(event)
                if self.on_transition is not None and window is not None:
                    assert isinstance(det, KS_DETECTORS)
                    self._snapshots.append(TransitionSnapshot(event, det.reference, window))
        classes.scores_at(n - 1)
        _push_ring(acc.wrong, base, wrong)
        _push_ring(acc.offsets, base, offsets)
        acc.labelled += n
        if self.metrics is not None:
            self.metrics.observations.labels(ACCURACY_FEATURE).inc(n)
        return out

    # ------------------------------------------------------------------ events
    def _event(
        self,
        key: str,
        feature: str,
        detector: str,
        kind: str,
        t: Transition,
        ev: Telemetry,
        first_offset: int,
        observations: int,
        *,
        rolling_accuracy: float | None = None,
        reference_accuracy: float | None = None,
        classification: ClassificationScores | None = None,
    ) -> DriftEvent:
        if self.metrics is not None:
            self.metrics.drift_events.labels(t.kind, feature).inc()
        return DriftEvent(
            type=t.kind,
            key=key,
            feature=feature,
            detector=detector,
            event_time=ev.ts,
            statistic=t.statistic,
            p_value=t.p_value,
            threshold=t.threshold,
            reference_size=t.n_reference,
            window_size=t.n_window,
            statistic_location=t.statistic_location,
            statistic_sign=t.statistic_sign,
            topic=self.settings.telemetry_topic,
            app_id=self.settings.app_id,
            input_id=self.input_id,
            partition=ev.partition,
            window_first_offset=first_offset,
            window_last_offset=ev.offset,
            observations=observations,
            kind=kind,
            rolling_accuracy=rolling_accuracy,
            reference_accuracy=reference_accuracy,
            macro_precision=None if classification is None else classification.precision,
            macro_recall=None if classification is None else classification.recall,
            macro_f1=None if classification is None else classification.f1,
        )

    # ------------------------------------------------------------------ re-baselining
    def rebaseline(
        self,
        key: str | None = None,
        feature: str | None = None,
        source: str = "window",
        *,
        command_id: str | None = None,
        max_streams: int | None = None,
    ) -> list[DriftEvent]:
        """Give streams a new reference; return the events that record it.

        Parameters
        ----------
        key, feature : str, optional
            The key and the feature (or ``accuracy``) to refresh; None means every tracked key,
            every stream.
        source : {"window", "file"}
            ``window``: each stream's current window becomes its reference. ``file``: the
            reference file is read again and each stream gets its (per-key) reference from it;
            new keys then use it too, in ``file`` reference mode. The accuracy streams have no
            file reference and are left alone by ``file``.
        command_id : str, optional
            The command's id: carried by the events, remembered per key so that a command
            read again after a restart is not applied twice, and part of the event ids.
        max_streams : int, optional
            Refresh at most this many streams; the others are counted, not refreshed.

        Each refreshed stream gets a ``reference_refreshed`` event. A stream is refreshed at
        most once per window (``window_size`` observations since its last refresh); streams
        still learning their reference, with a reference-free detector, or (for ``window``)
        with an empty window are skipped. A refresh inside a reported drift episode closes it
        with a ``drift_resolved`` event of reason ``rebaselined``; if the stream then moves
        away from its new reference by the alarm's threshold, a new episode starts.

        Raises
        ------
        ValueError
            For an unknown source or feature, or ``file`` with no reference file configured.
        UnknownKeyError
            If ``key`` is not tracked here.
        InputFileError
            If the reference file cannot be read.
        """
        if source not in REBASELINE_SOURCES:
            raise ValueError(f"source must be one of {REBASELINE_SOURCES}, got {source!r}")
        if feature is not None and feature not in self.stream_names:
            raise ValueError(f"feature must be one of {self.stream_names}, got {feature!r}")
        if key is not None and key not in self.keys:
            raise UnknownKeyError(key)
        file_refs: ReferenceSource | None = None
        if source == "file":
            if feature == ACCURACY_FEATURE:
                raise ValueError("the accuracy stream has no file reference; use source 'window'")
            if self.reload_references is None:
                raise ValueError("source 'file' needs a reference_file")
            file_refs = self.reload_references()
            if self.references is not None:
                self.references = file_refs
        refresh = _Refresh(self, source, command_id, max_streams)
        for k in list(self.keys) if key is None else [key]:
            state = self.keys[k]
            if command_id is not None:
                if command_id in state.applied:
                    refresh.skip("already_applied")
                    continue
                state.applied = [*state.applied[-(APPLIED_REMEMBERED - 1) :], command_id]
            state.changed = True
            for j, name in enumerate(self.settings.features):
                fs = state.features[j]
                det = fs.detector
                if feature not in (None, name) or not isinstance(det, KS_DETECTORS):
                    continue
                window = det.window
                reference = window if file_refs is None else file_refs(k, name)
                if reference is None or reference.size == 0 or not refresh.admits(fs, det):
                    continue
                ring, seen = (
                    (state.offsets, state.seen) if fs.offsets is None else (fs.offsets, fs.seen)
                )
                context = _StreamContext(
                    k, name, self._detector_names[j], ring, seen, state.last_ts
                )
                refresh.close_episode(fs, det, window, context, state.partition)
                det.set_reference(reference)
                fs.dirty = True
                refresh.events.append(
                    self._refresh_event(
                        context,
                        fs,
                        reference,
                        window,
                        source,
                        state.partition,
                        command_id=command_id,
                    )
                )
            acc = state.accuracy
            if (
                file_refs is None
                and acc is not None
                and feature in (None, ACCURACY_FEATURE)
                and isinstance(acc.stream.detector, KS_DETECTORS)
                and refresh.admits(acc.stream, acc.stream.detector)
            ):
                refresh.events.extend(self._rebaseline_accuracy(k, state, acc, refresh))
            if file_refs is None and state.categorical:
                refresh.events.extend(
                    self._categorical.rebaseline(
                        k, state.categorical, feature, refresh.admits, command_id=command_id
                    )
                )
        return refresh.events

    def _rebaseline_accuracy(
        self, key: str, state: KeyState, acc: AccuracyState, refresh: _Refresh
    ) -> list[DriftEvent]:
        fs = acc.stream
        det = fs.detector
        assert isinstance(det, KS_DETECTORS)
        window = det.window
        if window.size == 0:
            return []
        context = _StreamContext(
            key, ACCURACY_FEATURE, ACCURACY_DETECTOR, acc.offsets, acc.labelled, acc.last_ts
        )
        accuracy = {"rolling_accuracy": acc.rolling_accuracy}
        refresh.close_episode(fs, det, window, context, state.partition, **accuracy)
        if fs.suppressed is not None and not fs.reported:
            # An unreported episode (accuracy went up) would keep the detector from alarming;
            # start afresh instead: the window replayed against itself raises no alarm.
            fresh = self._accuracy_detector(key, window)
            fresh.update_many(window)
            fs.n_base += det.n_seen - fresh.n_seen
            fs.detector = fresh
            fs.suppressed = None
        else:
            det.set_reference(window)
        acc.reference_accuracy = 1.0 - float(window.mean())
        fs.dirty = True
        return [
            self._refresh_event(
                context,
                fs,
                window,
                window,
                "window",
                state.partition,
                kind=PERFORMANCE,
                rolling_accuracy=acc.rolling_accuracy,
                reference_accuracy=acc.reference_accuracy,
                command_id=refresh.command_id,
            )
        ]

    def _refresh_event(
        self,
        context: _StreamContext,
        fs: FeatureState,
        reference: npt.NDArray[np.float64],
        window: npt.NDArray[np.float64],
        source: str | None,
        partition: int,
        *,
        kind: str = DISTRIBUTION,
        rolling_accuracy: float | None = None,
        reference_accuracy: float | None = None,
        command_id: str | None = None,
        event_type: str = REFERENCE_REFRESHED,
        threshold: float = math.nan,
    ) -> DriftEvent:
        """A ``reference_refreshed`` event (or the ``drift_resolved`` a refresh causes)."""
        det = fs.detector
        assert isinstance(det, KS_DETECTORS)
        ring, seen = context.ring, context.seen
        cap = ring.shape[0]
        last = int(ring[(seen - 1) % cap]) if seen else -1
        first = int(ring[(seen - window.size) % cap]) if window.size else last
        if self.metrics is not None:
            self.metrics.drift_events.labels(event_type, context.feature).inc()
        resolved = event_type != REFERENCE_REFRESHED
        return DriftEvent(
            type=event_type,
            key=context.key,
            feature=context.feature,
            detector=context.detector,
            event_time=context.last_ts,
            statistic=det.statistic,
            p_value=det.p_value,
            threshold=threshold,
            reference_size=int(reference.shape[0]),
            window_size=int(window.shape[0]),
            statistic_location=det.statistic_location,
            statistic_sign=det.statistic_sign,
            topic=self.settings.telemetry_topic,
            app_id=self.settings.app_id,
            input_id=self.input_id,
            partition=partition,
            window_first_offset=first,
            window_last_offset=last,
            observations=fs.n_base + det.n_seen,
            kind=kind,
            rolling_accuracy=rolling_accuracy,
            reference_accuracy=reference_accuracy,
            reference_source=None if resolved else source,
            reason=REBASELINED if resolved else None,
            command_id=command_id,
        )

    # ------------------------------------------------------------------ metrics
    def publish_metrics(self) -> None:
        """Publish every changed stream's statistic, p-value, state and window fill.

        :meth:`process` calls it at most once per ``metrics_interval`` (and after every batch
        that emitted events); the worker also calls it on a timer, so that the last batch
        before a pause is published too.
        """
        m = self.metrics
        if m is None:
            return
        for key, state in self.keys.items():
            for feature, fs in zip(self.settings.features, state.features, strict=True):
                if fs.dirty:
                    fs.dirty = False
                    self._publish_stream(m, key, feature, fs)
            if state.categorical:
                self._categorical.publish(m, key, state.categorical)
            acc = state.accuracy
            if acc is not None and acc.stream.dirty:
                acc.stream.dirty = False
                m.set_accuracy(key, acc.rolling_accuracy)
                if acc.classes is not None:
                    m.set_classification(key, *acc.classes.scores())
                self._publish_stream(m, key, ACCURACY_FEATURE, acc.stream)

    @staticmethod
    def _publish_stream(m: Metrics, key: str, feature: str, fs: FeatureState) -> None:
        det = fs.detector
        if det is None:  # still learning its reference
            m.set_stream(key, feature, float("nan"), float("nan"), False, 0.0)
            return
        size = getattr(det, "window_size", None)
        fill = len(det.window) / size if size else 1.0  # type: ignore[attr-defined]
        m.set_stream(key, feature, det.statistic, det.p_value, fs.active, fill)
        m.set_score(key, feature, det.drift_score, getattr(det, "ert", None))
