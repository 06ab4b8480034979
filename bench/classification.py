"""Cost of the rolling macro precision/recall/F1 on the monitor's labelled-event path.

Usage::

    nice -n 10 .venv/bin/python bench/classification.py [--events 100000] [--repeats 5]

Parses ``--events`` simulated telemetry events (4 agents, every event labelled, 5 classes), then
times :meth:`stream.monitoring.monitor.DriftMonitor.process` over them in batches of 5,000,
with the P/R/F1 feed as shipped, against the anchor measured in the same run: the same monitor
with the feed switched off (accuracy only, as before it existed). Reports the median events per
second of ``--repeats`` repeats, the ratio, and the per-event cost of the feed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import stream.monitoring.accuracy as monitor_module  # noqa: E402
from detectors.classification import ClassificationScores  # noqa: E402
from stream.monitoring.monitor import DriftMonitor  # noqa: E402
from stream.settings import load_settings  # noqa: E402
from stream.telemetry.records import Telemetry, TelemetryParser  # noqa: E402
from tests.support.pipeline import simulated_messages  # noqa: E402

BATCH = 5_000


def _run(events: list[Telemetry], *, feed: bool) -> float:
    settings = load_settings(environ={}, alpha=1e-7, window_size=200, reference_size=1000)
    original = monitor_module._ClassFeed.scores_at
    if not feed:
        nan = ClassificationScores(float("nan"), float("nan"), float("nan"))
        monitor_module._ClassFeed.scores_at = lambda self, pos: nan  # type: ignore[method-assign]
    try:
        monitor = DriftMonitor(settings)
        t0 = time.perf_counter()
        for i in range(0, len(events), BATCH):
            monitor.process(events[i : i + BATCH])
        return time.perf_counter() - t0
    finally:
        monitor_module._ClassFeed.scores_at = original  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    settings = load_settings(environ={})
    parser = TelemetryParser(settings)
    events = []
    for m in simulated_messages(args.events, seed=1):
        t = parser.parse(m.value, partition=m.partition, offset=m.offset)
        assert isinstance(t, Telemetry)
        events.append(t)
    labelled = sum(t.true_label is not None for t in events)
    _run(events[:BATCH], feed=True)  # warm the compiled kernels
    with_feed, without = [], []
    for _ in range(args.repeats):
        without.append(_run(events, feed=False))
        with_feed.append(_run(events, feed=True))
    a, b = statistics.median(without), statistics.median(with_feed)
    print(
        f"# bench/classification.py: {args.events} events ({labelled} labelled), batches of "
        f"{BATCH}, median of {args.repeats}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"{'path':<22} {'events/s':>10} {'ratio':>6}")
    print(f"{'accuracy only (anchor)':<22} {args.events / a:>10,.0f} {1.0:>6.2f}")
    print(f"{'accuracy + P/R/F1':<22} {args.events / b:>10,.0f} {a / b:>6.2f}")
    print(f"feed cost: {(b - a) / max(labelled, 1) * 1e6:.2f} us per labelled event")


if __name__ == "__main__":
    main()
