"""The Prometheus endpoint: ``/metrics`` over HTTP or HTTPS, optionally behind basic auth.

Scrapes are answered by a separate serving process (:mod:`stream.metrics.serving`), so that
however many scrapers connect, accepting and answering them never takes this interpreter's GIL
from processing. This process binds the listening socket (a port in use is a
:class:`~stream.exceptions.ConfigError` here, at start), keeps the registry, and renders it with
prometheus-client's encoders in one thread of its own when the serving process asks: at most
once per ``metrics_cache_seconds`` for each format and ``name[]`` filter
(:class:`~stream.metrics.exposition.ExpositionCache`), whatever the number of scrapers. Only the
bytes of a rendering cross the channel (:mod:`stream.metrics.channel`; nothing is pickled). The
serving process ends with this one: when it is closed, exits or is killed.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from stream.exceptions import ConfigError, DriftwatchError
from stream.metrics.channel import MAX_REQUEST_BYTES, Channel, ChannelError
from stream.metrics.exposition import ExpositionCache, FilterError
from stream.metrics.serving import REQUEST_TIMEOUT_S, server_ssl_context
from stream.settings import Settings

__all__ = ["MetricsServer", "ServingProcessError", "ServingStats", "start_metrics_server"]

log = logging.getLogger("driftwatch.metrics")

#: Seconds the serving process may take to start (a fresh interpreter on a busy machine).
START_TIMEOUT_S = 60.0


class ServingProcessError(DriftwatchError):
    """The metrics serving process did not start.

    Parameters
    ----------
    reason : str
        What it reported, or how it ended.
    returncode : int or None
        Its exit status, if it exited.
    """

    def __init__(self, reason: str, returncode: int | None) -> None:
        super().__init__(f"the metrics serving process did not start: {reason}")
        self.reason = reason
        self.returncode = returncode


@dataclass(frozen=True)
class ServingStats:
    """Connections of the serving process: being answered, waiting, refused so far."""

    serving: int
    queued: int
    rejected: int


class MetricsServer:
    """A running metrics endpoint (a serving process and a rendering thread); :meth:`close`.

    Built by :func:`start_metrics_server`.
    """

    def __init__(
        self,
        listener: socket.socket,
        cache: ExpositionCache,
        config: dict[str, Any],
        host: str,
    ) -> None:
        self.host = host
        self.tls = config["tls_certfile"] is not None
        self.basic_auth = config["credentials"] is not None
        self.port = int(listener.getsockname()[1])
        self._cache = cache
        self._closing = False
        self._stats: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stats_lock = threading.Lock()
        self._stats_id = 0
        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(), listener.fileno())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "stream.metrics.serving", *map(str, fds)],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env=_child_environment(),
        )
        theirs.close()
        listener.close()  # the serving process holds it now
        self._channel = Channel(ours, max_bytes=MAX_REQUEST_BYTES)
        try:
            self._channel.send({"op": "config", "parent": os.getpid(), **config})
            self._await_ready()
        except BaseException:
            self._stop()
            raise
        self._thread = threading.Thread(
            target=self._answer, name=f"driftwatch-metrics-{self.port}", daemon=True
        )
        self._thread.start()

    def _await_ready(self) -> None:
        try:
            message = self._channel.receive(timeout=START_TIMEOUT_S)
        except (EOFError, OSError, ChannelError) as exc:
            message = ({"op": "failed", "reason": f"it exited ({exc or 'no answer'})"}, b"")
        if message is None:
            message = ({"op": "failed", "reason": f"no answer in {START_TIMEOUT_S:g} s"}, b"")
        if message[0]["op"] != "ready":
            raise ServingProcessError(str(message[0].get("reason")), self._process.returncode)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    @property
    def pid(self) -> int:
        """The serving process's id."""
        return self._process.pid

    @property
    def cache(self) -> ExpositionCache:
        """The renderings made (``cache.renderings`` counts them)."""
        return self._cache

    def stats(self) -> ServingStats:
        """The serving process's connection counters, asked for now.

        Raises
        ------
        TimeoutError
            When the serving process does not answer within ``REQUEST_TIMEOUT_S``.
        """
        with self._stats_lock:
            self._stats_id += 1
            self._channel.send({"op": "stats", "id": self._stats_id})
            deadline = time.monotonic() + REQUEST_TIMEOUT_S
            while True:
                try:
                    answer = self._stats.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError("the metrics serving process did not answer") from None
                if answer.get("id") == self._stats_id:
                    return ServingStats(answer["serving"], answer["queued"], answer["rejected"])

    @property
    def rejected(self) -> int:
        """Connections refused so far because ``metrics_max_connections`` were pending."""
        return self.stats().rejected

    def _answer(self) -> None:
        """Render what the serving process asks for, until the channel ends."""
        while True:
            try:
                message = self._channel.receive()
            except (EOFError, OSError, ChannelError) as exc:
                if not self._closing:
                    code = self._process.poll()
                    log.error(
                        "the metrics serving process (pid %d) is gone (%s, exit status %s): "
                        "/metrics is not served",
                        self._process.pid,
                        exc or "channel closed",
                        code,
                    )
                return
            assert message is not None  # no timeout
            header, _ = message
            if header["op"] == "render":
                self._render(header)
            elif header["op"] == "stats":
                self._stats.put(header)

    def _render(self, request: dict[str, Any]) -> None:
        accept, names = request.get("accept"), request.get("names")
        answer: dict[str, Any] = {"op": "error", "id": request.get("id"), "status": 400}
        if not isinstance(accept, str) or not (
            isinstance(names, list) and all(isinstance(n, str) for n in names)
        ):
            self._channel.send({**answer, "message": "bad rendering request"})
            return
        try:
            exposition = self._cache.get(accept, names)
        except FilterError as exc:
            self._channel.send({**answer, "message": str(exc)})
            return
        except Exception:
            log.exception("rendering /metrics failed")
            self._channel.send({**answer, "status": 500, "message": "rendering failed"})
            return
        age = time.monotonic() - exposition.rendered_at
        answer = {"op": "exposition", "id": request.get("id"), "age": age}
        self._channel.send({**answer, "content_type": exposition.content_type}, exposition.body)

    def close(self) -> None:
        """Stop serving and release the port (the serving process exits)."""
        self._closing = True
        self._channel.shutdown()
        self._thread.join(timeout=5)
        self._stop()

    def _stop(self) -> None:
        self._channel.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __repr__(self) -> str:
        auth = ", basic auth" if self.basic_auth else ""
        return f"<MetricsServer {self.url}{auth}, serving process {self._process.pid}>"


