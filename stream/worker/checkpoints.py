"""Detector state checkpoints in a compacted Kafka topic, consistent with consumer offsets.

Layout: the state of telemetry partition ``p`` lives in partition ``p % N`` of the checkpoint
topic (``N`` its partition count), as records keyed by ``p`` and the kind of record:

- ``<p>/k/<key>``: one key's monitor state (its windows, reference, episodes, offsets);
  a tombstone (no value) once the key has been evicted;
- ``<p>/m``: the *marker* ``{"offset": o, ...}``, written after the key records of a round have
  all been acknowledged: every key of ``p`` then holds exactly the events of ``p`` below ``o``;
- ``<p>/c``: a *claim*, written by a worker when it is given ``p``.

Record values are data only, never code. Each is an envelope::

    b"DWCK" | version (1 byte) | flags (1 byte) | [HMAC-SHA256, 32 bytes] | msgpack payload

whose payload is a map ``{"claim": c, "body": ...}``. Arrays travel as msgpack extension
``1``: one dtype byte and the raw little-endian values. Reading back, a record that does not
decode (bad magic, for instance a pickle; an unknown version; truncated; a malformed body) is
skipped and counted by reason, never executed. With a signing key (``CHECKPOINT_SIGNING_KEY_FILE``)
every record is signed over its topic key and payload, and unsigned or badly signed records
are rejected.

Restoring, a key's body is decoded only if its record wins (:func:`fold_records`): every
record's envelope, signature and claim are checked as it is read (:meth:`CheckpointCodec.open`),
its body only skipped over; after a flood of keys the topic holds many records per key, most of
them superseded.

Versions: a reader accepts every version in :data:`READABLE_VERSIONS` (the current one and the
one before it); new payload fields are added as map entries that older readers ignore, and a
field a newer version adds is optional to its reader, so version ``N`` is readable by ``N+1``.

Fencing: the ``claim`` number orders the writers of a partition. A worker given ``p`` reads the
partition's records, takes the highest claim ``c`` in them and writes claim ``c + 1``; every
record it writes then carries ``c + 1``. Reading back in log order, records of a claim below one
already seen are ignored (their writer had lost the partition); records of a claim above the
latest claim record are rejected (no worker made that claim), and so is a claim more than
:data:`MAX_CLAIM_STEP` above the previous one. Claims are kept in the topic itself: they do not
depend on the consumer group's generation, which starts again low when the group is deleted.

A round writes the keys changed since the previous round, then the marker, then commits ``o``
to the consumer group. A crash half-way leaves the previous marker and some keys that are
further on; restoring replays from the marker and each key skips the events its state already
holds (it records the offset of its latest event), so nothing is applied twice or lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack
import numpy as np

__all__ = [
    "CHECKPOINT_VERSION",
    "ENCODE_SLICE_S",
    "KEY_RECORD",
    "MARKER_RECORD",
    "MAX_CLAIM_STEP",
    "READABLE_VERSIONS",
    "CheckpointCodec",
    "LazyBody",
    "LoopSlices",
    "PartitionCheckpoint",
    "RecordRejected",
    "claim_record",
    "fold_records",
    "key_record",
    "marker_record",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

KEY_RECORD = "k"
MARKER_RECORD = "m"
CLAIM_RECORD = "c"
MAGIC = b"DWCK"
#: The version this worker writes.
CHECKPOINT_VERSION = 1
#: The versions this worker reads: the current one and the one before it.
READABLE_VERSIONS = frozenset({CHECKPOINT_VERSION - 1, CHECKPOINT_VERSION}) - {0}
SIGNED = 0x01
MAC_BYTES = 32
#: Largest jump of a partition's claim number accepted (claims grow by one per assignment).
MAX_CLAIM_STEP = 1_000_000
_ARRAY_EXT = 1
#: dtype codes of arrays on the wire (values little-endian).
_DTYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("<f8"),
    2: np.dtype("<i8"),
    3: np.dtype("<i4"),
    4: np.dtype("<i2"),
    5: np.dtype("i1"),
    6: np.dtype("u1"),
    7: np.dtype("?"),
}
_CODES = {dt.str[1:]: code for code, dt in _DTYPES.items()}


#: Longest a checkpoint round encodes key snapshots before it lets the event loop run.
ENCODE_SLICE_S = 0.02


class LoopSlices:
    """Lets the event loop run between slices of a long synchronous job (a round's encoding).

    A round under a flood of keys encodes hundreds of thousands of snapshots (seconds of CPU);
    done in one go, the consumer's heartbeats and the metrics timer wait for all of it and the
    group session can expire. The round calls :meth:`pause` after each key: every ``slice_s``
    seconds it yields to the loop once. Nothing that changes the monitor runs meanwhile (the
    round holds the consumer's lock, which processing and control commands take too), so the
    ordering is unchanged: the round's key records, then its markers, then the offset commit.

    :attr:`longest` is the longest stretch the job kept the loop (between two yields, or
    between a yield and an :meth:`wait`), the figure a heartbeat has to wait at worst.

    Parameters
    ----------
    slice_s : float
        Seconds of work between two yields.
    clock : callable, optional
        Seconds, monotonic (for tests).

    Examples
    --------
    >>> import asyncio
    >>> ticks = iter(range(100))
    >>> slices = LoopSlices(2.0, clock=lambda: float(next(ticks)))
    >>> async def job() -> int:
    ...     for _ in range(10):
    ...         await slices.pause()
    ...     return slices.yields
    >>> asyncio.run(job())  # every third clock reading starts a new slice
    5
    >>> slices.longest  # seconds from a slice's start to its yield
    2.0
    """

    def __init__(
        self, slice_s: float = ENCODE_SLICE_S, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.slice_s = slice_s
        self._clock = clock
        self._since = clock()
        self._until = self._since + slice_s
        self.yields = 0
        self.longest = 0.0

    async def pause(self) -> None:
        """Yield to the event loop if this slice's time is up (else return at once)."""
        now = self._clock()
        if now >= self._until:
            self.longest = max(self.longest, now - self._since)
            await asyncio.sleep(0)
            self.yields += 1
            self._restart()

    async def wait(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable`` (which lets the loop run): the current slice ends there."""
        self.longest = max(self.longest, self._clock() - self._since)
        try:
            return await awaitable
        finally:
            self._restart()

    def _restart(self) -> None:
        self._since = self._clock()
        self._until = self._since + self.slice_s


class RecordRejected(ValueError):
    """A checkpoint record that is not used; ``reason`` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def key_record(partition: int, key: str) -> bytes:
    """The checkpoint-topic key of ``key``'s state in telemetry partition ``partition``."""
    return f"{partition}/{KEY_RECORD}/{key}".encode()


def marker_record(partition: int) -> bytes:
    """The checkpoint-topic key of partition ``partition``'s marker."""
    return f"{partition}/{MARKER_RECORD}".encode()


def claim_record(partition: int) -> bytes:
    """The checkpoint-topic key of partition ``partition``'s claim."""
    return f"{partition}/{CLAIM_RECORD}".encode()


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        code = _CODES.get(value.dtype.str[1:])
        if code is None or value.ndim != 1:
            raise TypeError(f"cannot write an array of dtype {value.dtype}, shape {value.shape}")
        raw = np.ascontiguousarray(value, dtype=_DTYPES[code]).tobytes()
        return msgpack.ExtType(_ARRAY_EXT, bytes((code,)) + raw)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write a value of type {type(value).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != _ARRAY_EXT or not data:
        raise ValueError(f"unknown extension type {code}")
    dtype = _DTYPES.get(data[0])
    if dtype is None or (len(data) - 1) % dtype.itemsize:
        raise ValueError("malformed array")
    return np.frombuffer(data, dtype=dtype, offset=1)


def _unpack_error(exc: Exception) -> RecordRejected:
    """The rejection of a payload msgpack could not read (``exc``)."""
    incomplete = isinstance(exc, msgpack.OutOfData) or "incomplete" in str(exc)
    return RecordRejected("truncated" if incomplete else "malformed", repr(exc)[:200])


def _unpack(data: bytes | memoryview) -> Any:
    """``data`` read as one msgpack value (arrays as numpy arrays), else :class:`RecordRejected`."""
    try:
        return msgpack.unpackb(
            data, ext_hook=_ext_hook, raw=False, strict_map_key=True, use_list=True
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise _unpack_error(exc) from None


def _claim_of(doc: Any) -> int:
    """The claim of a payload ``doc`` holding a claim and a body, else :class:`RecordRejected`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("claim"), int) or "body" not in doc:
        raise RecordRejected("malformed", "payload without claim and body")
    claim = doc["claim"]
    if isinstance(claim, bool) or claim < 0:
        raise RecordRejected("malformed", f"claim {claim!r}")
    return int(claim)


def _document(payload: memoryview) -> tuple[int, Any]:
    """``(claim, body)`` of a payload, all of it decoded; else :class:`RecordRejected`."""
    doc = _unpack(payload)
    return _claim_of(doc), doc["body"]


class _Unusual(Exception):
    """A payload the scan leaves to :func:`_document` (which says why it is rejected)."""


def _scan(payload: memoryview) -> tuple[Any, int, int]:
    """The claim and where the body is in a payload, the body skipped over, not decoded.

    Raises
    ------
    _Unusual
        If the payload is not a map with one claim and one body ending the payload, or
        msgpack cannot read it (nothing is said about why: :func:`_document` does).
    """
    reader = msgpack.Unpacker(
        raw=False, strict_map_key=True, use_list=True, max_buffer_size=max(len(payload), 1)
    )
    try:
        reader.feed(payload)
        fields: dict[Any, Any] = {}
        body: tuple[int, int] | None = None
        for _ in range(reader.read_map_header()):
            name = reader.unpack()
            if not isinstance(name, str | bytes):
                raise _Unusual(name)
            if name == "body":
                start = reader.tell()
                reader.skip()
                body = (start, reader.tell())
            else:
                fields[name] = reader.unpack()
        if body is None or "claim" not in fields or reader.tell() != len(payload):
            raise _Unusual()
    except (ValueError, TypeError, msgpack.UnpackException):
        raise _Unusual() from None
    return fields["claim"], body[0], body[1]


class LazyBody:
    """A checkpoint record's body, decoded the first time :meth:`value` is called.

    Made by :meth:`CheckpointCodec.open` once the record's envelope, signature and claim have
    been checked; the body is only skipped over then (its msgpack framing checked, nothing
    built). What only building it tells (an unknown extension, a malformed array, bad UTF-8,
    a map key that is not a string) is found by :meth:`value`.

    Parameters
    ----------
    payload : memoryview
        The record's payload.
    start, end : int
        Where the body's msgpack value is in it.
    """

    __slots__ = ("_body", "_end", "_error", "_payload", "_start")

    def __init__(self, payload: memoryview, start: int, end: int) -> None:
        self._payload: memoryview | None = payload
        self._start = start
        self._end = end
        self._body: Any = None
        self._error: RecordRejected | None = None

    @classmethod
    def decoded(cls, body: Any) -> LazyBody:
        """A body decoded already."""
        out = cls(memoryview(b""), 0, 0)
        out._payload, out._body = None, body
        return out

    @property
    def pending(self) -> bool:
        """Whether the body has not been decoded yet."""
        return self._payload is not None

    def value(self) -> Any:
        """The body (decoded once, then cached).

        Raises
        ------
        RecordRejected
            ``malformed`` (or ``truncated``) if the body does not decode, each time asked.
        """
        payload = self._payload
        if payload is not None:
            self._payload = None  # decoded once: the payload is not held any longer
            try:
                self._body = _unpack(payload[self._start : self._end])
            except RecordRejected as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._body


class CheckpointCodec:
    """Encodes and decodes checkpoint record values (see the module docstring).

    Parameters
    ----------
    signing_key : bytes, optional
        HMAC-SHA256 key: records are signed, and records read back must carry a valid
        signature. Without it, records are written unsigned and signatures are not checked.
    """

    def __init__(self, signing_key: bytes | None = None) -> None:
        self._key = signing_key

    def _mac(self, record_key: bytes, head: bytes, payload: bytes | memoryview) -> bytes:
        assert self._key is not None
        mac = hmac.new(self._key, len(record_key).to_bytes(4, "little"), hashlib.sha256)
        for part in (record_key, head, payload):
            mac.update(part)
        return mac.digest()

    def encode(self, record_key: bytes, claim: int, body: Any) -> bytes:
        """The value of a record with topic key ``record_key``."""
        payload = msgpack.packb({"claim": claim, "body": body}, default=_default)
        assert isinstance(payload, bytes)
        flags = 0 if self._key is None else SIGNED
        head = MAGIC + bytes((CHECKPOINT_VERSION, flags))
        mac = b"" if self._key is None else self._mac(record_key, head, payload)
        return head + mac + payload

    def _payload(self, record_key: bytes, value: bytes) -> memoryview:
        """The payload of a record whose envelope (and signature) check out, else
        :class:`RecordRejected`."""
        if value[:4] != MAGIC:
            raise RecordRejected("not_a_checkpoint", f"starts with {value[:8]!r}")
        if len(value) < 6:
            raise RecordRejected("truncated", f"{len(value)} bytes")
        version, flags = value[4], value[5]
        if version not in READABLE_VERSIONS:
            raise RecordRejected(
                "version", f"version {version}, readable {sorted(READABLE_VERSIONS)}"
            )
        start = 6 + (MAC_BYTES if flags & SIGNED else 0)
        if len(value) < start:
            raise RecordRejected("truncated", f"{len(value)} bytes")
        payload = memoryview(value)[start:]
        if self._key is not None:
            if not flags & SIGNED:
                raise RecordRejected("unsigned", "a signing key is set")
            expected = self._mac(record_key, value[:6], payload)
            if not hmac.compare_digest(expected, value[6:start]):
                raise RecordRejected("bad_signature", "HMAC does not match")
        return payload

    def decode(self, record_key: bytes, value: bytes) -> tuple[int, Any]:
        """``(claim, body)`` of a record; raise :class:`RecordRejected` if it is not usable."""
        return _document(self._payload(record_key, value))

    def open(self, record_key: bytes, value: bytes) -> tuple[int, LazyBody]:
        """``(claim, body)`` of a record, its body decoded only when asked for.

        The envelope, the signature and the claim are checked at once, as :meth:`decode`
        checks them (the same :class:`RecordRejected`); the body is skipped over, and decoded
        by :meth:`LazyBody.value`, which raises what only decoding it finds.
        """
        payload = self._payload(record_key, value)
        try:
            claim, start, end = _scan(payload)
            return _claim_of({"claim": claim, "body": None}), LazyBody(payload, start, end)
        except (_Unusual, RecordRejected):
            # decoding all of it rejects the record exactly as decode does
            claim, body = _document(payload)
            return claim, LazyBody.decoded(body)


def marker_body(offset: int, writer: str, keys: int) -> dict[str, Any]:
    """A marker: the next offset to read, who wrote it, when, how many keys changed."""
    return {
        "offset": offset,
        "writer": writer,
        "written_at": round(time.time(), 3),
        "keys_written": keys,
    }


def _marker_offset(body: Any) -> int:
    offset = body.get("offset") if isinstance(body, dict) else None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise RecordRejected("malformed", "marker without a valid offset")
    return offset


@dataclass(slots=True)
class PartitionCheckpoint:
    """The latest checkpoint of one telemetry partition, as read back from the topic."""

    partition: int
    offset: int | None = None  # from the marker: the next offset to read; None: no marker
    writer: str | None = None
    claim: int = 0  # the highest claim accepted (the next owner claims one more)
    keys: dict[str, Any] = field(default_factory=dict)  # key -> state body (latest)


def _rejected(
    rejected: Counter[str], part: PartitionCheckpoint, raw_key: bytes, exc: RecordRejected
) -> None:
    rejected[exc.reason] += 1
    log.warning(
        "partition %d: checkpoint record %r rejected: %s", part.partition, raw_key[:80], exc
    )


def _latest_body(
    candidates: list[tuple[bytes, LazyBody]], part: PartitionCheckpoint, rejected: Counter[str]
) -> Any:
    """The body of a key's latest record that decodes (None: none does, or it is null).

    ``candidates`` are the key's records since its latest tombstone, in log order; only the
    latest is decoded unless its body turns out bad (counted in ``rejected``, as a record
    :meth:`CheckpointCodec.decode` rejects), then the one before it, and so on.
    """
    for raw_key, body in reversed(candidates):
        try:
            return body.value()
        except RecordRejected as exc:
            _rejected(rejected, part, raw_key, exc)
    return None


def fold_records(
    records: Iterable[tuple[bytes | None, bytes | None]],
    partitions: Iterable[int],
    codec: CheckpointCodec,
    rejected: Counter[str] | None = None,
) -> dict[int, PartitionCheckpoint]:
    """The latest state per telemetry partition from (key, value) records in log order.

    Later records win, except those of a claim below one already seen for the partition;
    tombstones delete keys; records of other partitions (sharing a checkpoint partition) are
    skipped; records that do not decode, or are fenced out, are counted in ``rejected`` by
    reason (a bad marker only costs a longer replay, a bad key a fresh start of that key).

    A key record's body is decoded only if it wins (:meth:`CheckpointCodec.open`): of the
    key's records, the latest not fenced out, after its latest tombstone. Should its body not
    decode, it is counted and the key's record before it wins instead (the outcome of reading
    every record with :meth:`CheckpointCodec.decode`). The envelope, signature and claim of
    every record are checked, so a record whose body alone is bad still takes part in the
    fencing, and a bad body in a record that does not win goes unnoticed. Claims and markers
    are decoded whole, as they come.
    """
    records = list(records)
    rejected = Counter() if rejected is None else rejected
    wanted: Mapping[int, PartitionCheckpoint] = {p: PartitionCheckpoint(p) for p in partitions}
    opened: list[tuple[PartitionCheckpoint, bytes, bytes, bytes, int, LazyBody | None]] = []
    latest_claim: dict[int, int] = {}
    key_kind = KEY_RECORD.encode()
    for raw_key, value in records:
        if raw_key is None:
            continue
        head, _, rest = raw_key.partition(b"/")
        try:
            part = wanted.get(int(head))
        except ValueError:
            continue
        if part is None:
            continue
        kind, _, key = rest.partition(b"/")
        if value is None:
            opened.append((part, raw_key, kind, key, -1, None))
            continue
        try:
            if kind == key_kind:
                claim, lazy = codec.open(raw_key, value)
            else:
                claim, whole = codec.decode(raw_key, value)
                lazy = LazyBody.decoded(whole)
        except RecordRejected as exc:
            _rejected(rejected, part, raw_key, exc)
            continue
        if kind == CLAIM_RECORD.encode():
            previous = latest_claim.get(part.partition, 0)
            if claim > previous + MAX_CLAIM_STEP:
                rejected["claim_ahead"] += 1
                log.warning(
                    "partition %d: claim %d refused (previous %d)", part.partition, claim, previous
                )
                continue
            latest_claim[part.partition] = max(previous, claim)
        opened.append((part, raw_key, kind, key, claim, lazy))
    # per partition, per key (in the order of the keys' first record since their tombstone):
    # the records that may win
    candidates: dict[int, dict[str, list[tuple[bytes, LazyBody]]]] = {p: {} for p in wanted}
    for part, raw_key, kind, key, claim, body in opened:
        ceiling = latest_claim.get(part.partition, 0)
        if claim > ceiling:
            rejected["claim_ahead"] += 1
            continue  # no worker claimed the partition with that number
        if claim >= 0:
            if claim < part.claim:
                rejected["fenced"] += 1
                continue  # written by a worker that had already lost the partition
            part.claim = claim
        if kind == key_kind:
            name = key.decode("utf-8", "replace")
            held = candidates[part.partition]
            if body is None:
                held.pop(name, None)
            else:
                held.setdefault(name, []).append((raw_key, body))
        elif kind == MARKER_RECORD.encode() and body is not None:
            marker = body.value()
            if marker is None:
                continue
            try:
                part.offset = _marker_offset(marker)
            except RecordRejected as exc:
                rejected[exc.reason] += 1
                log.warning(
                    "partition %d: %s; replaying from the committed offset", part.partition, exc
                )
                continue
            writer = marker.get("writer")
            part.writer = writer if isinstance(writer, str) else None
    for p, part in wanted.items():
        for name, held_records in candidates[p].items():
            state = _latest_body(held_records, part, rejected)
            if state is not None:
                part.keys[name] = state
    return dict(wanted)
