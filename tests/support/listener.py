"""A TCP listener that is not Kafka: it says nothing, or sends junk.

A closed port is :func:`tests.support.worker.free_port`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

#: What the garbage listener sends: an HTTP error, no Kafka or TLS framing.
GARBAGE = b"HTTP/1.1 400 Bad Request\r\n\r\n" * 8


@contextlib.contextmanager
def listener(reply: bytes | None) -> Iterator[str]:
    """A listener on 127.0.0.1 that accepts connections and holds them open.

    Parameters
    ----------
    reply : bytes or None
        Sent on every connection; None says nothing.

    Yields
    ------
    str
        Its address, ``127.0.0.1:PORT``.
    """
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            if reply is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        for conn in held:
            conn.close()