def _child_environment() -> dict[str, str]:
    """This environment, with the directory holding the ``stream`` package on the path."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """A socket listening on ``host:port``; a :class:`ConfigError` if it cannot be."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError("metrics_host", host, f"cannot resolve it: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)  # the listen backlog waits briefly too
    except OSError as exc:
        sock.close()
        raise ConfigError(
            "metrics_port", port, f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


def start_metrics_server(
    settings: Settings, registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``registry`` on ``metrics_host:metrics_port``, with TLS and basic auth if set.

    Renderings are reused for ``metrics_cache_seconds``; at most ``metrics_max_connections``
    connections wait or are being answered, later ones get a fast ``503``.

    Raises
    ------
    ConfigError
        When the certificate or key cannot be loaded, or the address cannot be listened on.
    ServingProcessError
        When the serving process does not start.
    """
    m = settings.metrics
    certfile = keyfile = None
    if m.tls_certfile:
        server_ssl_context(m.tls_certfile, m.tls_keyfile)  # errors name the setting, here
        certfile = os.path.abspath(m.tls_certfile)
        keyfile = os.path.abspath(m.tls_keyfile) if m.tls_keyfile else None
    credentials = None
    password = m.basic_auth_secret()
    if m.basic_auth_username and password is not None:
        pair = f"{m.basic_auth_username}:{password}".encode()
        credentials = base64.b64encode(pair).decode()
    config = {
        "tls_certfile": certfile,
        "tls_keyfile": keyfile,
        "credentials": credentials,
        "cache_seconds": m.cache_seconds,
        "max_connections": m.max_connections,
        "log_level": log.getEffectiveLevel(),
    }
    listener = _listen(m.host, m.port, m.max_connections)
    cache = ExpositionCache(registry, max_age=m.cache_seconds)
    try:
        return MetricsServer(listener, cache, config, m.host)
    finally:
        listener.close()
