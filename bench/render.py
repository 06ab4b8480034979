"""Render time of the 10,000-series registry: prometheus-client's encoder against the worker's.

Usage::

    .venv/bin/python bench/render.py [--keys 625] [--repeats 7]

Builds the registry of ``bench/scrape.py`` (the worker's :class:`stream.metrics.Metrics`, 625
keys x 4 features published) and times, in the same run and interleaved, one rendering of the
text format 0.0.4 by ``prometheus_client.generate_latest`` and by
:class:`stream.metrics.text_format.TextRenderer` in three states: ``first`` (a new renderer,
every line prefix built), ``unchanged`` (no value set since the last rendering, every line
reused) and ``changed`` (every per-stream value set to a new float before the rendering, every
line formatted again, as in a busy worker). Every rendering is checked equal to
``generate_latest``'s bytes. Prints wall time and CPU time (medians and ranges of the repeats)
and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(1, str(_HERE))

from prometheus_client import CollectorRegistry, Gauge, generate_latest  # noqa: E402
from scrape import build_registry  # noqa: E402

from stream.metrics.text_format import TextRenderer  # noqa: E402


def _touch(registry: CollectorRegistry, step: int) -> None:
    """Set every labelled Gauge series to a new float (as a busy worker does between renders)."""
    for collector in list(registry._collector_to_names):
        if type(collector) is Gauge and collector._labelnames:
            for n, child in enumerate(list(collector._metrics.values())):
                child.set(((n * 7919 + step) % 1000) / 997.0)


def _timed(work: Callable[[], bytes], expected: Callable[[], bytes]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    body = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if body != expected():
        raise AssertionError("the renderer's bytes differ from generate_latest's")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=625, help="keys x 4 features x 4 series")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    registry = build_registry(args.keys)
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(
        f"# bench/render.py: {series} series ({len(body) / 1e6:.2f} MB), {args.repeats} repeats, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    times: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("prometheus-client", "first", "unchanged", "changed")
    }
    renderer = TextRenderer(registry)
    renderer.render()
    for rep in range(args.repeats):
        _touch(registry, rep)

        def oracle() -> bytes:
            return generate_latest(registry)

        times["changed"].append(_timed(renderer.render, oracle))
        times["unchanged"].append(_timed(renderer.render, oracle))
        times["prometheus-client"].append(_timed(oracle, oracle))
        times["first"].append(_timed(TextRenderer(registry).render, oracle))
    base = statistics.median(w for w, _ in times["prometheus-client"])
    print(f"{'renderer':<18} {'wall ms':>8} {'range':>13} {'cpu ms':>7} {'speed-up':>8}")
    for name, rows in times.items():
        walls = [w * 1e3 for w, _ in rows]
        wall = statistics.median(walls)
        cpu = statistics.median(c * 1e3 for _, c in rows)
        print(
            f"{name:<18} {wall:>8.1f} {min(walls):>6.1f}-{max(walls):<6.1f} {cpu:>7.1f} "
            f"{base * 1e3 / wall:>7.1f}x"
        )
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
