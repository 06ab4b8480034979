"""Null false-alarm rates of calibrated IncrementalKS across ERT x feature type x reference size.

Usage::

    nice -n 10 .venv/bin/python bench/null_rates.py [--refs 20] [--erts 1e3,1e4,1e5,1e6]
        [--sizes 1000,5000] [--window 50] [--alarms 100] [--jobs 2] [--json FILE]
        [--runs FILE]
    .venv/bin/python bench/null_rates.py --summarise FILE [--refs 20]

For every cell (ERT, generator, reference size) and each of ``--refs`` references drawn from
the generator: build ``IncrementalKS(reference, window, ert=E)`` (calibrated from the reference
alone, as in production), then count its drift episode starts on fresh null streams from the
same generator with :func:`detectors.null_rate.count_false_starts` -- the detector's own rule,
compiled (the tests check it equals feeding the detector). Each cell holds
``max(alarms * E, 4e6)`` null observations in total, split evenly over its references, in
streams of 20,000 observations (each from an empty window), so the expected number of false
alarms per cell is at least ``--alarms``.

Reported per cell: the mean over references of measured / target rate (the calibration's
promise with ``guarantee=None``), the share of references at or below 1.3x, the median and the
range, the expected alarms per reference (per-reference ratios carry that much Poisson noise),
the share of extrapolated calibrations and the median calibration time.

The generators were not used to develop the calibration: a lognormal mixture (continuous), a
Bernoulli(0.08) flag (two-valued), a 3-valued integer (few-valued), negative-binomial counts
and Beta(2, 5) rates rounded to 2 decimals (many-valued, tied).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from detectors.ks import IncrementalKS  # noqa: E402
from detectors.null_rate import count_false_starts  # noqa: E402

SEED = 20_261_201
STEPS = 20_000
FloatArray = npt.NDArray[np.float64]


def lognormal_mix(rng: np.random.Generator, size: int) -> FloatArray:
    slow = rng.random(size) < 0.3
    return np.where(slow, rng.lognormal(1.2, 0.3, size), rng.lognormal(0.0, 0.5, size))


def flag(rng: np.random.Generator, size: int) -> FloatArray:
    return (rng.random(size) < 0.08).astype(np.float64)


def three_valued(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.choice(np.array([0.0, 1.0, 2.0]), size=size, p=[0.5, 0.35, 0.15])


def negative_binomial(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.negative_binomial(3, 0.2, size).astype(np.float64)


def rounded_rate(rng: np.random.Generator, size: int) -> FloatArray:
    return np.round(rng.beta(2.0, 5.0, size), 2)


GENERATORS: dict[str, tuple[str, Callable[[np.random.Generator, int], FloatArray]]] = {
    "lognormal-mix": ("continuous", lognormal_mix),
    "bernoulli-0.08": ("two-valued", flag),
    "int-3-valued": ("few-valued", three_valued),
    "negbin-3-0.2": ("many-valued", negative_binomial),
    "beta-2-5-round2": ("many-valued", rounded_rate),
}


def one_reference(args: tuple[str, float, int, int, int, int, float | None]) -> dict[str, Any]:
    """Calibrate on one reference, then count false starts on ``per_ref`` null observations."""
    gen_name, ert, size, window, ref_index, per_ref, guarantee = args
    gen = GENERATORS[gen_name][1]
    rng = np.random.default_rng([SEED, int(ert), size, ref_index, len(gen_name)])
    started = time.perf_counter()
    det = IncrementalKS(gen(rng, size), window, ert=ert, guarantee=guarantee)
    cal = det.calibration
    assert cal is not None
    seconds = time.perf_counter() - started
    rows = max(1, per_ref // STEPS)
    starts = 0
    for r in range(rows):  # one row at a time bounds memory
        starts += count_false_starts(det, gen(rng, STEPS)[None, :])
        del r
    observations = rows * (STEPS - window + 1)
    return {
        "generator": gen_name,
        "ert": ert,
        "size": size,
        "ref": ref_index,
        "starts": starts,
        "observations": observations,
        "ratio": starts / observations * ert,
        "expected": observations / ert,
        "extrapolated": cal.extrapolated,
        "model": cal.model,
        "calibration_s": cal.seconds,
        "wall_s": seconds,
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[tuple[str, float, int], list[dict[str, Any]]] = {}
    for r in runs:
        cells.setdefault((r["generator"], r["ert"], r["size"]), []).append(r)
    out = []
    for (gen, ert, size), rs in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        ratios = [r["ratio"] for r in rs]
        out.append(
            {
                "ert": ert,
                "generator": gen,
                "type": GENERATORS[gen][0],
                "size": size,
                "refs": len(rs),
                "alarms": sum(r["starts"] for r in rs),
                "expected_per_ref": statistics.mean(r["expected"] for r in rs),
                "mean_ratio": statistics.mean(ratios),
                "share_le_1_3": sum(x <= 1.3 for x in ratios) / len(ratios),
                "median": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "extrapolated": sum(r["extrapolated"] for r in rs) / len(rs),
                "calibration_s": statistics.median(r["calibration_s"] for r in rs),
            }
        )
    return out


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "ERT", "feature", "type", "ref n", "refs", "alarms", "exp/ref", "mean ratio",
        "<=1.3x", "median", "range", "extrap.", "cal s",
    ]  # fmt: skip
    body = [
        [
            f"{r['ert']:,.0f}",
            r["generator"],
            r["type"],
            f"{r['size']:,}",
            str(r["refs"]),
            f"{r['alarms']:,}",
            f"{r['expected_per_ref']:,.0f}",
            f"{r['mean_ratio']:.2f}",
            f"{100 * r['share_le_1_3']:.0f} %",
            f"{r['median']:.2f}",
            f"{r['min']:.2f}-{r['max']:.2f}",
            f"{100 * r['extrapolated']:.0f} %",
            f"{r['calibration_s']:.2f}",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in (1, 2) else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refs", type=int, default=20)
    p.add_argument("--erts", default="1e3,1e4,1e5,1e6")
    p.add_argument("--sizes", default="1000,5000")
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--alarms", type=float, default=100.0)
    p.add_argument("--generators", default=",".join(GENERATORS))
    p.add_argument(
        "--guarantee",
        type=lambda v: None if v == "none" else float(v),
        default=None,
        help="the detectors' guarantee: a probability, or none (the average rule; default)",
    )
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", type=Path)
    p.add_argument(
        "--runs", type=Path, help="append each reference's result to this file as it completes"
    )
    p.add_argument(
        "--summarise",
        type=Path,
        help="print the table of the complete cells in a --runs file (of --refs references)",
    )
    a = p.parse_args()
    if a.summarise:
        done = [json.loads(line) for line in a.summarise.read_text().splitlines() if line]
        print(table([r for r in summarise(done) if r["refs"] >= a.refs]))
        return
    erts = [float(e) for e in a.erts.split(",")]
    sizes = [int(s) for s in a.sizes.split(",")]
    gens = a.generators.split(",")
    tasks = []
    for ert in erts:
        per_ref = int(max(a.alarms * ert, 4e6) / a.refs)
        for size in sizes:
            for gen in gens:
                for i in range(a.refs):
                    tasks.append((gen, ert, size, a.window, i, per_ref, a.guarantee))
    started = time.perf_counter()
    load_before = os.getloadavg()
    runs: list[dict[str, Any]] = []
    log = a.runs.open("a") if a.runs else None
    with ProcessPoolExecutor(a.jobs) as pool:
        for run in pool.map(one_reference, tasks, chunksize=1):  # cell after cell
            runs.append(run)
            if log:
                log.write(json.dumps(run) + "\n")
                log.flush()
    rows = summarise(runs)
    cmd = "python bench/null_rates.py " + " ".join(sys.argv[1:])
    print(f"# {cmd}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}, window {a.window}, "
        f"guarantee {a.guarantee}, {time.perf_counter() - started:.0f} s"
    )
    print(
        "# load average (1, 5, 15 min) before "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps({"command": cmd, "rows": rows, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
