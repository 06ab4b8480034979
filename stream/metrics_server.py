"""The Prometheus endpoint: ``/metrics`` over HTTP or HTTPS, optionally behind basic auth.

prometheus-client's own server takes a certificate but has no authentication, so the worker
serves the registry itself: a threaded HTTP server whose handler checks the
``Authorization: Basic ...`` header (constant-time comparison) before rendering the registry
with prometheus-client's encoders (text format or OpenMetrics, by the ``Accept`` header; gzip
when asked). TLS handshakes run in the request's thread, so a silent client cannot block the
server. Credentials are never logged.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import logging
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from stream.exceptions import ConfigError
from stream.settings import Settings

__all__ = ["MetricsServer", "server_ssl_context", "start_metrics_server"]

log = logging.getLogger("driftwatch.metrics")

REALM = "driftwatch metrics"
REQUEST_TIMEOUT_S = 30.0


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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        credentials: bytes | None,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        host, port = address
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        self.address_family = infos[0][0]
        self.registry = registry
        self.credentials = credentials
        self.ssl_context = ssl_context
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks the host name up (socket.getfqdn): not needed.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed handshakes, resets and timeouts from clients: not worth a traceback.
        log.debug("metrics request from %s failed", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S
    server_version = "driftwatch"
    sys_version = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

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

    def _respond(self, *, include_body: bool) -> None:
        if not self._authorized():
            log.debug("metrics request from %s: not authorized", self.client_address[0])
            body = b"401 Unauthorized\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if include_body:
                self.wfile.write(body)
            return
        url = urlsplit(self.path)
        if url.path == "/favicon.ico":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        registry: Any = self.server.registry
        names = parse_qs(url.query).get("name[]")
        if names:
            registry = registry.restricted_registry(names)
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(registry)
        except Exception:
            log.exception("rendering /metrics failed")
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if include_body:
            self.wfile.write(body)


class MetricsServer:
    """A running metrics endpoint (serving in a daemon thread); :meth:`close` stops it."""

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
    """Serve ``registry`` on ``metrics_host:metrics_port``, with TLS and basic auth if set."""
    context = None
    if settings.metrics_tls_certfile:
        context = server_ssl_context(settings.metrics_tls_certfile, settings.metrics_tls_keyfile)
    credentials = None
    password = settings.metrics_basic_auth_secret()
    if settings.metrics_basic_auth_username and password is not None:
        credentials = f"{settings.metrics_basic_auth_username}:{password}".encode()
    server = _Server((settings.metrics_host, settings.metrics_port), registry, credentials, context)
    thread = threading.Thread(target=server.serve_forever, name="driftwatch-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread, settings.metrics_host)
