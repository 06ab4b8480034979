"""The HTTP side of ``/metrics``: a bounded pool answering scrapes, with basic auth and TLS.

prometheus-client's own server takes a certificate but has no authentication, so driftwatch
serves the exposition itself. :class:`ScrapePool` accepts connections on a listening socket it is
given into a queue of ``max_connections`` served by a fixed pool of :data:`SERVER_THREADS`
threads; a connection beyond the bound is answered ``503`` at once (over TLS it is closed:
answering would cost a handshake) and counted. TLS handshakes run in the pool's threads with a
timeout, so a silent client holds one thread for at most :data:`REQUEST_TIMEOUT_S`. The handler
checks the ``Authorization: Basic ...`` header (constant-time comparison) and answers from a
cache of renderings (:class:`~stream.metrics.exposition.ExpositionCache` or the serving
process's copy of it). Credentials are never logged.

The worker runs the pool in its serving process (:mod:`stream.metrics.serving`), so answering
scrapes never competes with the event loop for the worker's GIL.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import queue
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from stream.exceptions import ConfigError
from stream.metrics.exposition import Exposition, FilterError

__all__ = [
    "BUSY_RESPONSE",
    "REQUEST_TIMEOUT_S",
    "SERVER_THREADS",
    "Renderings",
    "ScrapePool",
    "bind_listener",
    "server_ssl_context",
]

log = logging.getLogger("driftwatch.metrics")

REALM = "driftwatch metrics"
#: Seconds a connection may take to finish its TLS handshake, send its request, read the answer.
REQUEST_TIMEOUT_S = 10.0
#: Threads serving requests (the rendering is shared, so a few suffice).
SERVER_THREADS = 4
#: The answer to a connection beyond ``metrics_max_connections``.
BUSY_RESPONSE = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\nContent-Length: 29\r\nConnection: close\r\n\r\n"
    b"503 too many scrapes at once\n"
)


class Renderings(Protocol):
    """What the pool answers from: the current rendering for a request."""

    def get(
        self, accept: str, names: list[str] | None = None, *, gzipped: bool = False
    ) -> Exposition: ...


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


def bind_listener(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6, as ``host`` resolves) and listening.

    Connections made before anyone accepts wait in the kernel's backlog of ``backlog``.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class ScrapePool(socketserver.BaseServer):
    """Answers the connections of a listening socket: a bounded queue, :data:`SERVER_THREADS`
    threads.

    Parameters
    ----------
    listener : socket.socket
        A bound, listening TCP socket (:func:`bind_listener`); the pool owns it from now on.
    cache : Renderings
        Where the answers come from.
    credentials : bytes, optional
        ``user:password`` that basic auth requires; ``None`` for no authentication.
    ssl_context : ssl.SSLContext, optional
        Serve HTTPS with it.
    max_connections : int
        Connections that may wait or be answered at once; later ones get :data:`BUSY_RESPONSE`.
    """

    def __init__(
        self,
        listener: socket.socket,
        cache: Renderings,
        credentials: bytes | None,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int,
    ) -> None:
        address = listener.getsockname()
        super().__init__(address, _Handler)
        self.socket = listener
        self.server_name = str(address[0])
        self.server_port = int(address[1])
        self.cache = cache
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.rejected = 0
        self.serving = 0  # connections being answered by the pool
        self._serving_lock = threading.Lock()
        self._pending: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(max_connections)
        self._workers = [
            threading.Thread(
                target=self._serve_queue,
                name=f"driftwatch-metrics-{self.server_port}-{i}",
                daemon=True,
            )
            for i in range(SERVER_THREADS)
        ]
        for worker in self._workers:
            worker.start()

    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[socket.socket, Any]:
        return self.socket.accept()

    @property
    def pending(self) -> int:
        """Connections accepted and waiting for a thread of the pool."""
        return self._pending.qsize()

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
        while (item := self._pending.get()) is not None:
            sock, client_address = item
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

    def server_close(self) -> None:
        self.socket.close()
        while True:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in self._workers:
            self._pending.put(None)
        for worker in self._workers:
            worker.join(timeout=1.0)  # daemon threads: one stuck on a slow client ends with it

    def shutdown_request(self, request: Any) -> None:
        # the request was read whole and the answer written: close, without a shutdown() first
        # (one system call less, see _Handler._respond)
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes, resets and timeouts from clients: not worth a traceback.
        log.debug("metrics request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: ScrapePool
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
            exposition = self.server.cache.get(
                self.headers.get("Accept", ""), parse_qs(url.query).get("name[]"), gzipped=gzipped
            )
        except FilterError as exc:
            self._plain(400, f"400 {exc}\n".encode(), include_body=include_body)
            return
        except Exception:
            log.exception("rendering /metrics failed")
            self.send_error(500)
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
        # status, headers and body in one write: each system call gives the GIL away, and a busy
        # event loop keeps it for up to the switch interval (5 ms) before this thread has it back
        self.wfile.write("\r\n".join(head).encode("latin-1") + (body if include_body else b""))
