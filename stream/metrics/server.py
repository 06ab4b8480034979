"""The Prometheus endpoint: ``/metrics`` over HTTP or HTTPS, optionally behind basic auth.

:func:`start_metrics_server` binds ``metrics_host:metrics_port`` in the worker and hands the
listening socket to a serving process of its own (:mod:`stream.metrics.serving`), which answers
scrapes; the worker renders the registry with prometheus-client's encoders (text format or
OpenMetrics, by the ``Accept`` header) when that process asks, at most once per
``metrics_cache_seconds`` and variant, whatever the number of scrapers. So 200 concurrent
scrapers cost the worker one rendering per interval, not 200 requests' worth of Python work
under its GIL.

The serving process gets its settings (the password included) over a socket pair, never on its
command line or in its environment (the worker's ``DRIFTWATCH_*`` variables are left out of
it). It exits when the worker does (SIGKILL included: it reads the end of its lifeline), and the
worker starts it again if it dies on its own, while the listening socket stays open, so scrapes
wait in the backlog rather than being refused.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from stream.metrics.channel import ChannelClosed, ChannelError, recv_frame, send_frame
from stream.metrics.exposition import filter_names, render
from stream.metrics.pool import bind_listener, server_ssl_context
from stream.settings import Settings

__all__ = ["MetricsServer", "ServingError", "start_metrics_server"]

log = logging.getLogger("driftwatch.metrics")

#: Environment variables of this prefix (driftwatch's settings) are not given to the process.
ENV_PREFIX = "DRIFTWATCH_"
#: Seconds the serving process may take to start and report ready.
START_TIMEOUT_S = 60.0
#: Seconds between restarts of a serving process that died on its own.
RESTART_DELAY_S = 1.0
#: Exit statuses of a serving process stopped by a signal that stops the worker too (a service
#: manager or a terminal signalling the whole process group): the worker is most likely
#: stopping, so the restart waits for :data:`RESTART_DELAY_S` before it says anything.
STOP_STATUSES = frozenset({-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP})


class ServingError(RuntimeError):
    """The serving process could not start.

    Parameters
    ----------
    reason : str
        What it reported, or how it ended.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the metrics serving process did not start: {reason}")
        self.reason = reason


