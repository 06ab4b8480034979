"""Event schemas: telemetry in, drift events out, and the reasons a message is rejected.

Telemetry messages are flat JSON objects, for example::

    {"ts": 1779350400123, "agent_id": "support-bot", "model": "m-2026-05", "tool": "search",
     "response_latency_ms": 812.4, "token_count": 512, "retry_count": 0, "error_rate": 0.02,
     "predicted_label": "refund", "true_label": "refund"}

``ts`` is epoch milliseconds or an ISO 8601 string; when absent, the Kafka record timestamp
is used.

Field names are looked up as top-level keys first, then as dotted paths into nested objects
(``usage.output_tokens`` finds ``{"usage": {"output_tokens": 7}}``; a top-level key spelled
``"usage.output_tokens"`` wins). With ``sparse=True`` an event feeds the features it has: a
missing feature is ``nan`` in :attr:`Telemetry.values` (and ``None`` in
:attr:`Telemetry.categories`), and an event without the key fields or without any feature is
:class:`Skipped` (counted, not dead-lettered) instead of rejected.

Parsing never raises: it returns a :class:`Telemetry` or an :class:`Invalid` with a
reason from :data:`INVALID_REASONS`.

Control commands (the control topic) are flat JSON objects too::

    {"action": "rebaseline", "key": "agent-1", "feature": "token_count", "source": "window"}

``key`` and ``feature`` may be null or absent (every key, every feature); ``source`` is
``window`` (the current window becomes the reference, the default) or ``file`` (reload
``reference_file``). :class:`ControlParser` returns a :class:`ControlCommand` or an
:class:`Invalid` with a reason from :data:`CONTROL_INVALID_REASONS`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import msgspec

from stream.settings import Settings

__all__ = [
    "ACCURACY_FEATURE",
    "CONTROL_INVALID_REASONS",
    "DISTRIBUTION",
    "INVALID_REASONS",
    "PERFORMANCE",
    "REBASELINE_SOURCES",
    "REFERENCE_REFRESHED",
    "SCHEMA_VERSION",
    "SKIP_REASONS",
    "ControlCommand",
    "ControlParser",
    "DriftEvent",
    "Invalid",
    "RebaselineSource",
    "Skipped",
    "Telemetry",
    "TelemetryParser",
    "event_id",
    "file_identity",
    "lookup",
]

SCHEMA_VERSION = 1

#: Why a message can be rejected (the ``reason`` label of ``driftwatch_invalid_events_total``).
INVALID_REASONS = (
    "oversized",
    "invalid_json",
    "not_an_object",
    "missing_key",
    "bad_key",
    "missing_feature",
    "non_numeric",
    "non_finite",
    "bad_timestamp",
)

#: Event kinds: a feature's distribution moved, or the key's accuracy dropped.
DISTRIBUTION = "distribution"
PERFORMANCE = "performance"
#: The ``feature`` of performance events (the rolling-accuracy stream of a key).
ACCURACY_FEATURE = "accuracy"
#: The ``type`` of the event recording a re-baseline.
REFERENCE_REFRESHED = "reference_refreshed"
#: The ``reason`` of a ``drift_resolved`` event closed by a re-baseline.
REBASELINED = "rebaselined"

RebaselineSource = Literal["window", "file"]
REBASELINE_SOURCES: tuple[str, ...] = get_args(RebaselineSource)

#: Why a control command can be rejected (also ``reason`` labels of the invalid-events metric).
CONTROL_INVALID_REASONS = (
    "oversized",
    "invalid_json",
    "not_an_object",
    "unknown_action",
    "bad_field",
    "unknown_feature",
    "bad_source",
    "no_reference_file",
    "unsigned",
    "bad_signature",
    "unknown_key",
)


class Telemetry(msgspec.Struct, frozen=True, gc=False):
    """One valid telemetry event.

    Not tracked by the garbage collector (``gc=False``): an event refers only to strings,
    numbers and decoded JSON values, never to anything that could refer back to it, so it is
    in no reference cycle. A batch makes thousands; tracked, they set off collections of the
    whole heap, the monitor's state included.
    """

    key: str
    ts: float  # event time, seconds since the epoch
    values: tuple[float, ...]  # one per monitored feature, in settings order
    partition: int
    offset: int
    predicted_label: str | None = None
    true_label: str | None = None
    # one raw value per categorical feature (a string, a scalar or an array; None: missing)
    categories: tuple[object, ...] = ()


class Invalid(msgspec.Struct, frozen=True):
    """A rejected message: the reason, a human-readable detail, and where it came from."""

    reason: str
    detail: str
    partition: int
    offset: int


#: Why a sparse parser skips an event (the ``reason`` label of ``driftwatch_skipped_total``).
SKIP_REASONS = ("filtered", "missing_key", "no_features")


class Skipped(Invalid, frozen=True):
    """An event a sparse parser skips (no key fields, or none of the features): count it,
    do not dead-letter it. A subclass of :class:`Invalid`, so a caller that does not tell
    the two apart still loses nothing."""


_MISSING = object()


def lookup(doc: dict[str, Any], name: str) -> Any:
    """``doc[name]``, else the dotted path ``name`` into nested objects, else None."""
    value = doc.get(name, _MISSING)
    if value is not _MISSING:
        return value
    node: Any = doc
    for part in name.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


#: Event times must be datetimes (years 1-9999): drift events carry them as ISO 8601 strings.
_MIN_SECONDS = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_MAX_SECONDS = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


#: The largest event time in epoch milliseconds (what :func:`_as_seconds` accepts).
_MAX_MILLISECONDS = int(_MAX_SECONDS * 1000)


def _representable(seconds: float) -> bool:
    return _MIN_SECONDS <= seconds <= _MAX_SECONDS


def _as_seconds(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw) / 1000.0
        return value if value >= 0 and _representable(value) else None
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        value = dt.timestamp()
        return value if _representable(value) else None
    return None


#: Signed and unsigned 64-bit integers: the key values every JSON reader keeps exact.
_KEY_INT_RANGE = (-(2**63), 2**64)
_INT_MIN, _INT_END = _KEY_INT_RANGE

#: The generic JSON reader (objects to dicts), for messages the typed reader passes on.
_JSON = msgspec.json.Decoder()


class TelemetryParser:
    """Validates raw messages against the configured key fields and features.

    ``categorical_features`` defaults to the settings'. ``span_filter`` (a
    ``FIELD=VALUE[,VALUE...]`` filter, see :class:`~stream.telemetry.genai.SpanFilter`) skips
    the events whose field is not one of the values, with reason ``filtered``.

    A message is read by a typed ``msgspec`` decoder that materialises only the configured
    fields (key fields as strings or integers, features as numbers, the timestamp) and skips
    everything else without building it. A message it cannot read that way -- wrong types,
    invalid JSON, a dotted name that needs a nested lookup -- is read again as a whole object
    and validated by the same rules, so both ways give the same result (tested).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sparse: bool = False,
        categorical_features: tuple[str, ...] | None = None,
        span_filter: tuple[str, frozenset[str]] | None = None,
    ) -> None:
        self.key_fields = settings.key_fields
        self.features = settings.features
        self.timestamp_field = settings.timestamp_field
        self.max_bytes = settings.max_message_bytes
        self.sparse = sparse
        self.categorical_features = (
            settings.categorical_features if categorical_features is None else categorical_features
        )
        self.span_filter = span_filter
        roles: dict[str, set[str]] = {}
        for role, names in (
            ("key", self.key_fields),
            ("feature", self.features),
            ("time", (self.timestamp_field,)),
            ("any", self.categorical_features),
            ("any", ("predicted_label", "true_label")),
            ("any", () if span_filter is None else (span_filter[0],)),
        ):
            for name in names:
                roles.setdefault(name, set()).add(role)
        #: Every field a message is read for, once each, in a fixed order.
        self._names = tuple(roles)
        at = {name: i for i, name in enumerate(self._names)}
        self._key_at = tuple(at[n] for n in self.key_fields)
        self._feature_at = tuple(at[n] for n in self.features)
        self._category_at = tuple(at[n] for n in self.categorical_features)
        self._time_at = at[self.timestamp_field]
        self._label_at = (at["predicted_label"], at["true_label"])
        self._filter_at = -1 if span_filter is None else at[span_filter[0]]
        self._dotted = tuple(i for i, n in enumerate(self._names) if "." in n)
        #: The one key field's position (None: several key fields, joined).
        self._single_key_at = self._key_at[0] if len(self._key_at) == 1 else None
        self._typed = msgspec.json.Decoder(_message_type(self._names, roles))
        #: The features' values of a typed read, as a tuple.
        self._feature_values = _getter(self._feature_at)
        #: Whether a typed read can take the common case's short way (:meth:`_typed_event`):
        #: one key field read as a string or an integer, every feature as a number, the
        #: timestamp as a number or a string, and no span filter.
        self._short = (
            self._single_key_at is not None
            and roles[self.key_fields[0]] == {"key"}
            and bool(self.features)
            and all(roles[n] == {"feature"} for n in self.features)
            and roles[self.timestamp_field] == {"time"}
            and span_filter is None
        )

    def parse(
        self, raw: bytes | None, *, partition: int = 0, offset: int = 0, timestamp: float = 0.0
    ) -> Telemetry | Invalid:
        """Parse one message value; ``timestamp`` (seconds) is the Kafka record's."""
        return self.parse_record(raw, partition, offset, timestamp)

    def parse_record(
        self, raw: bytes | None, partition: int, offset: int, timestamp: float
    ) -> Telemetry | Invalid:
        """:meth:`parse` with positional arguments (what a batch calls for each record)."""
        if raw is None:
            return Invalid("invalid_json", "empty message (tombstone)", partition, offset)
        if len(raw) > self.max_bytes:
            return Invalid(
                "oversized", f"{len(raw)} bytes > limit {self.max_bytes}", partition, offset
            )
        if not raw.isascii():  # the typed read skips unread strings without decoding them
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return Invalid("invalid_json", f"not UTF-8: {exc}"[:200], partition, offset)
        try:
            values = msgspec.structs.astuple(self._typed.decode(raw))
        except msgspec.DecodeError:
            values = None
        if values is not None and (
            not self._dotted or not any(values[i] is None for i in self._dotted)
        ):
            if self._short:
                return self._typed_event(values, partition, offset, timestamp)
            return self._validate(values, partition, offset, timestamp)
        try:
            doc = _JSON.decode(raw)
        except msgspec.DecodeError as exc:
            return Invalid("invalid_json", str(exc)[:200], partition, offset)
        if not isinstance(doc, dict):
            return Invalid("not_an_object", f"JSON {type(doc).__name__}", partition, offset)
        return self.parse_doc(doc, partition=partition, offset=offset, timestamp=timestamp)

    def parse_doc(
        self,
        doc: dict[str, Any],
        *,
        partition: int = 0,
        offset: int = 0,
        timestamp: float = 0.0,
    ) -> Telemetry | Invalid:
        """Validate one decoded JSON object (what :meth:`parse` does after decoding)."""
        values = tuple(lookup(doc, name) for name in self._names)
        return self._validate(values, partition, offset, timestamp)

    def _typed_event(
        self, values: tuple[Any, ...], partition: int, offset: int, timestamp: float
    ) -> Telemetry | Invalid:
        """:meth:`_validate` of a typed read, the common case taken the short way.

        The common case: the key a non-empty string, every feature a finite number, the
        timestamp epoch milliseconds, the labels strings or missing, no category an integer
        beyond 64 bits. Its event is the one :meth:`_validate` gives (the typed read already
        made each feature a float); anything else is left to :meth:`_validate`.
        """
        key = values[self._key_at[0]]
        floats = self._feature_values(values)
        raw_ts = values[self._time_at]
        pred = values[self._label_at[0]]
        true = values[self._label_at[1]]
        if (
            type(key) is str
            and key
            and None not in floats
            and type(raw_ts) is int
            and 0 <= raw_ts <= _MAX_MILLISECONDS
            and (pred is None or type(pred) is str)
            and (true is None or type(true) is str)
        ):
            total = sum(floats)  # NaN or infinite unless every value is finite
            if total - total == 0.0:
                categories = (
                    tuple([values[i] for i in self._category_at]) if self._category_at else ()
                )
                for c in categories:
                    if type(c) is int and not _INT_MIN <= c < _INT_END:
                        break  # widened to a float by _validate
                else:
                    return Telemetry(
                        key, raw_ts / 1000.0, floats, partition, offset, pred, true, categories
                    )
        return self._validate(values, partition, offset, timestamp)

    def _validate(
        self, values: tuple[Any, ...], partition: int, offset: int, timestamp: float
    ) -> Telemetry | Invalid:
        """The event of a message whose fields :attr:`_names` hold ``values``."""
        for v in values:
            if type(v) is int and not _KEY_INT_RANGE[0] <= v < _KEY_INT_RANGE[1]:
                widened = _widened(values)
                if widened is None:
                    return Invalid("invalid_json", "a number beyond float range", partition, offset)
                values = widened
                break
        if self.span_filter is not None:
            name, allowed = self.span_filter
            value = values[self._filter_at]
            if value is None or isinstance(value, dict | list) or str(value) not in allowed:
                return Skipped("filtered", f"{name}={value!r}"[:200], partition, offset)
        key = self._key(values, partition, offset)
        if not isinstance(key, str):
            return key
        floats = [values[i] for i in self._feature_at]
        for v in floats:  # finite floats (the typed read's): nothing to check one by one
            if type(v) is not float or v - v != 0.0:
                checked = self._features(values, partition, offset)
                if isinstance(checked, Invalid):
                    return checked
                floats = checked
                break
        categories = tuple([values[i] for i in self._category_at])
        if (
            self.sparse
            and (not floats or math.isnan(floats[0]))
            and all(math.isnan(v) for v in floats)
            and all(c is None for c in categories)
        ):
            return Skipped("no_features", "none of the features is present", partition, offset)
        raw_ts = values[self._time_at]
        if type(raw_ts) is int and 0 <= raw_ts <= _MAX_MILLISECONDS:
            ts = raw_ts / 1000.0
        elif raw_ts is None:
            if not _representable(timestamp):
                return Invalid(
                    "bad_timestamp", f"Kafka record timestamp {timestamp!r}", partition, offset
                )
            ts = timestamp
        else:
            parsed = _as_seconds(raw_ts)
            if parsed is None:
                return Invalid(
                    "bad_timestamp", f"{self.timestamp_field}={raw_ts!r}"[:200], partition, offset
                )
            ts = parsed
        pred, true = values[self._label_at[0]], values[self._label_at[1]]
        return Telemetry(
            key,
            ts,
            tuple(floats),
            partition,
            offset,
            None if pred is None else pred if type(pred) is str else str(pred),
            None if true is None else true if type(true) is str else str(true),
            categories,
        )

    def _key(self, values: tuple[Any, ...], partition: int, offset: int) -> str | Invalid:
        """The event's key from its key fields' ``values``, or why there is none."""
        if self._single_key_at is not None:
            part = values[self._single_key_at]
            if type(part) is str and part:
                return part  # the common case, checked below otherwise
        parts = []
        for name, i in zip(self.key_fields, self._key_at, strict=True):
            part = values[i]
            if type(part) is str and part:
                parts.append(part)
                continue
            if part is None or part == "" or isinstance(part, dict | list):
                rejected = Skipped if self.sparse else Invalid
                return rejected("missing_key", f"key field {name!r} missing", partition, offset)
            if isinstance(part, float) or (
                type(part) is int and not _KEY_INT_RANGE[0] <= part < _KEY_INT_RANGE[1]
            ):
                # distinct ids beyond 64 bits collapse in many JSON readers
                return Invalid(
                    "bad_key",
                    f"key field {name!r} is a non-integer or beyond 64-bit number: send a string",
                    partition,
                    offset,
                )
            parts.append(str(part))
        return parts[0] if len(parts) == 1 else join_key(parts)

    def _features(
        self, values: tuple[Any, ...], partition: int, offset: int
    ) -> list[float] | Invalid:
        """The features' ``values`` as floats (``nan``: missing, when sparse), or why not."""
        floats = []
        for name, i in zip(self.features, self._feature_at, strict=True):
            v = values[i]
            if v is None and self.sparse:
                floats.append(math.nan)
                continue
            if v is None:
                return Invalid("missing_feature", f"feature {name!r} missing", partition, offset)
            if isinstance(v, bool) or not isinstance(v, int | float):
                return Invalid(
                    "non_numeric", f"feature {name!r} is {type(v).__name__}", partition, offset
                )
            f = float(v)
            if not math.isfinite(f):
                return Invalid("non_finite", f"feature {name!r} is {v!r}", partition, offset)
            floats.append(f)
        return floats


