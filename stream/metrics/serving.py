"""The metrics serving process: answers ``/metrics`` from renderings the worker hands it.

Run as ``python -m stream.metrics.serving CHANNEL_FD LISTEN_FD`` by
:func:`stream.metrics.server.start_metrics_server`, which binds the listening socket and keeps
the registry: this process never sees the registry, only the bytes of its renderings, so
accepting, reading, answering and closing scrape connections (and TLS, and gzip) cost the
worker's interpreter nothing. The worker asks for its configuration first; then every variant
(format and ``name[]`` filter) is fetched from the worker over the channel
(:mod:`stream.metrics.channel`) at most once per ``cache_seconds`` (:class:`WorkerRenderings`)
and answered to every scraper meanwhile, gzip-compressed here at most once per rendering; an
expired rendering is still answered while the next is fetched, so scrapers do not wait for the
worker's rendering (only the first scrape of a variant, or one after twice the interval, does).

The HTTP side checks the ``Authorization: Basic ...`` header (constant-time comparison).
Connections are bounded: one thread accepts them into a queue of ``max_connections`` served by a
fixed pool of :data:`SERVER_THREADS` threads; a connection beyond the bound is answered ``503``
at once (over TLS it is closed: answering would cost a handshake) and counted. TLS handshakes run
in the pool's threads with a timeout, so a silent client holds one thread for at most
:data:`REQUEST_TIMEOUT_S`. Credentials are never logged.

The process ends with the worker: the main thread reads the channel, and leaves when the worker
closes it, dies (the kernel closes its end), or is no longer this process's parent.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import os
import queue
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stream.exceptions import ConfigError
from stream.metrics.channel import Channel, ChannelError
from stream.metrics.exposition import Exposition, FilterError, Renderings, choose_variant

__all__ = [
    "REQUEST_TIMEOUT_S",
    "SERVER_THREADS",
    "RenderingError",
    "WorkerRenderings",
    "main",
    "server_ssl_context",
]

log = logging.getLogger("driftwatch.metrics")

REALM = "driftwatch metrics"
#: Seconds a connection may take to finish its TLS handshake, send its request, read the answer.
REQUEST_TIMEOUT_S = 10.0
#: Seconds to wait for the worker's rendering before answering ``503``.
RENDER_TIMEOUT_S = 10.0
#: Threads serving requests (the rendering is shared, so a few suffice).
SERVER_THREADS = 4
#: The answer to a connection beyond ``max_connections``.
BUSY_RESPONSE = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nContent-Length: 29\r\nConnection: close\r\n\r\n"
    b"503 too many scrapes at once\n"
)


def server_ssl_context(certfile: str, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2+) for ``certfile`` (and ``keyfile``, if separate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_key_password)
    except (OSError, ValueError) as exc:
        name = "metrics_tls_keyfile" if keyfile else "metrics_tls_certfile"
        raise ConfigError(
            name, keyfile or certfile, f"cannot load the certificate and key: {exc}"
        ) from None
    return context


def _no_key_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    raise ValueError("encrypted private keys are not supported")


class RenderingError(RuntimeError):
    """The worker gave no rendering: answered with ``status``.

    Parameters
    ----------
    status : int
        The HTTP status answered (500: the rendering failed, 503: it took too long).
    reason : str
        What happened.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class WorkerRenderings(Renderings):
    """Renderings fetched from the worker over ``channel``, each reused for ``max_age`` seconds.

    A rendering is as old as the worker says it is, so it expires when the worker's own copy
    does; an expired one is answered while the next is fetched (up to twice ``max_age`` old,
    then scrapers wait for the worker, and get ``503`` after ``timeout``). The answers are handed
    in by the thread reading the channel (:meth:`deliver`).

    Parameters
    ----------
    channel : Channel
        The channel to the worker.
    max_age : float
        Seconds a rendering is served (the worker's ``metrics_cache_seconds``).
    timeout : float
        Seconds to wait for the worker's answer.
    """

    def __init__(self, channel: Channel, *, max_age: float, timeout: float = RENDER_TIMEOUT_S):
        super().__init__(max_age=max_age)
        self._channel = channel
        self._timeout = timeout
        self._answers: queue.Queue[tuple[dict[str, Any], bytes]] = queue.Queue()
        self._request_id = 0
        self._refresh_lock = threading.Lock()
        self._refreshing: set[tuple[str, tuple[str, ...]]] = set()

    def get(
        self, accept: str, names: list[str] | None = None, *, gzipped: bool = False
    ) -> Exposition:
        """The latest rendering of a variant; one past ``max_age`` is still answered (up to
        twice that age) while the next is fetched, so scrapers do not wait for the worker."""
        _, content_type, wanted = choose_variant(accept, names)
        entry = self._variants.get((content_type, wanted))
        if entry is None or self.max_age == 0:
            return super().get(accept, names, gzipped=gzipped)
        age = self._clock() - entry.rendered_at
        if age >= self.max_age:
            if not 0 <= age < 2 * self.max_age:
                return super().get(accept, names, gzipped=gzipped)
            with self._refresh_lock:
                start = (content_type, wanted) not in self._refreshing
                self._refreshing.add((content_type, wanted))
            if start:
                threading.Thread(
                    target=self._refresh, args=(accept, content_type, wanted), daemon=True
                ).start()
        if gzipped:
            entry.gzipped()
        return entry

    def _refresh(self, accept: str, content_type: str, wanted: tuple[str, ...]) -> None:
        try:
            super().get(accept, list(wanted), gzipped=True)
        except Exception as exc:  # answered by the next scrape that waits
            log.warning("/metrics: %s", exc)
        finally:
            with self._refresh_lock:
                self._refreshing.discard((content_type, wanted))

    def deliver(self, header: dict[str, Any], body: bytes) -> None:
        """Hand in the worker's answer to a rendering request."""
        self._answers.put((header, body))

    def _render(
        self,
        accept: str,
        encoder: Callable[[Any], bytes],
        content_type: str,
        wanted: tuple[str, ...],
    ) -> Exposition:
        self._request_id += 1  # under the lock of Renderings.get: one request at a time
        request_id = self._request_id
        self._channel.send({"op": "render", "id": request_id, "accept": accept, "names": wanted})
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                header, body = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RenderingError(503, f"no rendering within {self._timeout:g} s") from None
            if header.get("id") == request_id:  # else a late answer to an abandoned request
                break
        if header["op"] != "exposition":
            raise RenderingError(int(header.get("status", 500)), str(header.get("message")))
        age = max(0.0, float(header["age"]))
        return Exposition(str(header["content_type"]), body, self._clock() - age)


