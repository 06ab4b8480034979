"""Messages between the worker and its metrics serving process.

The two processes share a Unix socket pair wrapped in
:class:`multiprocessing.connection.Connection`, used with ``send_bytes``/``recv_bytes`` only
(nothing is pickled). A message is one frame: four bytes giving the length of a JSON header, the
header (an object with an ``"op"`` member), then an optional body of raw bytes (an exposition).

The serving process asks ``{"op": "render", "id", "accept", "names"}`` and the worker answers
``{"op": "exposition", "id", "content_type", "age"}`` with the body, or
``{"op": "error", "id", "status", "message"}``; the worker asks ``{"op": "stats", "id"}`` and the
serving process answers with its counters. At start the worker sends ``{"op": "config", ...}``
and the serving process answers ``{"op": "ready"}`` or ``{"op": "failed", "reason"}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["MAX_REQUEST_BYTES", "Channel", "ChannelError"]

#: Longest message the worker reads from the serving process (its requests are small: at most
#: 64 filter names of 256 characters and an ``Accept`` header).
MAX_REQUEST_BYTES = 1 << 20
_HEADER_LENGTH = 4


class ChannelError(ValueError):
    """A frame that is not a message of this protocol.

    Parameters
    ----------
    size : int
        Length of the frame in bytes.
    reason : str
        What is wrong with it.
    """

    def __init__(self, size: int, reason: str) -> None:
        super().__init__(f"bad message of {size} bytes: {reason}")
        self.size = size
        self.reason = reason


class Channel:
    """One end of the socket pair: framed JSON headers with optional bodies.

    Parameters
    ----------
    sock : socket.socket
        This end of the pair (the channel owns it from now on).
    max_bytes : int, optional
        Longest frame accepted by :meth:`receive` (``None``: no bound).
    """

    def __init__(self, sock: socket.socket, *, max_bytes: int | None = None) -> None:
        self._sock = sock
        self._conn = Connection(os.dup(sock.fileno()))
        self._max_bytes = max_bytes
        self._send_lock = threading.Lock()

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        """Send one message (thread-safe; a large body is written in a few system calls)."""
        encoded = json.dumps(header, separators=(",", ":")).encode()
        frame = len(encoded).to_bytes(_HEADER_LENGTH, "big") + encoded + body
        with self._send_lock:
            self._conn.send_bytes(frame)

    def receive(self, timeout: float | None = None) -> tuple[dict[str, Any], bytes] | None:
        """The next message, or ``None`` if none came within ``timeout`` seconds.

        Raises
        ------
        EOFError
            When the other process closed its end (or died).
        ChannelError
            When the frame is not a message of this protocol.
        """
        if timeout is not None and not self._conn.poll(timeout):
            return None
        try:
            frame = self._conn.recv_bytes(self._max_bytes)
        except OSError as exc:
            if "bad message length" in str(exc):
                raise ChannelError(-1, f"longer than {self._max_bytes} bytes") from None
            raise
        size = int.from_bytes(frame[:_HEADER_LENGTH], "big")
        if len(frame) < _HEADER_LENGTH + size:
            raise ChannelError(len(frame), "shorter than its header")
        try:
            header = json.loads(frame[_HEADER_LENGTH : _HEADER_LENGTH + size])
        except ValueError as exc:
            raise ChannelError(len(frame), f"header is not JSON ({exc})") from None
        if not isinstance(header, dict) or not isinstance(header.get("op"), str):
            raise ChannelError(len(frame), "header is not an object with an op")
        return header, frame[_HEADER_LENGTH + size :]

    def shutdown(self) -> None:
        """End the channel: the other process reads its end, and so does a thread of this one
        blocked in :meth:`receive` (close the channel once that thread is done)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Shut down and release this end."""
        self.shutdown()
        self._conn.close()
        self._sock.close()
