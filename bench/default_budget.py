"""A day of telemetry at default settings: false starts, detection delay and calibration cost.

Usage::

    nice -n 10 .venv/bin/python bench/default_budget.py [--seeds 1,2,3,4] [--events 60000]
        [--budgets 2,0.5] [--no-former]

For each seed: the project's simulator writes ``--events`` events of 3 agents whose timestamps
span 24 hours (agent-1's latency +30 % from event ``2/3 * events`` on), and the monitor runs
them at default settings (the worker budget of 0.5 false alarms a day, each stream's ERT derived
from its rate measured over its warm-up), in batches of 1,000 as ``driftwatch replay`` does,
waiting for every calibration (reproducible). Reported per seed: the ERTs in use, the false
``drift_started`` (every start but agent-1's latency after the drift began), the delay of the
drift's first start in agent-1 events, the wall and CPU seconds (calibration dominates), and the
load average. A budget of B promises B false starts a day on average; at these sizes the
streams test for about 95 % of the day (the warm-up is the rest), so the expected count is about
0.95 B. ``--budgets`` runs other budgets on the same files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import msgspec  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from detectors.budget import DEFAULT_FALSE_ALARMS_PER_DAY  # noqa: E402
from stream.metrics import Metrics  # noqa: E402
from stream.monitoring.monitor import DriftMonitor  # noqa: E402
from stream.monitoring.processor import BatchProcessor, RawMessage  # noqa: E402
from stream.settings import load_settings  # noqa: E402
from stream.telemetry.records import TelemetryParser  # noqa: E402
from stream.tools.simulation import DriftSpec, TelemetrySimulator  # noqa: E402
from tests.support.pipeline import START_MS  # noqa: E402

DAY_MS = 86_400_000
DRIFTED = ("agent-1", "response_latency_ms")


def run(seed: int, events: int, **settings_overrides: Any) -> dict[str, Any]:
    drift_at = 2 * events // 3
    drift = DriftSpec(*DRIFTED, "shift", 0.3, start_event=drift_at)
    sim = TelemetrySimulator(3, seed=seed, drift=drift)
    docs = list(sim.events(events, start_ms=START_MS, step_ms=DAY_MS / events))
    agents = [d["agent_id"] for d in docs]
    msgs = [RawMessage(None, msgspec.json.encode(d), 0, i + 1) for i, d in enumerate(docs)]
    settings = load_settings(environ={}, **settings_overrides)
    metrics = Metrics(CollectorRegistry())
    monitor = DriftMonitor(settings, metrics=metrics)
    processor = BatchProcessor(TelemetryParser(settings), monitor, metrics, "day")
    wall, cpu = time.perf_counter(), time.process_time()
    starts = []
    for i in range(0, events, 1000):
        out = processor.handle(msgs[i : i + 1000])
        starts += [e for e in out.drift_events if e.type == "drift_started"]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    found = [e for e in starts if (e.key, e.feature) == DRIFTED and e.window_last_offset > drift_at]
    false = len(starts) - (1 if found else 0)
    delay = (
        sum(1 for a in agents[drift_at : found[0].window_last_offset] if a == DRIFTED[0])
        if found
        else float("nan")
    )
    erts = sorted(
        {
            det.ert
            for st in monitor.keys.values()
            for fs in [*st.features, *([st.accuracy] if st.accuracy else [])]
            if (det := fs.detector) is not None and getattr(det, "ert", None)
        }
    )
    return {
        "seed": seed,
        "streams": monitor.tracked_streams,
        "erts": erts,
        "false": false,
        "delay": delay,
        "wall": wall,
        "cpu": cpu,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument(
        "--budgets",
        default=str(DEFAULT_FALSE_ALARMS_PER_DAY),
        help="worker budgets (false alarms a day) to run, comma-separated; the default's first",
    )
    parser.add_argument("--no-former", action="store_true", help="skip the ert=10,000 runs")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for budget in (float(b) for b in args.budgets.split(",")):
        rows = [run(s, args.events, false_alarms_per_day=budget) for s in seeds]
        print(f"load average (1, 5, 15 min) after the runs: {os.getloadavg()}")
        print(f"{args.events:,} events of 3 agents over 24 h, worker budget {budget:g} a day")
        print("seed  streams  ERTs in use        false starts  delay (agent-1 events)", end="")
        print("  wall s  cpu s  load")
        for r in rows:
            erts = ",".join(f"{e:,.0f}" for e in r["erts"])
            print(
                f"{r['seed']:>4}  {r['streams']:>7}  {erts:<17}  {r['false']:>12}  "
                f"{r['delay']:>22}  {r['wall']:>6.1f}  {r['cpu']:>5.1f}  {r['load']:.1f}"
            )
        falses = [r["false"] for r in rows]
        print(
            f"false starts: mean {statistics.mean(falses):.2f} per day (budget {budget:g}), "
            f"seeds with <= 1: {sum(f <= 1 for f in falses)}/{len(falses)}; "
            f"median delay {statistics.median(r['delay'] for r in rows):.0f}; "
            f"median cpu {statistics.median(r['cpu'] for r in rows):.1f} s\n"
        )
    if args.no_former:
        return
    print("the same files at the former default, ert = 10,000 for every stream")
    print("seed  false starts  delay (agent-1 events)  cpu s")
    for seed in seeds:
        r = run(seed, args.events, ert=10_000)
        print(f"{seed:>4}  {r['false']:>12}  {r['delay']:>22}  {r['cpu']:>5.1f}")


if __name__ == "__main__":
    main()
