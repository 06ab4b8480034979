"""The Prometheus endpoint: ``/metrics`` over HTTP or HTTPS, optionally behind basic auth.

prometheus-client's own server takes a certificate but has no authentication, so the worker
serves the registry itself. The handler checks the ``Authorization: Basic ...`` header
(constant-time comparison) and answers from an
:class:`~stream.metrics.exposition.ExpositionCache`: the registry is rendered with
prometheus-client's encoders (text format or OpenMetrics, by the ``Accept`` header; gzip when
asked) at most once per ``metrics_cache_seconds``, whatever the
number of scrapers. Connections are bounded: one thread accepts them into a queue of
``metrics_max_connections`` served by a fixed pool of :data:`SERVER_THREADS` threads; a connection
beyond the bound is answered ``503`` at once (over TLS it is closed: answering would cost a
handshake) and counted. TLS handshakes run in the pool's threads with a timeout, so a silent
client holds one thread for at most :data:`REQUEST_TIMEOUT_S`. Credentials are never logged.
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
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY, CollectorRegistry

from stream.exceptions import ConfigError
from stream.metrics.exposition import ExpositionCache, FilterError
from stream.settings import Settings

__all__ = ["MetricsServer", "server_ssl_context", "start_metrics_server"]

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


class _Server(socketserver.TCPServer):
    """Accepts connections into a bounded queue; :data:`SERVER_THREADS` threads answer them."""

    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        cache: ExpositionCache,
        credentials: bytes | None,
        ssl_context: ssl.SSLContext | None,
        *,
        max_connections: int,
    ) -> None:
        host, port = address
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        self.address_family = infos[0][0]
        self.request_queue_size = max_connections  # the listen backlog waits briefly too
        self.cache = cache
        self.credentials = credentials
        self.ssl_context = ssl_context
        self.rejected = 0
        self.serving = 0  # connections being answered by the pool
        self._serving_lock = threading.Lock()
        self._pending: queue.Queue[tuple[socket.socket, Any] | None] = queue.Queue(max_connections)
        super().__init__(address, _Handler)
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

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

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
        super().server_close()
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


class MetricsServer:
    """A running metrics endpoint (serving in daemon threads); :meth:`close` stops it."""

    def __init__(self, server: _Server, thread: threading.Thread, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.tls = server.ssl_context is not None
        self.basic_auth = server.credentials is not None

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        return self._server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    @property
    def cache(self) -> ExpositionCache:
        """The renderings served (``cache.renderings`` counts them)."""
        return self._server.cache

    @property
    def rejected(self) -> int:
        """Connections refused so far because ``metrics_max_connections`` were pending."""
        return self._server.rejected

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __repr__(self) -> str:
        auth = ", basic auth" if self.basic_auth else ""
        return f"<MetricsServer {self.url}{auth}>"


def start_metrics_server(
    settings: Settings, registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``registry`` on ``metrics_host:metrics_port``, with TLS and basic auth if set.

    Renderings are reused for ``metrics_cache_seconds``; at most ``metrics_max_connections``
    connections wait or are being answered, later ones get a fast ``503``.
    """
    context = None
    if settings.metrics.tls_certfile:
        context = server_ssl_context(settings.metrics.tls_certfile, settings.metrics.tls_keyfile)
    credentials = None
    password = settings.metrics.basic_auth_secret()
    if settings.metrics.basic_auth_username and password is not None:
        credentials = f"{settings.metrics.basic_auth_username}:{password}".encode()
    cache = ExpositionCache(registry, max_age=settings.metrics.cache_seconds)
    server = _Server(
        (settings.metrics.host, settings.metrics.port),
        cache,
        credentials,
        context,
        max_connections=settings.metrics.max_connections,
    )
    thread = threading.Thread(
        target=server.serve_forever, name=f"driftwatch-metrics-{server.server_port}", daemon=True
    )
    thread.start()
    return MetricsServer(server, thread, settings.metrics.host)
