"""Frames between the worker and its metrics serving process: a JSON header, then raw bodies.

A frame is a 4-byte big-endian length, that many bytes of a JSON object (the header), then the
bodies whose lengths the header's ``"sizes"`` lists, back to back. Nothing is pickled: a header
is decoded by msgspec into plain JSON values and a body is bytes. Every length read is checked
against a bound before anything is allocated for it.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import msgspec

__all__ = ["MAX_HEADER_BYTES", "ChannelClosed", "ChannelError", "recv_frame", "send_frame"]

#: Longest header accepted (a request names at most 64 filter names of 256 characters).
MAX_HEADER_BYTES = 64 * 1024
_LENGTH = struct.Struct(">I")


class ChannelError(ValueError):
    """A frame that breaks the format or its bounds.

    Parameters
    ----------
    reason : str
        What was wrong.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"bad frame on the metrics channel: {reason}")
        self.reason = reason


class ChannelClosed(ConnectionError):
    """The other end closed the channel (the process at the other end is gone)."""


def send_frame(sock: socket.socket, header: dict[str, Any], *bodies: bytes) -> None:
    """Write one frame: ``header`` (given ``"sizes"`` of ``bodies``) and the bodies."""
    encoded = msgspec.json.encode({**header, "sizes": [len(b) for b in bodies]})
    if len(encoded) > MAX_HEADER_BYTES:
        raise ChannelError(f"header of {len(encoded)} bytes (at most {MAX_HEADER_BYTES})")
    sock.sendall(_LENGTH.pack(len(encoded)) + encoded)
    for body in bodies:
        sock.sendall(body)


def recv_frame(sock: socket.socket, *, max_body_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """Read one frame: ``(header, bodies)``.

    Raises
    ------
    ChannelClosed
        When the other end closed the channel before a whole frame came.
    ChannelError
        When the header is not a JSON object with a list of sizes, or a length is over its bound
        (``max_body_bytes`` for the bodies together).
    """
    (length,) = _LENGTH.unpack(_recv_exactly(sock, _LENGTH.size))
    if length > MAX_HEADER_BYTES:
        raise ChannelError(f"header of {length} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = msgspec.json.decode(_recv_exactly(sock, length))
    except msgspec.DecodeError as exc:
        raise ChannelError(f"header is not JSON: {exc}") from None
    sizes = header.get("sizes") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
        raise ChannelError("header is not an object with a list of body sizes")
    if sum(sizes) > max_body_bytes:
        raise ChannelError(f"bodies of {sum(sizes)} bytes (at most {max_body_bytes})")
    return header, [_recv_exactly(sock, n) for n in sizes]


def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    buffer = bytearray(count)
    view = memoryview(buffer)
    got = 0
    while got < count:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ChannelClosed("the metrics channel was closed")
        got += n
    return bytes(buffer)
