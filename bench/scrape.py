"""Scrape latency and processing rate with 200 concurrent scrapers of 10,000 series.

Usage::

    .venv/bin/python bench/scrape.py [--scrapers 200] [--seconds 10] [--interval 1]
        [--repeats 3]

Builds the worker's own :class:`stream.metrics.Metrics` on a fresh registry with 625 keys x 4
features published (10,000 per-stream series, plus the fixed metrics), serves it, and runs a
CPU-bound pure-Python "processing" loop in the main thread (a stand-in for the worker's event
loop; it never releases the GIL, which is the worst case for a server in threads). For each
server and repeat: ``--seconds`` of processing alone, then ``--seconds`` with ``--scrapers``
scrapers in a separate process (asyncio, raw sockets, ``Accept-Encoding: gzip``), each scraping,
reading the whole answer, then waiting for the next multiple of ``--interval`` seconds (so every
interval starts with ``--scrapers`` concurrent scrapes; Prometheus itself scrapes every 15 s).
Prints scrape latency p50/p95/max (connect to last byte), 503s, renderings, and the processing
rate with scrapers over without (the ratio: the loaded phase over the mean of the phases alone
before and after it; ``drift`` is after over before, the machine's own variation).

Servers (``--servers``): ``process`` is :func:`stream.metrics.server.start_metrics_server` at
default settings (a serving process answers scrapes with a bounded pool; the registry is rendered
here once per ``metrics_cache_seconds``, 5 s); ``process-1s`` the same with
``metrics_cache_seconds=1``; ``process-pc`` the same, rendering with prometheus-client's
``generate_latest`` (the worker before :mod:`stream.metrics.text_format`); ``threads`` is the
same pool and cache in this process (the endpoint before the serving process); ``old`` is the
first anchor, the endpoint before that (a thread per connection, rendering and gzip for every
request), kept here only.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from stream.metrics import Metrics, exposition  # noqa: E402
from stream.metrics.exposition import ExpositionCache  # noqa: E402
from stream.metrics.pool import ScrapePool, bind_listener  # noqa: E402
from stream.metrics.server import start_metrics_server  # noqa: E402
from stream.metrics.text_format import TextRenderer  # noqa: E402
from stream.settings import DEFAULT_FEATURES, load_settings  # noqa: E402


def build_registry(keys: int) -> CollectorRegistry:
    """The worker's metrics with ``keys`` x 4 features published (4 series per stream)."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=keys)
    for i in range(keys):
        key = f"agent-{i:05d}"
        for j, feature in enumerate(DEFAULT_FEATURES):
            metrics.set_stream(key, feature, 0.01 * ((i + j) % 97), 0.5, i % 50 == 0, 1.0)
        metrics.set_accuracy(key, 0.9)
        metrics.events_consumed.labels("agent-telemetry").inc(1000)
    for feature in DEFAULT_FEATURES:
        metrics.observations.labels(feature).inc(10**6)
    metrics.processing_latency.observe(0.02)
    return registry


class _OldHandler(BaseHTTPRequestHandler):
    """The anchor: the previous endpoint's work per request (render, gzip when asked)."""

    def do_GET(self) -> None:
        body = generate_latest(self.server.registry)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class OldServer:
    """A thread per connection, rendering per request (the endpoint before the pool and cache)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _OldHandler)
        self._server.daemon_threads = True
        self._server.registry = registry  # type: ignore[attr-defined]
        self.port = self._server.server_port
        self.renderings = "-"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ThreadServer:
    """The pool and the cache in this process, at default settings (4 threads, a queue of 256,
    one rendering per 5 s): the endpoint before the serving process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.cache = ExpositionCache(registry, max_age=5.0)
        self._pool = ScrapePool(
            bind_listener("127.0.0.1", 0, 256), self.cache, None, None, max_connections=256
        )
        self.port = self._pool.server_port
        threading.Thread(target=self._pool.serve_forever, daemon=True).start()

    @property
    def renderings(self) -> str:
        return str(self.cache.renderings)

    def close(self) -> None:
        self._pool.shutdown()
        self._pool.server_close()


