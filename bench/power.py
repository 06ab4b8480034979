"""Detection delay at one calibrated false-alarm rate: driftwatch KS (with and without the
conditional guarantee, two windows, two reference sizes) against river's ADWIN and PageHinkley.

Usage::

    nice -n 10 .venv/bin/python bench/power.py [--seeds 10] [--ert 10000] [--jobs 2]

Every detector is calibrated from the same reference to the same ERT (``ert=E``; river's
adapters choose their sensitivity parameter by simulation, see
:mod:`detectors.river_calibration`): the same *target* false-alarm rate. Their *measured* null
rates are in BENCHMARKS.md (bench/null_rates.py for the KS detectors, bench/river_ert.py for
river's). Per seed: a reference of ``n`` baseline values, then a stream of 2,200 baseline
values and 5,000 changed ones. Delay = observations after the change up to the update that
starts the first drift episode after it; a miss is none within the 5,000 (median counts misses
as infinitely late). A false episode still open at the change absorbs it; such seeds are counted
under "open" and their delay is that of the first new start.

Scenarios: lognormal latency (log-scale sigma 0.5) with its log-mean shifted by 0.5 sigma, the
same with its log-scale spread multiplied by 1.3, and Poisson(10) counts whose rate rises to 12.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from detectors import ADWINDetector, IncrementalKS, PageHinkleyDetector  # noqa: E402
from detectors.base import DRIFT_STARTED, DriftDetector  # noqa: E402

FloatArray = npt.NDArray[np.float64]
Draw = Callable[[np.random.Generator, int], FloatArray]
PRE, POST, SEED = 2_200, 5_000, 20_261_202

SCENARIOS: dict[str, tuple[Draw, Draw]] = {
    "lognormal +0.5 sigma": (
        lambda r, k: r.lognormal(0.0, 0.5, k),
        lambda r, k: r.lognormal(0.25, 0.5, k),
    ),
    "lognormal spread x1.3": (
        lambda r, k: r.lognormal(0.0, 0.5, k),
        lambda r, k: r.lognormal(0.0, 0.65, k),
    ),
    "Poisson 10 -> 12": (
        lambda r, k: r.poisson(10.0, k).astype(float),
        lambda r, k: r.poisson(12.0, k).astype(float),
    ),
}

# name -> (kind, window, reference size, guarantee)
DETECTORS: dict[str, tuple[str, int, int, float | None]] = {
    "KS W50 g0.9": ("ks", 50, 1_000, 0.9),
    "KS W50 average": ("ks", 50, 1_000, None),
    "KS W200 g0.9": ("ks", 200, 1_000, 0.9),
    "KS W200 average": ("ks", 200, 1_000, None),
    "KS W50 g0.9 ref 5k": ("ks", 50, 5_000, 0.9),
    "KS W200 g0.9 ref 5k": ("ks", 200, 5_000, 0.9),
    "ADWIN": ("adwin", 0, 1_000, None),
    "PageHinkley": ("ph", 0, 1_000, None),
}


def build(name: str, reference: FloatArray, ert: float) -> DriftDetector:
    kind, window, _n, guarantee = DETECTORS[name]
    if kind == "ks":
        return IncrementalKS(reference, window, ert=ert, guarantee=guarantee)
    if kind == "adwin":
        return ADWINDetector(ert=ert, reference=reference, resolve_after=200)
    return PageHinkleyDetector(ert=ert, reference=reference, resolve_after=200)


def one(args: tuple[str, str, int, float]) -> dict[str, Any]:
    scenario, name, seed, ert = args
    base, changed = SCENARIOS[scenario]
    n = DETECTORS[name][2]
    rng = np.random.default_rng([SEED, seed, len(scenario)])
    reference = base(rng, 5_000)[:n]  # the same first 1,000 values for both sizes
    stream = np.r_[base(rng, PRE), changed(rng, POST)]
    det = build(name, reference, ert)
    started = time.perf_counter()
    det.update_many(stream[:PRE])
    open_at_change = det.in_drift
    delay = None
    for k in range(PRE, PRE + POST, 250):
        det.update_many(stream[k : k + 250])
        starts = [t.index for t in det.transitions if t.kind == DRIFT_STARTED]
        if starts:
            delay = starts[0] - PRE
            break
    return {
        "scenario": scenario,
        "detector": name,
        "seed": seed,
        "delay": delay,
        "open": open_at_change,
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--ert", type=float, default=10_000.0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = p.parse_args()
    tasks = [(s, d, i, a.ert) for s in SCENARIOS for d in DETECTORS for i in range(a.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        runs = list(pool.map(one, tasks, chunksize=1))
    print(f"# python bench/power.py {' '.join(sys.argv[1:])}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, ert {a.ert:,.0f}, {a.seeds} seeds, "
        f"{time.perf_counter() - started:.0f} s"
    )
    header = f"{'scenario':<24} {'detector':<22} {'median':>7} {'p90':>7} {'misses':>6} {'open':>4}"
    print(header)
    print("-" * len(header))
    for s in SCENARIOS:
        for d in DETECTORS:
            rs = [r for r in runs if r["scenario"] == s and r["detector"] == d]
            delays = sorted(np.inf if r["delay"] is None else r["delay"] for r in rs)
            med = statistics.median(delays)
            p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))]
            misses = sum(r["delay"] is None for r in rs)
            opened = sum(r["open"] for r in rs)

            def f(v: float) -> str:
                return "miss" if v == np.inf else f"{v:,.0f}"

            print(f"{s:<24} {d:<22} {f(med):>7} {f(p90):>7} {misses:>6} {opened:>4}")


if __name__ == "__main__":
    main()
