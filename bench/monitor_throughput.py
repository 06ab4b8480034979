"""Events per second through ``DriftMonitor.process`` with every stream calibrated and testing.

Usage::

    .venv/bin/python bench/monitor_throughput.py [--agents 50] [--batches 20] [--repeats 5]

The monitor at ``ert = 20,000`` for every stream (4 numeric features a key, no accuracy), fed
the project's simulated telemetry in batches of 5,000 parsed events. Untimed first: enough
events for every key's reference and window, then waiting until every stream's calibration is
ready and one more batch so that each is testing; the script counts the streams testing and
refuses to time otherwise. Timed: ``--batches`` batches per repeat, the median events/s of
``--repeats`` repeats, and the load average.

Run from the root of any checkout of the project: it finds the monitor under its current module
path (``stream.monitoring.monitor``) or the earlier one (``stream.monitor``), so one command
times two commits side by side (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(Path.cwd()))

BATCH = 5_000
START_MS = 1_779_350_400_000


def _first(*names: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(names[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    monitor_mod = _first("stream.monitoring.monitor", "stream.monitor")
    sim_mod = _first("stream.tools.simulation", "stream.simulation")
    from stream.settings import load_settings
    from stream.telemetry.records import TelemetryParser

    settings = load_settings(environ={}, ert=20_000, window_size=200, reference_size=1_000)
    parser = TelemetryParser(settings)
    sim = sim_mod.TelemetrySimulator(a.agents, seed=11)
    warm = a.agents * 1_400
    total = warm + BATCH + a.repeats * a.batches * BATCH
    import orjson

    events = [
        parser.parse(orjson.dumps(d)) for d in sim.events(total, start_ms=START_MS, step_ms=10)
    ]
    monitor = monitor_mod.DriftMonitor(settings, track_accuracy=False, reproducible=True)
    for i in range(0, warm, BATCH):
        monitor.process(events[i : min(i + BATCH, warm)])
    monitor.process(events[warm : warm + BATCH])  # reproducible: every calibration awaited
    streams = [fs.detector for st in monitor.keys.values() for fs in st.features]
    testing = sum(
        d is not None and d.calibration_ready and len(d.window) == d.window_size for d in streams
    )
    print(f"# python bench/monitor_throughput.py {' '.join(sys.argv[1:])}")
    print(f"# {Path.cwd().name}: {monitor_mod.__name__}; load average {os.getloadavg()[0]:.2f}")
    print(f"streams testing (calibrated, window full): {testing} of {4 * a.agents}")
    if testing != 4 * a.agents:
        raise SystemExit("not every stream is testing: refusing to time")
    rates = []
    pos = warm + BATCH
    for _ in range(a.repeats):
        started = time.perf_counter()
        for _ in range(a.batches):
            monitor.process(events[pos : pos + BATCH])
            pos += BATCH
        rates.append(a.batches * BATCH / (time.perf_counter() - started))
    print(f"events/s: median {statistics.median(rates):,.0f} (repeats {[round(r) for r in rates]})")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