def _getter(positions: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function giving the items of a tuple at ``positions``, as a tuple."""
    if len(positions) >= 2:
        return operator.itemgetter(*positions)
    return lambda values: tuple([values[i] for i in positions])


def _widened(values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """``values`` with integers beyond 64 bits read as floats, as most JSON readers do (None:
    one is beyond float range too, which no JSON reader can take as a number)."""
    out = []
    for v in values:
        if type(v) is int and not _KEY_INT_RANGE[0] <= v < _KEY_INT_RANGE[1]:
            try:
                v = float(v)
            except OverflowError:
                return None
        out.append(v)
    return tuple(out)


def _message_type(names: tuple[str, ...], roles: dict[str, set[str]]) -> type[msgspec.Struct]:
    """A struct of the fields ``names``, typed by their role so that msgspec checks them.

    A key field reads as a string or an integer, a feature as a number, the timestamp as a
    number or a string; a field with several roles, a categorical feature and the labels read
    as any JSON value. Anything else in the message is skipped. A value of another type makes
    the typed read fail, and the message is then validated as a whole object.
    """
    typed: dict[frozenset[str], Any] = {
        frozenset({"key"}): str | int | None,
        frozenset({"feature"}): float | None,
        frozenset({"time"}): int | float | str | None,
    }
    fields = [
        (f"f{i}", typed.get(frozenset(roles[name]), Any), msgspec.field(default=None, name=name))
        for i, name in enumerate(names)
    ]
    # untracked by the garbage collector, as Telemetry: its values are freshly decoded JSON
    return msgspec.defstruct("Message", fields, gc=False)


def join_key(parts: Sequence[str]) -> str:
    """The key of an event from its key fields' values.

    A single key field is used as it is. Several are joined by ``/``, each ``\\`` and ``/`` in a
    value escaped by ``\\``, so distinct values always give distinct keys (``a/b`` + ``c`` is
    ``a\\/b/c``; ``a`` + ``b/c`` is ``a/b\\/c``).
    """
    if len(parts) == 1:
        return parts[0]
    return "/".join(p.replace("\\", "\\\\").replace("/", "\\/") for p in parts)


def event_id(*parts: object) -> str:
    """A deterministic id: the same inputs always give the same id (for deduplication)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return digest[:32]


def file_identity(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of the bytes of ``path``: the input identity of a replayed file.

    Events replayed from the same bytes get the same ids again; any other file (or an edited
    one) gets different ids.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _opt(x: float | None) -> float | None:
    return None if x is None else _num(x)


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A drift episode starting or ending for one (key, feature); see README "Drift events"."""

    type: str
    key: str
    feature: str
    detector: str
    event_time: float
    statistic: float
    p_value: float
    threshold: float
    reference_size: int
    window_size: int
    statistic_location: float
    statistic_sign: int
    topic: str
    partition: int
    window_first_offset: int
    window_last_offset: int
    observations: int
    kind: str = DISTRIBUTION
    rolling_accuracy: float | None = None  # performance events: accuracy of the window
    reference_accuracy: float | None = None  # performance events: accuracy of the reference
    reference_source: str | None = None  # reference_refreshed events: "window" or "file"
    reason: str | None = None  # drift_resolved by a re-baseline: "rebaselined"
    command_id: str | None = None  # the control command behind a refresh (or its resolution)
    # chi2 (categorical) streams: (category, reference_share, window_share) of the cell whose
    # share moved most
    largest_change: tuple[str, float, float] | None = None
    app_id: str = "driftwatch"  # the deployment (settings.app_id)
    input_id: str | None = None  # what was read: None is the topic; a file is "sha256:<hex>"
    macro_precision: float | None = None  # performance events: over the window's classes
    macro_recall: float | None = None
    macro_f1: float | None = None

    @property
    def input(self) -> str:
        """The input's identity: the telemetry topic, or ``sha256:<hex>`` of a replayed file."""
        return self.topic if self.input_id is None else self.input_id

    @property
    def event_id(self) -> str:
        """32 hex digits of SHA-256 over the deployment, the input and the event's position.

        Two deployments (``app_id``) or two inputs never share an id; the same deployment
        reading the same input gives the same ids again (for deduplication downstream).
        """
        parts: list[object] = [
            self.type,
            self.key,
            self.feature,
            self.detector,
            self.app_id,
            self.input,
            self.partition,
            self.window_last_offset,
        ]
        # the others add what tells them apart (a feature may be called "accuracy";
        # refreshes can repeat at one offset)
        if self.kind != DISTRIBUTION:
            parts.append(self.kind)
        if self.type == REFERENCE_REFRESHED:
            parts += [self.reference_source, self.reference_size, self.observations]
        if self.command_id is not None:
            parts.append(self.command_id)  # repeated identical commands: distinct events
        return event_id(*parts)

    @property
    def direction(self) -> str:
        if self.statistic_sign > 0:
            return "increase"
        if self.statistic_sign < 0:
            return "decrease"
        return "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "app_id": self.app_id,
            "type": self.type,
            "event_time": datetime.fromtimestamp(self.event_time, UTC).isoformat(
                timespec="milliseconds"
            ),
            "event_time_ms": round(self.event_time * 1000),
            "kind": self.kind,
            "key": self.key,
            "feature": self.feature,
            "detector": self.detector,
            "statistic": _num(self.statistic),
            "p_value": _num(self.p_value),
            "threshold": _num(self.threshold),
            "reference_size": self.reference_size,
            "window_size": self.window_size,
            "largest_gap": {
                "location": _num(self.statistic_location),
                "direction": self.direction,
            },
            "source": {
                "input": self.input,
                "topic": self.topic,
                "partition": self.partition,
                "window_first_offset": self.window_first_offset,
                "window_last_offset": self.window_last_offset,
            },
            "observations": self.observations,
            "rolling_accuracy": _opt(self.rolling_accuracy),
            "reference_accuracy": _opt(self.reference_accuracy),
            "macro_precision": _opt(self.macro_precision),
            "macro_recall": _opt(self.macro_recall),
            "macro_f1": _opt(self.macro_f1),
            "reference_source": self.reference_source,
            "reason": self.reason,
            "command_id": self.command_id,
            "largest_change": None
            if self.largest_change is None
            else {
                "category": self.largest_change[0],
                "reference_share": _num(self.largest_change[1]),
                "window_share": _num(self.largest_change[2]),
            },
        }

    def to_json(self) -> bytes:
        return msgspec.json.encode(self.to_dict())

    @property
    def kafka_key(self) -> bytes:
        """``<key>|<feature>``: unambiguous, as feature names cannot hold ``|`` (split at the
        last one)."""
        return f"{self.key}|{self.feature}".encode()

    def log_line(self) -> str:
        """The event as the worker logs it: type, key, feature, statistic and p-value."""
        return (
            f"{self.type} key={self.key} feature={self.feature} "
            f"D={self.statistic:.4f} p={self.p_value:.3g}"
        )


@dataclass(frozen=True, slots=True)
class ControlCommand:
    """A validated control command (only ``rebaseline`` exists).

    ``key``/``feature`` None mean every key/feature; ``command_id`` (optional, set by
    ``driftwatch rebaseline``) lets a worker apply a command sent to several partitions once.
    """

    action: str
    key: str | None
    feature: str | None
    source: RebaselineSource
    partition: int
    offset: int
    command_id: str | None = None


_CONTROL_FIELDS = frozenset(
    {"action", "key", "feature", "source", "id", "requested_at", "signature"}
)


def control_signature(doc: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of a control command: its fields but ``signature``, keys sorted."""
    body = msgspec.json.encode({k: v for k, v in doc.items() if k != "signature"}, order="sorted")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class ControlParser:
    """Validates control commands against the configured features and reference file."""

    def __init__(self, settings: Settings) -> None:
        self.features = (*settings.features, *settings.categorical_features)
        self.categorical_features = settings.categorical_features
        self.has_reference_file = bool(settings.reference_file)
        self.max_bytes = settings.max_message_bytes
        self.signing_key = settings.control_signing_key()

    def parse(
        self, raw: bytes | None, *, partition: int = 0, offset: int = 0
    ) -> ControlCommand | Invalid:
        """Parse one control message; never raises."""

        def invalid(reason: str, detail: str) -> Invalid:
            return Invalid(reason, detail[:200], partition, offset)

        if raw is None:
            return invalid("invalid_json", "empty message (tombstone)")
        if len(raw) > self.max_bytes:
            return invalid("oversized", f"{len(raw)} bytes > limit {self.max_bytes}")
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return invalid("invalid_json", str(exc))
        if not isinstance(doc, dict):
            return invalid("not_an_object", f"JSON {type(doc).__name__}")
        unknown = sorted(set(doc) - _CONTROL_FIELDS)
        if unknown:
            return invalid("bad_field", f"unknown field(s) {unknown}")
        if self.signing_key is not None:
            signature = doc.get("signature")
            if not isinstance(signature, str):
                return invalid("unsigned", "control_signing_key_file is set: commands are signed")
            if not hmac.compare_digest(signature, control_signature(doc, self.signing_key)):
                return invalid("bad_signature", "HMAC-SHA256 does not match")
        action = doc.get("action")
        if action != "rebaseline":
            return invalid("unknown_action", f"action {action!r}; known: 'rebaseline'")
        for name in ("key", "feature", "id"):
            value = doc.get(name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                return invalid(
                    "bad_field", f"{name} must be a non-empty string or null, got {value!r}"
                )
        key, feature, command_id = doc.get("key"), doc.get("feature"), doc.get("id")
        if feature is not None and feature not in self.features and feature != ACCURACY_FEATURE:
            known = ", ".join([*self.features, ACCURACY_FEATURE])
            return invalid("unknown_feature", f"feature {feature!r}; monitored: {known}")
        source = doc.get("source", "window")
        if source not in REBASELINE_SOURCES:
            return invalid(
                "bad_source", f"source {source!r}; one of {', '.join(REBASELINE_SOURCES)}"
            )
        if source == "file":
            if not self.has_reference_file:
                return invalid("no_reference_file", "source 'file' but no reference_file is set")
            if feature == ACCURACY_FEATURE or feature in self.categorical_features:
                return invalid(
                    "bad_source", f"the {feature} stream has no file reference; use 'window'"
                )
        return ControlCommand(action, key, feature, source, partition, offset, command_id)
