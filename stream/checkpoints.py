"""Detector state checkpoints in a compacted Kafka topic, consistent with consumer offsets.

Layout: the state of telemetry partition ``p`` lives in partition ``p % N`` of the checkpoint
topic (``N`` its partition count), as records keyed by ``p`` and the kind of record:

- ``<p>/k/<key>``: one key's monitor snapshot (its windows, reference, episodes, offsets);
  a tombstone (no value) once the key has been evicted;
- ``<p>/m``: the *marker*, a small JSON document ``{"offset": o, ...}`` written after the key
  snapshots of a round have all been acknowledged: every key of ``p`` then holds exactly the
  events of ``p`` below offset ``o``;
- ``<p>/c``: a *claim*, written by a worker when it is given ``p``.

Every record carries the consumer-group generation of the writer's assignment in the header
``driftwatch-epoch``. Reading back, a record whose epoch is below one already seen for its
partition is ignored: a worker that lost its partitions without noticing (a long pause, an
expired session) cannot overwrite the state of the worker that took them over.

A round writes the keys changed since the previous round, then the marker, then commits ``o``
to the consumer group. A crash half-way leaves the previous marker and some keys that are
further on; restoring replays from the marker and each key skips the events its snapshot
already holds (it records the offset of its latest event), so nothing is applied twice or lost.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KEY_RECORD",
    "MARKER_RECORD",
    "PartitionCheckpoint",
    "decode_marker",
    "encode_marker",
    "fold_records",
    "key_record",
    "marker_record",
]

log = logging.getLogger(__name__)

KEY_RECORD = "k"
MARKER_RECORD = "m"
CLAIM_RECORD = "c"
EPOCH_HEADER = "driftwatch-epoch"
CHECKPOINT_FORMAT = 1


def key_record(partition: int, key: str) -> bytes:
    """The checkpoint-topic key of ``key``'s snapshot in telemetry partition ``partition``."""
    return f"{partition}/{KEY_RECORD}/{key}".encode()


def marker_record(partition: int) -> bytes:
    """The checkpoint-topic key of partition ``partition``'s marker."""
    return f"{partition}/{MARKER_RECORD}".encode()


def claim_record(partition: int) -> bytes:
    """The checkpoint-topic key of partition ``partition``'s claim."""
    return f"{partition}/{CLAIM_RECORD}".encode()


def epoch_of(headers: Iterable[tuple[str, bytes]] | None) -> int:
    """The writer's epoch from a record's headers (-1 when absent or unreadable)."""
    for name, value in headers or ():
        if name == EPOCH_HEADER:
            try:
                return int(value)
            except ValueError:
                return -1
    return -1


def encode_marker(offset: int, writer: str, keys: int) -> bytes:
    """A marker value: the next offset to read, who wrote it, when, how many keys changed."""
    doc = {
        "format": CHECKPOINT_FORMAT,
        "offset": offset,
        "writer": writer,
        "written_at": round(time.time(), 3),
        "keys_written": keys,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_marker(value: bytes) -> dict[str, Any]:
    """Parse a marker; raise ValueError if it is not one this version can use."""
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"checkpoint marker is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"unknown checkpoint marker format: {value[:200]!r}")
    offset = doc.get("offset")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"checkpoint marker without a valid offset: {value[:200]!r}")
    return doc


@dataclass(slots=True)
class PartitionCheckpoint:
    """The latest checkpoint of one telemetry partition, as read back from the topic."""

    partition: int
    offset: int | None = None  # from the marker: the next offset to read; None: no marker
    writer: str | None = None
    epoch: int = -1  # the highest writer epoch seen
    keys: dict[str, bytes] = field(default_factory=dict)  # key -> snapshot (latest)


def fold_records(
    records: Iterable[tuple[bytes | None, bytes | None, int]], partitions: Iterable[int]
) -> dict[int, PartitionCheckpoint]:
    """The latest state per telemetry partition from (key, value, epoch) records in log order.

    Later records win, except those of an epoch below one already seen for the partition;
    tombstones delete keys; records of other partitions (sharing a checkpoint partition) and
    unreadable markers are skipped (a bad marker only costs a longer replay).
    """
    wanted: Mapping[int, PartitionCheckpoint] = {p: PartitionCheckpoint(p) for p in partitions}
    for raw_key, value, epoch in records:
        if raw_key is None:
            continue
        head, _, rest = raw_key.partition(b"/")
        try:
            part = wanted.get(int(head))
        except ValueError:
            continue
        if part is None:
            continue
        if epoch < part.epoch:
            continue  # written by a worker that had already lost the partition
        part.epoch = epoch
        kind, _, key = rest.partition(b"/")
        if kind == KEY_RECORD.encode():
            name = key.decode("utf-8", "replace")
            if value is None:
                part.keys.pop(name, None)
            else:
                part.keys[name] = value
        elif kind == MARKER_RECORD.encode() and value is not None:
            try:
                doc = decode_marker(value)
            except ValueError as exc:
                log.warning(
                    "partition %d: %s; replaying from the committed offset", part.partition, exc
                )
                continue
            part.offset = doc["offset"]
            part.writer = doc.get("writer")
    return dict(wanted)
