"""The pieces of one checkpoint round: its records in bounded chunks, sent a few at a time.

A round encodes the changed keys of its partitions (on the event loop, in slices, while the
consumer's lock keeps the monitor still) into chunks of at most :data:`CHUNK_BYTES`; at most
:data:`IN_FLIGHT_CHUNKS` are being sent at once, so a round's memory stays bounded however
many keys changed. Its markers go out once every chunk has been acknowledged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from stream.worker.clients import Out

__all__ = ["CHUNK_BYTES", "IN_FLIGHT_CHUNKS", "Chunk", "ChunkSender", "RoundStats"]

#: Encoded bytes of key records a round sends at a time (then waits for their acknowledgement).
CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class RoundStats:
    """What one checkpoint round wrote, and the longest it kept the event loop (seconds)."""

    partitions: int
    keys: int = 0
    tombstones: int = 0
    bytes: int = 0
    held: float = 0.0

    def line(self, elapsed: float) -> str:
        """The round's log line (``elapsed`` its duration, commit included)."""
        return (
            f"checkpoint round of {self.partitions} partitions: {self.keys} keys, "
            f"{self.tombstones} tombstones, {self.bytes} bytes in {elapsed:.3f}s "
            f"(event loop held at most {self.held:.3f}s)"
        )


@dataclass(slots=True)
class Chunk:
    """Records to send together, with their checkpoint partitions and encoded size."""

    records: list[Out] = field(default_factory=list)
    targets: list[int | None] = field(default_factory=list)
    size: int = 0

    def add(self, record: Out, target: int) -> None:
        self.records.append(record)
        self.targets.append(target)
        self.size += len(record[2] or b"") + len(record[1] or b"")


#: Chunks of one round being sent at once (the encoding waits for the oldest beyond it).
IN_FLIGHT_CHUNKS = 2


class ChunkSender:
    """Sends a round's chunks, at most :data:`IN_FLIGHT_CHUNKS` at a time.

    Chunks of one round hold distinct keys, so their order between chunks does not matter;
    what must come after all of them (the markers) waits for :meth:`drain`.

    Parameters
    ----------
    send : callable
        Sends one chunk; returns once the broker acknowledged all of it.
    """

    def __init__(self, send: Callable[[Chunk], Awaitable[None]]) -> None:
        self._send = send
        self._pending: collections.deque[asyncio.Task[None]] = collections.deque()

    async def add(self, chunk: Chunk) -> None:
        """Start sending ``chunk`` (after the oldest chunk in flight, if the window is full)."""
        while len(self._pending) >= IN_FLIGHT_CHUNKS:
            await self._pending.popleft()
        self._pending.append(asyncio.ensure_future(self._send(chunk)))

    async def drain(self) -> None:
        """Wait until every chunk was acknowledged (raise the first failure)."""
        while self._pending:
            await self._pending.popleft()

    async def cancel(self) -> None:
        """Stop sending: cancel the chunks in flight."""
        pending, self._pending = list(self._pending), collections.deque()
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