class _Child:
    """One serving process and the worker's ends of its channel and lifeline."""

    def __init__(self, listener: socket.socket, config: dict[str, Any]) -> None:
        self.channel, channel = socket.socketpair()
        self.lifeline, lifeline = socket.socketpair()
        fds = (listener.fileno(), channel.fileno(), lifeline.fileno())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream.metrics.serving", *map(str, fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                # settings come over the channel: none of the worker's DRIFTWATCH_* variables
                # (passwords among them) are passed on
                env={k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
            )
        finally:
            channel.close()
            lifeline.close()
        try:
            send_frame(self.channel, config)
            self.lifeline.settimeout(START_TIMEOUT_S)
            answer, _ = recv_frame(self.lifeline, max_body_bytes=0)
        except (OSError, ChannelError) as exc:
            self.close()
            raise ServingError(f"{exc} (exit status {self.process.poll()})") from None
        if not answer.get("ready"):
            self.close()
            raise ServingError(str(answer.get("error")))

    def close(self) -> None:
        # the process reads end of file on its lifeline and exits; shutting the channel down
        # also wakes the worker's thread blocked reading it
        for sock in (self.lifeline, self.channel):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class MetricsServer:
    """A running metrics endpoint; :meth:`close` stops it.

    The listening socket and the rendering are here; a serving process answers the scrapes.
    """

    def __init__(
        self,
        listener: socket.socket,
        registry: CollectorRegistry,
        config: dict[str, Any],
        *,
        host: str,
        before_render: Callable[[], None] | None = None,
    ) -> None:
        self._listener = listener
        self._registry = registry
        self._before_render = before_render
        self._config = config
        self._closing = False
        self._lock = threading.Lock()  # the child, and one stats request at a time
        self.host = host
        self.tls = bool(config.get("tls_certfile"))
        self.basic_auth = bool(config.get("credentials"))
        self.renderings = 0
        self.restarts = 0
        self._child = _Child(listener, config)
        self._thread = threading.Thread(
            target=self._answer, name=f"driftwatch-metrics-render-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/metrics"

    @property
    def pid(self) -> int:
        """The serving process's id."""
        return self._child.process.pid

    def stats(self) -> dict[str, Any]:
        """The serving process's counters: ``rejected`` (connections over
        ``metrics_max_connections``), ``serving``, ``pending``, ``renderings`` it asked for,
        ``threads``, ``pid``."""
        with self._lock:
            lifeline = self._child.lifeline
            lifeline.settimeout(10.0)
            lifeline.sendall(b"s")
            header, _ = recv_frame(lifeline, max_body_bytes=0)
        header.pop("sizes", None)
        return header

    @property
    def rejected(self) -> int:
        """Connections refused so far because ``metrics_max_connections`` were pending."""
        return int(self.stats()["rejected"])

    def _answer(self) -> None:
        """Render for the serving process, and start it again if it dies on its own."""
        while not self._closing:
            channel = self._child.channel
            try:
                request, _ = recv_frame(channel, max_body_bytes=0)
            except (ChannelClosed, ChannelError, OSError) as exc:
                if self._closing:
                    return
                self._restart(exc)
                continue
            if self._before_render is not None:
                try:
                    self._before_render()
                except Exception:
                    log.exception("updating the metrics before a rendering failed")
            try:
                wanted = filter_names([str(n) for n in request.get("names", ())])
                content_type, body = render(self._registry, str(request.get("accept", "")), wanted)
                self.renderings += 1
            except Exception as exc:
                log.exception("rendering /metrics failed")
                answer: tuple[dict[str, Any], tuple[bytes, ...]] = (
                    {"error": type(exc).__name__},
                    (),
                )
            else:
                answer = ({"content_type": content_type}, (body,))
            try:
                send_frame(channel, answer[0], *answer[1])
            except OSError:
                continue  # the process is gone: the next read says so

    def _restart(self, cause: BaseException) -> None:
        with self._lock:
            old = self._child
            old.close()
            status = old.process.returncode
            said = status not in STOP_STATUSES
            if said:
                log.error(
                    "the metrics serving process ended (exit status %s, %s); starting it again",
                    status,
                    cause,
                )
            while not self._closing:
                time.sleep(RESTART_DELAY_S)
                if self._closing:
                    return  # the worker is stopping: the signal was meant for both
                if not said:
                    said = True
                    log.warning(
                        "the metrics serving process was stopped by signal %d while the worker"
                        " runs; starting it again",
                        -status,
                    )
                try:
                    self._child = _Child(self._listener, self._config)
                except ServingError as exc:
                    log.error("%s; trying again", exc)
                    continue
                self.restarts += 1
                return

    def close(self) -> None:
        """Stop serving and release the port."""
        self._closing = True
        with self._lock:
            self._child.close()
        self._thread.join(timeout=5)
        self._listener.close()

    def __repr__(self) -> str:
        auth = ", basic auth" if self.basic_auth else ""
        return f"<MetricsServer {self.url}{auth}>"


def start_metrics_server(
    settings: Settings,
    registry: CollectorRegistry = REGISTRY,
    *,
    before_render: Callable[[], None] | None = None,
) -> MetricsServer:
    """Serve ``registry`` on ``metrics_host:metrics_port``, with TLS and basic auth if set.

    Renderings are reused for ``metrics_cache_seconds``; at most ``metrics_max_connections``
    connections wait or are being answered, later ones get a fast ``503``. Returns once the
    serving process answers. ``before_render`` (if given) runs before each rendering, in the
    rendering thread (the worker publishes its streams' series then); an exception it raises
    is logged, and the rendering goes on.

    Raises
    ------
    ConfigError
        When the TLS certificate or key cannot be loaded.
    OSError
        When the address cannot be bound.
    ServingError
        When the serving process does not start.
    """
    m = settings.metrics
    if m.tls_certfile:
        server_ssl_context(m.tls_certfile, m.tls_keyfile)  # refused here, naming the setting
    password = m.basic_auth_secret()
    credentials = None
    if m.basic_auth_username and password is not None:
        credentials = base64.b64encode(f"{m.basic_auth_username}:{password}".encode()).decode()
    config = {
        "tls_certfile": m.tls_certfile,
        "tls_keyfile": m.tls_keyfile,
        "credentials": credentials,
        "cache_seconds": m.cache_seconds,
        "max_connections": m.max_connections,
        "log_level": log.getEffectiveLevel(),
    }
    listener = bind_listener(m.host, m.port, m.max_connections)
    try:
        return MetricsServer(listener, registry, config, host=m.host, before_render=before_render)
    except BaseException:
        listener.close()
        raise
