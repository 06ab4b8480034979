"""River adapters under an ERT: measured false alarms against the calibrated target.

Usage::

    .venv/bin/python bench/river_ert.py [--seeds S] [--erts 1000,10000] [--jobs J] [--json FILE]

For every adapter (ADWIN, KSWIN, PageHinkley), null scenario (normal, lognormal latency, Poisson
token counts, zero-inflated retry counts: the generators of ``bench/detection.py``), ERT and
seed: draw a 1,000-value reference from the scenario, build the adapter with
``ert=E, reference=reference, seed=seed, resolve_after=100`` (everything else at its defaults),
then feed it a fresh null stream from the same scenario and count drift episode starts.

Null stream per seed: ``40 * E`` observations for ADWIN and PageHinkley (about 40 expected false
alarms), ``20 * E`` for KSWIN at E = 1,000 and 30,000 at E = 10,000 (river's KSWIN runs a scipy
test per update). Reported per (adapter, scenario, ERT): false alarms per 100k observations
against the target 100k / E, the ratio, the per-seed ratio range, the calibrated simulated ERT
(median), how many seeds were extrapolated, and the calibration's wall time (median, max).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import river  # noqa: E402
from river import drift  # noqa: E402

from bench import detection  # noqa: E402
from detectors.base import DRIFT_STARTED  # noqa: E402
from detectors.river_adapters import (  # noqa: E402
    ADWINDetector,
    KSWINDetector,
    PageHinkleyDetector,
    RiverDetector,
)

SEED = 20_261_125
REF_N = 1_000
RESOLVE_AFTER = 100
ADAPTERS = ("ADWIN", "KSWIN", "PageHinkley")
SCENARIOS = {
    "normal": detection.normal,
    "latency": detection.latency,
    "tokens": detection.tokens,
    "retries": detection.retries_with(detection.RETRY_P),
}


def build(adapter: str, reference: np.ndarray, ert: float, seed: int) -> RiverDetector:
    kwargs: dict[str, Any] = {"ert": ert, "reference": reference, "resolve_after": RESOLVE_AFTER}
    if adapter == "ADWIN":
        return ADWINDetector(seed=seed, **kwargs)
    if adapter == "KSWIN":
        return KSWINDetector(seed=seed, **kwargs)
    return PageHinkleyDetector(seed=seed, **kwargs)


def stream_length(adapter: str, ert: int) -> int:
    if adapter == "KSWIN":
        return 20 * ert if ert <= 1_000 else 30_000
    return 40 * ert


def run_one(task: tuple[str, str, int, int]) -> dict[str, Any]:
    adapter, scenario, ert, seed = task
    gen = SCENARIOS[scenario]
    rng = np.random.default_rng(
        [SEED, ADAPTERS.index(adapter), list(SCENARIOS).index(scenario), seed]
    )
    reference = gen(rng, REF_N)
    det = build(adapter, reference, ert, seed)
    cal = det.calibration
    assert cal is not None
    n = stream_length(adapter, ert)
    det.update_many(gen(rng, n))
    starts = sum(1 for t in det.transitions if t.kind == DRIFT_STARTED)
    return {
        "adapter": adapter,
        "scenario": scenario,
        "ert": ert,
        "seed": seed,
        "observations": n,
        "starts": starts,
        "value": cal.value,
        "simulated_ert": cal.simulated_ert,
        "extrapolated": cal.extrapolated,
        "model": cal.model,
        "cal_seconds": cal.seconds,
    }


def updates_per_second() -> dict[str, float]:
    """River's own update rate (raw river objects, N(0,1) values, default parameters)."""
    xs = np.random.default_rng(0).normal(size=200_000).tolist()
    out = {}
    for name, det, n in (
        ("ADWIN", drift.ADWIN(), 200_000),
        ("KSWIN", drift.KSWIN(seed=1), 5_000),
        ("PageHinkley", drift.PageHinkley(), 200_000),
    ):
        started = time.perf_counter()
        for x in xs[:n]:
            det.update(x)
        out[name] = n / (time.perf_counter() - started)
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["adapter"], r["scenario"], r["ert"]), []).append(r)
    out = []
    for (adapter, scenario, ert), runs in groups.items():
        obs = sum(r["observations"] for r in runs)
        starts = sum(r["starts"] for r in runs)
        seed_ratios = [r["starts"] / (r["observations"] / ert) for r in runs]
        secs = [r["cal_seconds"] for r in runs]
        out.append(
            {
                "adapter": adapter,
                "scenario": scenario,
                "ert": ert,
                "seeds": len(runs),
                "obs_per_seed": runs[0]["observations"],
                "starts": starts,
                "per_100k": 1e5 * starts / obs,
                "target": 1e5 / ert,
                "ratio": starts / (obs / ert),
                "seed_min": min(seed_ratios),
                "seed_med": statistics.median(seed_ratios),
                "seed_max": max(seed_ratios),
                "sim_ert": statistics.median(r["simulated_ert"] for r in runs),
                "extrapolated": sum(r["extrapolated"] for r in runs),
                "value": statistics.median(r["value"] for r in runs),
                "cal_med": statistics.median(secs),
                "cal_max": max(secs),
            }
        )
    order = {a: i for i, a in enumerate(ADAPTERS)}
    scen = {s: i for i, s in enumerate(SCENARIOS)}
    out.sort(key=lambda r: (order[r["adapter"]], r["ert"], scen[r["scenario"]]))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "adapter",
        "scenario",
        "ERT",
        "obs/seed",
        "alarms",
        "per 100k",
        "target",
        "ratio",
        "seed ratio min/med/max",
        "sim ERT",
        "extrap",
        "param (med)",
        "cal s med",
        "cal s max",
    ]
    body = [
        [
            r["adapter"],
            r["scenario"],
            f"{r['ert']:,}",
            f"{r['obs_per_seed']:,}",
            f"{r['starts']:,}",
            f"{r['per_100k']:.1f}",
            f"{r['target']:.0f}",
            f"{r['ratio']:.2f}",
            f"{r['seed_min']:.2f}/{r['seed_med']:.2f}/{r['seed_max']:.2f}",
            f"{r['sim_ert']:,.0f}",
            f"{r['extrapolated']}/{r['seeds']}",
            f"{r['value']:.3g}",
            f"{r['cal_med']:.2f}",
            f"{r['cal_max']:.2f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--erts", default="1000,10000")
    parser.add_argument("--adapters", default=",".join(ADAPTERS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    erts = [int(e) for e in args.erts.split(",")]
    adapters = args.adapters.split(",")
    started = time.perf_counter()
    speed = updates_per_second()
    tasks = [
        (a, s, e, seed)
        for e in erts
        for a in adapters
        for s in SCENARIOS
        for seed in range(args.seeds)
    ]
    # slow tasks first, so the pool's tail is short
    tasks.sort(key=lambda t: -stream_length(t[0], t[2]) * (300 if t[0] == "KSWIN" else 1))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run_one, tasks))
    summary = summarise(rows)
    minutes = (time.perf_counter() - started) / 60
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"driftwatch river ERT benchmark -- {args.seeds} seeds, {now}, {minutes:.1f} min, "
        f"{args.jobs} process(es)"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, river {river.__version__}; "
        f"{os.cpu_count()} CPU(s)"
    )
    print(
        "river updates/s (raw, N(0,1), defaults): "
        + ", ".join(f"{k} {v:,.0f}" for k, v in speed.items())
    )
    print(
        f"Reference: {REF_N:,} scenario values, new per seed; adapters built with "
        f"ert=E, reference=..., seed=seed, resolve_after={RESOLVE_AFTER}."
    )
    print(
        "ratio = measured / target over all seeds; seed ratio = per seed; sim ERT = the "
        "calibration's own simulated ERT (median); extrap = seeds whose value was extrapolated."
    )
    print()
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