class _Server(socketserver.BaseServer):
    """Accepts connections into a bounded queue; :data:`SERVER_THREADS` threads answer them."""

    def __init__(
        self,
        listener: socket.socket,
        renderings: Renderings,
        credentials: bytes | None,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int,
    ) -> None:
        self.socket = listener
        host, port = listener.getsockname()[:2]
        super().__init__((host, port), _Handler)
        self.server_name, self.server_port = str(host), int(port)
        self.renderings = renderings
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.rejected = 0
        self.serving = 0  # connections being answered by the pool
        self._serving_lock = threading.Lock()
        self._pending: queue.Queue[tuple[socket.socket, Any]] = queue.Queue(max_connections)
        for i in range(SERVER_THREADS):
            threading.Thread(target=self._serve_queue, name=f"serve-{i}", daemon=True).start()

    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[socket.socket, Any]:
        return self.socket.accept()

    def stats(self) -> dict[str, int]:
        """Connections being answered, waiting, and refused so far."""
        return {"serving": self.serving, "queued": self._pending.qsize(), "rejected": self.rejected}

    def process_request(self, request: Any, client_address: Any) -> None:
        # called in the accepting thread: never block it
        try:
            self._pending.put_nowait((request, client_address))
        except queue.Full:
            self.rejected += 1
            log.debug("metrics request from %s: over the connection bound", client_address[0])
            if self.ssl_context is None:
                request.setblocking(False)
                with contextlib.suppress(OSError):
                    request.send(BUSY_RESPONSE)
            self.shutdown_request(request)

    def _serve_queue(self) -> None:
        while True:
            sock, client_address = self._pending.get()
            with self._serving_lock:
                self.serving += 1
            try:
                sock.settimeout(REQUEST_TIMEOUT_S)
                if self.ssl_context is not None:
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                self.finish_request(sock, client_address)
            except Exception:
                self.handle_error(sock, client_address)
            finally:
                self.shutdown_request(sock)
                with self._serving_lock:
                    self.serving -= 1

    def shutdown_request(self, request: Any) -> None:
        # the request was read whole and the answer written: close, without a shutdown() first
        # (one system call less)
        request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes, resets and timeouts from clients: not worth a traceback.
        log.debug("metrics request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "driftwatch"
    sys_version = ""

    def do_GET(self) -> None:
        self._respond(include_body=True)

    def do_HEAD(self) -> None:
        self._respond(include_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape is noise; failures are logged at debug level

    def _authorized(self) -> bool:
        expected = self.server.credentials
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, expected)

    def _plain(self, status: int, body: bytes, *, include_body: bool) -> None:
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        if status == 503:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if include_body:
            self.wfile.write(body)

    def _respond(self, *, include_body: bool) -> None:
        if not self._authorized():
            log.debug("metrics request from %s: not authorized", self.client_address[0])
            self._plain(401, b"401 Unauthorized\n", include_body=include_body)
            return
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":
            self._plain(404, b"", include_body=include_body)
            return
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        try:
            exposition = self.server.renderings.get(
                self.headers.get("Accept", ""), parse_qs(url.query).get("name[]"), gzipped=gzipped
            )
        except FilterError as exc:
            self._plain(400, f"400 {exc}\n".encode(), include_body=include_body)
            return
        except RenderingError as exc:
            log.warning("/metrics: %s", exc.reason)
            self._plain(exc.status, f"{exc}\n".encode(), include_body=include_body)
            return
        body = exposition.gzipped() if gzipped else exposition.body
        head = [
            f"{self.protocol_version} 200 OK",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {exposition.content_type}",
            *(["Content-Encoding: gzip"] if gzipped else []),
            f"Content-Length: {len(body)}",
            "",
            "",
        ]
        # status, headers and body in one write
        self.wfile.write("\r\n".join(head).encode("latin-1") + (body if include_body else b""))


def _start(
    config: dict[str, Any], channel: Channel, listener: socket.socket
) -> tuple[_Server, WorkerRenderings]:
    """The server and its threads, as the worker's configuration says."""
    logging.basicConfig(
        level=int(config["log_level"]),
        format="%(asctime)s %(levelname)s driftwatch metrics server[%(process)d]: %(message)s",
    )
    certfile, keyfile = config["tls_certfile"], config["tls_keyfile"]
    context = server_ssl_context(certfile, keyfile) if certfile else None
    credentials = config["credentials"]
    renderings = WorkerRenderings(channel, max_age=float(config["cache_seconds"]))
    server = _Server(
        listener,
        renderings,
        None if credentials is None else base64.b64decode(credentials),
        context,
        max_connections=int(config["max_connections"]),
    )
    threading.Thread(target=server.serve_forever, name="accept", daemon=True).start()
    return server, renderings


def _relay(channel: Channel, server: _Server, renderings: WorkerRenderings, parent: int) -> None:
    """Read the worker's messages until it closes the channel or dies."""
    while True:
        try:
            message = channel.receive(timeout=1.0)
        except (EOFError, OSError, ChannelError):
            return
        if message is None:
            if os.getppid() != parent:  # another process holds the worker's end: it died
                return
            continue
        header, body = message
        if header["op"] in ("exposition", "error"):
            renderings.deliver(header, body)
        elif header["op"] == "stats":
            channel.send({"op": "stats", "id": header.get("id"), **server.stats()})


def main(argv: list[str] | None = None) -> None:
    """Serve until the worker goes: ``CHANNEL_FD LISTEN_FD`` are inherited descriptors."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C stops the worker, which stops us
    channel_fd, listen_fd = (int(a) for a in (argv if argv is not None else sys.argv[1:]))
    channel = Channel(socket.socket(fileno=channel_fd))
    listener = socket.socket(fileno=listen_fd)
    received = channel.receive(timeout=60.0)
    if received is None or received[0]["op"] != "config":
        sys.exit(2)
    config = received[0]
    try:
        server, renderings = _start(config, channel, listener)
    except Exception as exc:
        channel.send({"op": "failed", "reason": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
    channel.send({"op": "ready"})
    _relay(channel, server, renderings, parent=int(config["parent"]))
    listener.close()
    logging.shutdown()
    os._exit(0)  # the pool's threads may be waiting on clients: do not wait for them


if __name__ == "__main__":
    main()
