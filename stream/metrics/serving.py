"""The metrics serving process: answers scrapes of ``/metrics`` outside the worker's GIL.

The worker (:class:`stream.metrics.server.MetricsServer`) binds the port, starts this module as
``python -m stream.metrics.serving LISTENER CHANNEL LIFELINE`` (three inherited file
descriptors) and sends its settings as the first frame on ``CHANNEL``
(:mod:`stream.metrics.channel`). This process then answers every scrape with a
:class:`~stream.metrics.pool.ScrapePool` from its own
:class:`~stream.metrics.exposition.ExpositionCache`: a rendering older than
``metrics_cache_seconds`` is asked of the worker over ``CHANNEL`` (one request at a time;
concurrent scrapers wait for it), and gzip is computed here. The worker's only costs are then one
rendering per interval and copying its bytes into a socket; parsing requests, TLS, basic auth,
compression and writing to scrapers all run here, on their own GIL.

``LIFELINE`` carries the pool's counters when the worker asks (one byte ``s``) and tells this
process that the worker is gone: when it reads end of file (the worker exited or was killed),
the process exits at once.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from stream.metrics.channel import ChannelClosed, recv_frame, send_frame
from stream.metrics.exposition import ExpositionCache
from stream.metrics.pool import ScrapePool, server_ssl_context

__all__ = ["MAX_BODY_BYTES", "STATS_REQUEST", "WorkerRenderer", "main"]

log = logging.getLogger("driftwatch.metrics")

#: Longest rendering accepted from the worker (10,000 series are about 1 MB).
MAX_BODY_BYTES = 256 * 1024 * 1024
#: What the worker writes on the lifeline to ask for the pool's counters.
STATS_REQUEST = b"s"


class WorkerRenderer:
    """Asks the worker for a rendering over ``channel``: the cache's renderer in this process.

    The cache calls it under its lock, so one request is on the channel at a time.
    """

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel

    def __call__(self, accept: str, wanted: tuple[str, ...]) -> tuple[str, bytes]:
        try:
            send_frame(self.channel, {"accept": accept, "names": list(wanted)})
            header, bodies = recv_frame(self.channel, max_body_bytes=MAX_BODY_BYTES)
        except (ChannelClosed, OSError):
            _worker_gone()
            raise
        if "error" in header or len(bodies) != 1:
            raise RuntimeError(f"the worker could not render /metrics: {header.get('error')}")
        return str(header["content_type"]), bodies[0]


def _worker_gone() -> None:
    # nothing to flush or close: the scrapers see their connections end
    os._exit(0)


def _pool(config: dict[str, Any], listener: socket.socket, channel: socket.socket) -> ScrapePool:
    certfile = config.get("tls_certfile")
    ssl_context = server_ssl_context(certfile, config.get("tls_keyfile")) if certfile else None
    token = config.get("credentials")
    credentials = base64.b64decode(token) if token else None
    cache = ExpositionCache(WorkerRenderer(channel), max_age=float(config["cache_seconds"]))
    return ScrapePool(
        listener,
        cache,
        credentials,
        ssl_context,
        max_connections=int(config["max_connections"]),
    )


def stats(pool: ScrapePool) -> dict[str, Any]:
    """The pool's counters, as the lifeline reports them."""
    cache = pool.cache
    return {
        "rejected": pool.rejected,
        "serving": pool.serving,
        "pending": pool.pending,
        "renderings": cache.renderings if isinstance(cache, ExpositionCache) else 0,
        "threads": threading.active_count(),
        "pid": os.getpid(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until the worker is gone (see the module's description)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or not all(a.isdigit() for a in args):
        print("usage: python -m stream.metrics.serving LISTENER CHANNEL LIFELINE", file=sys.stderr)
        return 2
    listener, channel, lifeline = (socket.socket(fileno=int(a)) for a in args)
    try:
        config, _ = recv_frame(channel, max_body_bytes=0)
    except (ChannelClosed, OSError):
        return 0
    logging.basicConfig(
        level=int(config.get("log_level", logging.WARNING)),
        format="%(asctime)s %(levelname)s %(name)s [metrics serving] %(message)s",
    )
    try:
        pool = _pool(config, listener, channel)
    except Exception as exc:
        send_frame(lifeline, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    threading.Thread(
        target=pool.serve_forever, name="driftwatch-metrics-accept", daemon=True
    ).start()
    send_frame(lifeline, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            request = lifeline.recv(1)
        except OSError:
            request = b""
        if request != STATS_REQUEST:
            _worker_gone()
        send_frame(lifeline, stats(pool))


if __name__ == "__main__":
    sys.exit(main())
