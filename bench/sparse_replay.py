"""False alarms of ``driftwatch replay`` on nested, sparse JSON at default detection settings.

Writes a seeded file of a few agents' telemetry in nested JSON (``agent.id``,
``usage.output_tokens`` present on 70 % of the events, ``latency_ms`` on all,
``response.finish_reason`` -- categorical -- on 90 %), with no drift (the null file) and with an
output-token drift on one agent from the middle on, its event times spread over ``--hours``
(default a day), replays both at default detection settings -- the whole-worker budget of false
alarms a day, each stream's ERT derived from its key's event rate (``DRIFTWATCH_*`` name the
nested fields only) -- and prints the ``drift_started`` events per feature against the number
the budget expects on the null file: ``sum over streams of (tested observations / ert)``, a
stream's tested observations being the events that have its feature, less the reference. Also
the load average and the wall time.

Run: ``.venv/bin/python bench/sparse_replay.py [--agents 4] [--events 12000] [--hours 24]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# bench/detectors.py would shadow the detectors package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from detectors.budget import stream_ert  # noqa: E402
from stream.settings import load_settings  # noqa: E402
from tests.support.pipeline import START_MS  # noqa: E402

FEATURES = ("usage.output_tokens", "latency_ms")
CATEGORICAL = ("response.finish_reason",)
ENV = {
    "DRIFTWATCH_KEY_FIELDS": "agent.id",
    "DRIFTWATCH_FEATURES": ",".join(FEATURES),
    "DRIFTWATCH_CATEGORICAL_FEATURES": ",".join(CATEGORICAL),
}
REASONS = ("stop", "length", "tool_calls", "content_filter")
SHARES = (0.84, 0.07, 0.08, 0.01)


def write(
    path: Path, agents: int, events: int, seed: int, drift: bool, step_ms: float
) -> Counter[str]:
    """Write the file (one event every ``step_ms``); return how many events have each feature."""
    rng = np.random.default_rng(seed)
    present: Counter[str] = Counter()
    with path.open("w") as out:
        for i in range(agents * events):
            agent = f"agent-{i % agents}"
            ts = START_MS + round(step_ms * i)
            doc: dict[str, object] = {"ts": ts, "agent": {"id": agent}}
            shift = drift and agent == "agent-0" and i >= agents * events // 2
            if rng.random() < 0.7:
                doc["usage"] = {"output_tokens": int(rng.poisson(260 if shift else 200))}
                present[FEATURES[0]] += 1
            doc["latency_ms"] = round(float(rng.lognormal(6.5, 0.4)), 3)
            present[FEATURES[1]] += 1
            if rng.random() < 0.9:
                doc["response"] = {"finish_reason": REASONS[rng.choice(4, p=SHARES)]}
                present[CATEGORICAL[0]] += 1
            out.write(json.dumps(doc) + "\n")
    return present


def replay(path: Path) -> tuple[list[dict[str, object]], float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")} | ENV
    exe = Path(sys.executable).with_name("driftwatch")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "replay", str(path), "--quiet"], env=env, capture_output=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"replay failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return events, wall, proc.stderr.decode()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=4)
    p.add_argument("--events", type=int, default=12_000, help="events per agent")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--hours", type=float, default=24.0, help="time the file spans")
    args = p.parse_args(argv)
    settings = load_settings(environ=ENV)
    budget = settings.worker_budget
    assert budget is not None, "the defaults use the worker budget"
    step_ms = args.hours * 3_600_000 / (args.agents * args.events)
    key_rate = 1000.0 / (step_ms * args.agents)  # events a second per agent
    streams = args.agents * (len(FEATURES) + len(CATEGORICAL))
    ert = stream_ert(budget, streams, key_rate)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{args.agents} agents x {args.events:,} events over {args.hours:g} h; window_size "
        f"{settings.window_size}, reference_size {settings.reference_size}; budget {budget:g} "
        f"false alarms a day over {streams} streams -> ert {ert:,.0f} per stream (defaults)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, drift in (("null", False), ("drift", True)):
            path = Path(tmp) / f"{name}.jsonl"
            present = write(path, args.agents, args.events, args.seed, drift, step_ms)
            events, wall, _ = replay(path)
            started = Counter(str(e["feature"]) for e in events if e["type"] == "drift_started")
            keys = Counter(
                (str(e["key"]), str(e["feature"])) for e in events if e["type"] == "drift_started"
            )
            rows.append((name, present, started, keys, wall))
    print()
    print(f"{'file':6s} {'feature':24s} {'tested obs':>11s} {'expected':>9s} {'started':>8s}")
    for name, present, started, keys, wall in rows:
        total_expected = 0.0
        for feature in (*FEATURES, *CATEGORICAL):
            tested = present[feature] - args.agents * settings.reference_size
            expected = tested / ert
            total_expected += expected
            print(
                f"{name:6s} {feature:24s} {tested:11,} "
                f"{expected if name == 'null' else math.nan:9.2f} {started[feature]:8d}"
            )
        print(
            f"{name:6s} {'all':24s} {'':11s} "
            f"{total_expected if name == 'null' else math.nan:9.2f} {sum(started.values()):8d}"
            f"   (replay {wall:.0f} s)"
        )
        if name == "drift":
            print(f"       drift_started by stream: {dict(sorted(keys.items()))}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
