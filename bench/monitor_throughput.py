"""Events per second through ``DriftMonitor.process`` with every stream calibrated and testing.

Usage::

    .venv/bin/python bench/monitor_throughput.py [--agents 100] [--accuracy] [--shared-reference]
        [--window 200] [--batches 20] [--repeats 5]

The monitor at ``ert = 20,000`` for every stream (4 numeric features a key; with
``--accuracy`` also the accuracy stream of the labelled events, every simulated event being
labelled), fed the project's simulated telemetry in batches of 5,000 parsed events, the agents
taking turns (each batch holds ``5,000 / agents`` events of each key, or one event of 5,000
keys). Events are drawn from a pool of simulated events relabelled to the agents in turn, cycled
once used up; drawing and parsing are not timed.

References: by default each stream learns its reference from its first 1,000 values (simulated
values are rounded, so every such reference is tied and calibrated on its own). With
``--shared-reference`` the numeric streams are given one continuous reference per feature
(the pool's values of that feature, slightly jittered so they are distinct); continuous
references share one calibration per configuration, which makes 10,000 agents feasible (40,000
tied calibrations are not). The accuracy streams always learn theirs (0/1 errors: tied, one
calibration each).

Untimed first: enough events for every key's reference and window, then waiting until every
stream's calibration is ready (``reproducible``: the first test awaits it) and one more batch
so that each is testing; the script counts the streams testing, per kind, and refuses to time
otherwise. Timed: ``--batches`` batches per repeat, the median events/s of ``--repeats``
repeats, and the load average; also the median events per CPU-second of the thread that
processes (``time.thread_time``: the per-core rate, less sensitive than wall time to other
work on a shared machine). The streams testing are counted again after the timed part.

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(Path.cwd()))

BATCH = 5_000
START_MS = 1_779_350_400_000
REFERENCE = 1_000
ERT = 20_000


def _first(*names: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but a dependency of it is missing
    raise ModuleNotFoundError(names[0])


def _testing(monitor: Any) -> tuple[int, int]:
    """(numeric streams testing, accuracy streams testing): calibrated and window full."""

    def ready(d: Any) -> bool:
        return d is not None and d.calibration_ready and len(d.window) == d.window_size

    features = sum(ready(fs.detector) for st in monitor.keys.values() for fs in st.features)
    accuracy = sum(
        st.accuracy is not None and ready(st.accuracy.detector) for st in monitor.keys.values()
    )
    return features, accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--accuracy", action="store_true", help="track (and count) accuracy streams")
    p.add_argument("--shared-reference", action="store_true", help="one continuous reference")
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pool", type=int, default=200_000, help="simulated events drawn from")
    p.add_argument("--profile", type=int, default=0, help="print the timed part's top N calls")
    a = p.parse_args()

    monitor_mod = _first("stream.monitoring.monitor", "stream.monitor")
    sim_mod = _first("stream.tools.simulation", "stream.simulation")
    import msgspec

    from stream.settings import load_settings
    from stream.telemetry.records import TelemetryParser

    settings = load_settings(environ={}, ert=ERT, window_size=a.window, reference_size=REFERENCE)
    parser = TelemetryParser(settings)
    sim = sim_mod.TelemetrySimulator(a.agents, seed=11)
    pool = list(sim.events(a.pool, start_ms=START_MS, step_ms=10))
    references = None
    if a.shared_reference:
        rng = np.random.default_rng(5)
        shared = {}
        for f in settings.features:
            xs = np.array([float(d[f]) for d in pool[: 20 * REFERENCE : 20]])
            shared[f] = np.sort(xs + rng.uniform(-1e-6, 1e-6, xs.shape) * (1 + np.abs(xs)))

        def references(key: str, feature: str) -> Any:
            return shared[feature]

    parse_doc = getattr(parser, "parse_doc", None)

    def parse(d: dict[str, Any], i: int) -> Any:
        if parse_doc is not None:
            return parse_doc(d, partition=0, offset=i)
        return parser.parse(msgspec.json.encode(d), partition=0, offset=i)

    def batches() -> Iterator[list[Any]]:
        i = 0
        while True:
            out = []
            for _ in range(BATCH):
                d = dict(pool[i % a.pool], agent_id=f"agent-{i % a.agents}")
                out.append(parse(d, i))
                i += 1
            yield out

    monitor = monitor_mod.DriftMonitor(
        settings, references=references, track_accuracy=a.accuracy, reproducible=True
    )
    feed = batches()
    per_key = a.window + (0 if a.shared_reference and not a.accuracy else REFERENCE)
    for _ in range(-(-a.agents * per_key // BATCH)):
        monitor.process(next(feed))
    monitor.process(next(feed))  # reproducible: every calibration awaited
    features, accuracy = _testing(monitor)
    n_features = len(settings.features) * a.agents
    n_accuracy = a.agents if a.accuracy else 0
    print(f"# python bench/monitor_throughput.py {' '.join(sys.argv[1:])}")
    print(f"# {Path.cwd().name}: {monitor_mod.__name__}; load average {os.getloadavg()[0]:.2f}")
    refs = "one shared continuous reference a feature" if a.shared_reference else "learnt, tied"
    print(f"references: {refs}; window {a.window}; ert {ERT:,}")
    print(
        f"streams testing (calibrated, window full): numeric {features} of {n_features}, "
        f"accuracy {accuracy} of {n_accuracy}"
    )
    if features != n_features or accuracy != n_accuracy:
        raise SystemExit("not every stream is testing: refusing to time")
    rates, cpu_rates = [], []
    import cProfile

    profile = cProfile.Profile() if a.profile else None
    for _ in range(a.repeats):
        spent = cpu = 0.0
        for _ in range(a.batches):
            batch = next(feed)
            if profile is not None:
                profile.enable()
            started, cpu_started = time.perf_counter(), time.thread_time()
            monitor.process(batch)
            spent += time.perf_counter() - started
            cpu += time.thread_time() - cpu_started
            if profile is not None:
                profile.disable()
        rates.append(a.batches * BATCH / spent)
        cpu_rates.append(a.batches * BATCH / cpu)
    features, accuracy = _testing(monitor)
    print(f"streams testing after the timed part: numeric {features}, accuracy {accuracy}")
    print(f"events/s: median {statistics.median(rates):,.0f} (repeats {[round(r) for r in rates]})")
    print(
        f"events per CPU-second of the processing thread: median "
        f"{statistics.median(cpu_rates):,.0f} (repeats {[round(r) for r in cpu_rates]})"
    )
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if profile is not None:
        import pstats

        pstats.Stats(profile).sort_stats("tottime").print_stats(a.profile)


if __name__ == "__main__":
    main()
