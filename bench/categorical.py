"""Categorical detector under an ERT: measured false alarms on null streams against the target.

Usage::

    nice -n 10 .venv/bin/python bench/categorical.py [--seeds S] [--erts 2000,10000]
        [--window W] [--jobs J] [--json FILE]

For every category profile, ERT and seed: draw a 2,000-value reference from the profile, build
``CategoricalDetector(reference, W, ert=E, seed=seed)`` (everything else at its defaults), feed
it a fresh null stream of ``40 * E`` observations from the same profile and count drift episode
starts. The profiles were not used to develop or tune the detector; two have categories the
reference may never see (a Zipf tail) and one has array values (finish reasons).

Reported per (profile, ERT): false alarms per 100k observations against the target 100k / E,
the ratio, the per-seed ratio range, the cells after pooling, the calibration's simulated ERT
and its wall time (median). A throughput line compares ``update_many`` with
:class:`~detectors.IncrementalKS` (the anchor) on streams of the same length in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from detectors import IncrementalKS  # noqa: E402
from detectors.base import DRIFT_STARTED  # noqa: E402
from detectors.categorical import CategoricalDetector  # noqa: E402

SEED = 20_261_201
REF_N = 2_000

Profile = Callable[[np.random.Generator, int], list[Any]]


def _choice(names: list[str], shares: list[float]) -> Profile:
    p = np.asarray(shares) / np.sum(shares)

    def draw(rng: np.random.Generator, size: int) -> list[Any]:
        return list(rng.choice(names, size, p=p))

    return draw


def _zipf(k: int, s: float) -> Profile:
    return _choice([f"tool-{i}" for i in range(k)], list(1.0 / np.arange(1, k + 1) ** s))


def _finish_reasons(rng: np.random.Generator, size: int) -> list[Any]:
    kinds = [["stop"], ["length"], ["tool_calls"], ["stop", "length"], ["content_filter"]]
    picks = rng.choice(len(kinds), size, p=[0.78, 0.12, 0.06, 0.03, 0.01])
    return [kinds[i] for i in picks]


PROFILES: dict[str, Profile] = {
    "uniform4": _choice(list("abcd"), [1, 1, 1, 1]),
    "skewed": _choice(["gpt-a", "gpt-b", "claude", "local"], [0.85, 0.1, 0.04, 0.01]),
    "binary": _choice(["ok", "error"], [0.97, 0.03]),
    "zipf40": _zipf(40, 1.2),
    "finish": _finish_reasons,
}


def run_one(profile: str, ert: int, window: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([SEED, seed, ert, list(PROFILES).index(profile)])
    draw = PROFILES[profile]
    det = CategoricalDetector(draw(rng, REF_N), window, ert=ert, seed=seed)
    started = time.perf_counter()
    cal = det.calibration
    assert cal is not None
    cal_s = time.perf_counter() - started
    n = 40 * ert
    alarms = 0
    for lo in range(0, n, 20_000):
        det.update_many(draw(rng, min(20_000, n - lo)))
        alarms += sum(t.kind == DRIFT_STARTED for t in det.transitions)
    return {
        "profile": profile,
        "ert": ert,
        "seed": seed,
        "observations": n,
        "alarms": alarms,
        "cells": len(det.categories),
        "simulated_ert": 1.0 / cal.simulated_rate if cal.simulated_rate > 0 else float("inf"),
        "calibration_s": cal_s,
    }


def throughput(window: int, n: int = 200_000, repeats: int = 3) -> tuple[float, float]:
    """Median observations per second of update_many: categorical, and IncrementalKS (anchor)."""
    rng = np.random.default_rng(SEED)
    cats = PROFILES["skewed"](rng, n)
    nums = rng.poisson(150, n).astype(float)
    cat_rates, ks_rates = [], []
    for _ in range(repeats):
        det = CategoricalDetector(cats[:REF_N], window, alpha=1e-9)
        t0 = time.perf_counter()
        det.update_many(cats)
        cat_rates.append(n / (time.perf_counter() - t0))
        ks = IncrementalKS(nums[:REF_N], window, alpha=1e-9)
        t0 = time.perf_counter()
        ks.update_many(nums)
        ks_rates.append(n / (time.perf_counter() - t0))
    return statistics.median(cat_rates), statistics.median(ks_rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--erts", default="2000,10000")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    erts = [int(e) for e in args.erts.split(",")]
    jobs = [(p, e, args.window, s) for p in PROFILES for e in erts for s in range(args.seeds)]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, *zip(*jobs, strict=True)))
    wall = time.perf_counter() - started
    print(
        f"# bench/categorical.py: W={args.window}, reference {REF_N}, {args.seeds} seeds, "
        f"null stream 40 x ERT per seed; {platform.python_version()}, {os.cpu_count()} cpus, "
        f"{wall:.0f} s"
    )
    head = (
        f"{'profile':<9} {'ERT':>6} {'cells':>5} {'obs':>9} {'alarms':>6} {'per 100k':>8} "
        f"{'target':>6} {'ratio':>5}  {'seed ratio min/med/max':>22} {'sim ERT':>7} {'cal s':>5}"
    )
    print(head)
    summary = []
    for p in PROFILES:
        for e in erts:
            rs = [r for r in rows if r["profile"] == p and r["ert"] == e]
            obs = sum(r["observations"] for r in rs)
            alarms = sum(r["alarms"] for r in rs)
            ratio = alarms / obs * e
            seed_ratios = [r["alarms"] / r["observations"] * e for r in rs]
            summary.append({"profile": p, "ert": e, "ratio": ratio, "alarms": alarms})
            print(
                f"{p:<9} {e:>6} {statistics.median(r['cells'] for r in rs):>5.0f} {obs:>9} "
                f"{alarms:>6} {alarms / obs * 1e5:>8.1f} {1e5 / e:>6.1f} {ratio:>5.2f}  "
                f"{min(seed_ratios):>6.2f}/{statistics.median(seed_ratios):.2f}/"
                f"{max(seed_ratios):.2f}      "
                f"{statistics.median(r['simulated_ert'] for r in rs):>7.0f} "
                f"{statistics.median(r['calibration_s'] for r in rs):>5.2f}"
            )
    cat_rate, ks_rate = throughput(args.window)
    print(
        f"\nthroughput (update_many, W={args.window}, median of 3): categorical "
        f"{cat_rate:,.0f} obs/s, IncrementalKS anchor {ks_rate:,.0f} obs/s, "
        f"ratio {cat_rate / ks_rate:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