class NewServer:
    """:func:`stream.metrics.server.start_metrics_server` at default settings."""

    cache_seconds: float | None = None  # None: the default

    def __init__(self, registry: CollectorRegistry) -> None:
        changes: dict[str, float] = (
            {} if self.cache_seconds is None else {"metrics_cache_seconds": self.cache_seconds}
        )
        settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0, **changes)
        self._server = start_metrics_server(settings, registry)
        self.port = self._server.port
        self.pid = self._server.pid

    @property
    def renderings(self) -> str:
        return str(self._server.renderings)

    def close(self) -> None:
        self._server.close()


class NewServerPC(NewServer):
    """The same with every rendering by prometheus-client's ``generate_latest`` (the worker
    before :class:`~stream.metrics.text_format.TextRenderer`): the anchor for the rendering."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._own = exposition.generate_text
        exposition.generate_text = generate_latest
        super().__init__(registry)

    def close(self) -> None:
        super().close()
        exposition.generate_text = self._own


class NewServer1s(NewServer):
    """The same with ``metrics_cache_seconds=1``: a rendering every second."""

    cache_seconds = 1.0


# --- the scrapers (a separate process, so their CPU does not share the server's GIL) ---------


async def _scrape(port: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /metrics HTTP/1.0\r\nHost: bench\r\nAccept-Encoding: gzip\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data[9:12]) if data.startswith(b"HTTP/") else 0
    return time.perf_counter() - t0, status


async def _scraper(
    port: int, start: float, until: float, interval: float, out: list[tuple[float, int]]
) -> None:
    while time.time() < until:
        try:
            out.append(await asyncio.wait_for(_scrape(port), timeout=60))
        except (TimeoutError, OSError):
            out.append((float("nan"), -1))
        now = time.time()
        await asyncio.sleep(max(0.0, start + (int((now - start) / interval) + 1) * interval - now))


async def _scrapers(
    port: int, count: int, start: float, seconds: float, interval: float
) -> list[tuple[float, int]]:
    await asyncio.sleep(max(0.0, start - time.time()))
    out: list[tuple[float, int]] = []
    await asyncio.gather(
        *(_scraper(port, start, start + seconds, interval, out) for _ in range(count))
    )
    return out


def scraper_process(port: int, count: int, seconds: float, interval: float, conn: Any) -> None:
    conn.send("ready")
    start: float = conn.recv()
    cpu = time.process_time()
    results = asyncio.run(_scrapers(port, count, start, seconds, interval))
    conn.send((results, time.process_time() - cpu))


# --- the processing loop ----------------------------------------------------------------------


def process(seconds: float) -> float:
    """Units of pure-Python work per second for ``seconds`` (the event-loop stand-in)."""
    units = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        acc = 0
        for i in range(2_000):
            acc += i * i % 7
        units += 1
    return units / (time.perf_counter() - t0)


def run(
    make: Callable[[CollectorRegistry], Any],
    registry: CollectorRegistry,
    scrapers: int,
    seconds: float,
    interval: float,
) -> dict[str, Any]:
    server = make(registry)
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=scraper_process, args=(server.port, scrapers, seconds, interval, child)
    )
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the scrapers' process did not start")
        assert parent.recv() == "ready"  # the scrapers' process has started, and idles
        alone = process(seconds)
        start = time.time() + 0.2
        parent.send(start)
        time.sleep(max(0.0, start - time.time()))
        own, serving = os.times(), _cpu_of(getattr(server, "pid", None))
        loaded = process(seconds)
        own_after, serving_after = os.times(), _cpu_of(getattr(server, "pid", None))
        if not parent.poll(seconds + 120):
            raise RuntimeError("the scrapers' process did not report")
        results, scrapers_cpu = parent.recv()
        proc.join()
        # the loop alone again, after: the machine's own drift shows as the two differing, and
        # their mean brackets the loaded phase
        after = process(seconds)
        return {
            "alone": (alone + after) / 2,
            "drift": after / alone,
            "loaded": loaded,
            "results": results,
            "renderings": server.renderings,
            # CPU seconds a second of the loaded phase: this process (the loop, its own
            # rendering and, for the servers in threads, the serving), the serving process
            # and the scrapers
            "cpu_here": (own_after.user + own_after.system - own.user - own.system) / seconds,
            "cpu_serving": (serving_after - serving) / seconds,
            "cpu_scrapers": scrapers_cpu / seconds,
        }
    finally:
        server.close()


def _cpu_of(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by process ``pid``; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scrapers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between scrape bursts")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keys", type=int, default=625, help="keys x 4 features x 4 series")
    ap.add_argument(
        "--servers",
        default="old,threads,process",
        help="comma-separated, of old, threads, process, process-pc, process-1s",
    )
    args = ap.parse_args()
    registry = build_registry(args.keys)
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    t0 = time.perf_counter()
    for _ in range(5):
        generate_latest(registry)
    render = (time.perf_counter() - t0) / 5
    renderer = TextRenderer(registry)
    assert renderer.render() == body
    t0 = time.perf_counter()
    for _ in range(5):
        renderer.render()
    fast = (time.perf_counter() - t0) / 5
    print(
        f"# bench/scrape.py: {series} series ({len(body) / 1e6:.2f} MB, "
        f"{len(gzip.compress(body, 6)) / 1e3:.0f} KB gzip, one rendering {render * 1e3:.0f} ms by "
        f"generate_latest, {fast * 1e3:.0f} ms by the worker's TextRenderer, values unchanged), "
        f"{args.scrapers} scrapers every {args.interval:g} s, {args.seconds:g} s per phase, "
        f"{args.repeats} repeats, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(
        f"{'server':<10} {'rep':>3} {'scrapes':>7} {'503':>5} {'failed':>6} {'p50 s':>7} "
        f"{'p95 s':>7} {'max s':>7} {'renders':>7} {'proc/s alone':>12} {'proc/s scraped':>14} "
        f"{'ratio':>6} {'drift':>6} {'cpu here':>8} {'serving':>7} {'scrapers':>8}"
    )
    known: dict[str, Callable[[CollectorRegistry], Any]] = {
        "old": OldServer,
        "threads": ThreadServer,
        "process": NewServer,
        "process-1s": NewServer1s,
        "process-pc": NewServerPC,
    }
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = sorted(set(names) - set(known))
    if unknown:
        ap.error(f"unknown servers {unknown}; known: {sorted(known)}")
    makers = {name: known[name] for name in names}
    summary: dict[str, list[tuple[float, float, float]]] = {name: [] for name in makers}
    for rep in range(args.repeats):
        for name in makers:
            r = run(makers[name], registry, args.scrapers, args.seconds, args.interval)
            ok = [t for t, status in r["results"] if status == 200]
            busy = sum(1 for _, status in r["results"] if status == 503)
            failed = sum(1 for _, status in r["results"] if status not in (200, 503))
            ratio = r["loaded"] / r["alone"]
            p50, p95 = quantile(ok, 0.5), quantile(ok, 0.95)
            summary[name].append((p50, p95, ratio))
            print(
                f"{name:<10} {rep:>3} {len(r['results']):>7} {busy:>5} {failed:>6} {p50:>7.3f} "
                f"{p95:>7.3f} {max(ok, default=float('nan')):>7.3f} {r['renderings']:>7} "
                f"{r['alone']:>12.0f} {r['loaded']:>14.0f} {ratio:>6.3f} {r['drift']:>6.3f} "
                f"{r['cpu_here']:>8.2f} {r['cpu_serving']:>7.2f} {r['cpu_scrapers']:>8.2f}"
            )
    print("# medians of the repeats")
    for name, rows in summary.items():
        p50 = statistics.median(r[0] for r in rows)
        p95 = statistics.median(r[1] for r in rows)
        ratio = statistics.median(r[2] for r in rows)
        print(f"{name:<10} p50 {p50:.3f} s  p95 {p95:.3f} s  processing ratio {ratio:.3f}")
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
