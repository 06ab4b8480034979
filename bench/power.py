"""Detection delay at one calibrated false-alarm rate: driftwatch KS (with and without the
conditional guarantee, two windows, two reference sizes) against river's ADWIN and PageHinkley,
and optionally alibi-detect's CVMDriftOnline.

Usage::

    nice -n 10 .venv/bin/python bench/power.py [--seeds 10] [--ert 10000] [--jobs 2]
        [--alibi-python /tmp/alibi/bin/python [--cvm-bootstraps 20000]
         [--cvm-null-refs 8 --cvm-null-obs 60000]]

With ``--alibi-python`` (an interpreter with alibi-detect installed; see bench/alibi_cvm.py)
``CVMDriftOnline`` (window 50, the same reference and ERT) runs on the same streams, and its
*measured* null rate is printed: it is calibrated by its own bootstrap of ``--cvm-bootstraps``
streams, and ``--cvm-null-refs`` references of each base distribution are fed
``--cvm-null-obs`` null observations each, counting detections (reset after each).

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
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


#: The peer run in another interpreter (bench/alibi_cvm.py), when ``--alibi-python`` is given.
CVM = "CVMDriftOnline W50"
CVM_SCRIPT = _HERE / "alibi_cvm.py"


def run_cvm(python: str, arrays: dict[str, Any]) -> dict[str, Any]:
    """One bench/alibi_cvm.py run on ``arrays`` (see its docstring); its JSON answer."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "task.npz"
        np.savez(path, **arrays)
        out = subprocess.run(
            [python, str(CVM_SCRIPT), str(path)], capture_output=True, text=True, check=False
        )
    if out.returncode != 0:
        raise RuntimeError(f"bench/alibi_cvm.py failed: {out.stderr.strip()[-2000:]}")
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def one(args: tuple[str, str, int, float, str | None, int]) -> dict[str, Any]:
    scenario, name, seed, ert, alibi_python, bootstraps = args
    base, changed = SCENARIOS[scenario]
    n = DETECTORS[name][2] if name in DETECTORS else 1_000
    rng = np.random.default_rng([SEED, seed, len(scenario)])
    reference = base(rng, 5_000)[:n]  # the same first 1,000 values for both sizes
    stream = np.r_[base(rng, PRE), changed(rng, POST)]
    if name == CVM:
        assert alibi_python is not None
        got = run_cvm(
            alibi_python,
            {
                "reference": reference,
                "stream": stream,
                "pre": PRE,
                "ert": ert,
                "window": 50,
                "n_bootstraps": bootstraps,
            },
        )
        return {
            "scenario": scenario,
            "detector": name,
            "seed": seed,
            "delay": got["first_after"],
            "open": False,
            "false_before": got["alarms_before"],
            "seconds": got["seconds"] + got["config_seconds"],
        }
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
        "false_before": 0,
        "seconds": time.perf_counter() - started,
    }


#: Base distributions of the null runs of the peer: the scenarios' pre-change laws.
NULLS = {"lognormal sigma 0.5": "lognormal +0.5 sigma", "Poisson 10": "Poisson 10 -> 12"}


def cvm_null(args: tuple[str, int, float, str, int, int]) -> dict[str, Any]:
    """Detections of the peer on ``obs`` null observations of one reference."""
    law, ref_seed, ert, alibi_python, bootstraps, obs = args
    base, _ = SCENARIOS[NULLS[law]]
    rng = np.random.default_rng([SEED, 7_919, ref_seed, len(law)])
    got = run_cvm(
        alibi_python,
        {
            "reference": base(rng, 1_000),
            "stream": base(rng, obs),
            "pre": obs,
            "ert": ert,
            "window": 50,
            "n_bootstraps": bootstraps,
        },
    )
    return {"law": law, "alarms": got["alarms_before"], "obs": obs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--ert", type=float, default=10_000.0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--alibi-python", help="an interpreter with alibi-detect (runs the peer)")
    p.add_argument("--cvm-bootstraps", type=int, default=20_000)
    p.add_argument("--cvm-null-refs", type=int, default=8)
    p.add_argument("--cvm-null-obs", type=int, default=60_000)
    a = p.parse_args()
    names = [*DETECTORS, *([CVM] if a.alibi_python else [])]
    tasks = [
        (s, d, i, a.ert, a.alibi_python, a.cvm_bootstraps)
        for s in SCENARIOS
        for d in names
        for i in range(a.seeds)
    ]
    started = time.perf_counter()
    nulls: list[dict[str, Any]] = []
    with ProcessPoolExecutor(a.jobs) as pool:
        runs = list(pool.map(one, tasks, chunksize=1))
        if a.alibi_python:
            null_tasks = [
                (law, r, a.ert, a.alibi_python, a.cvm_bootstraps, a.cvm_null_obs)
                for law in NULLS
                for r in range(a.cvm_null_refs)
            ]
            nulls = list(pool.map(cvm_null, null_tasks, chunksize=1))
    print(f"# python bench/power.py {' '.join(sys.argv[1:])}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, ert {a.ert:,.0f}, {a.seeds} seeds, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"# load average {os.getloadavg()[0]:.2f} at end")
    header = (
        f"{'scenario':<24} {'detector':<22} {'median':>7} {'p90':>7} {'misses':>6} {'open':>4}"
        f" {'false before':>12}"
    )
    print(header)
    print("-" * len(header))
    for s in SCENARIOS:
        for d in names:
            rs = [r for r in runs if r["scenario"] == s and r["detector"] == d]
            delays = sorted(np.inf if r["delay"] is None else r["delay"] for r in rs)
            med = statistics.median(delays)
            p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))]
            misses = sum(r["delay"] is None for r in rs)
            opened = sum(r["open"] for r in rs)
            false_before = sum(r["false_before"] for r in rs)

            def f(v: float) -> str:
                return "miss" if v == np.inf else f"{v:,.0f}"

            print(
                f"{s:<24} {d:<22} {f(med):>7} {f(p90):>7} {misses:>6} {opened:>4}"
                f" {false_before:>12}"
            )
    if nulls:
        print()
        print(f"{CVM} under the null, {a.cvm_bootstraps:,} bootstraps, target ERT {a.ert:,.0f}")
        print(
            f"{'law':<22} {'refs':>4} {'observations':>12} {'alarms':>6}"
            f" {'expected':>8} {'ratio':>6}"
        )
        for law in NULLS:
            rs = [r for r in nulls if r["law"] == law]
            obs = sum(r["obs"] for r in rs)
            alarms = sum(r["alarms"] for r in rs)
            expected = obs / a.ert
            print(
                f"{law:<22} {len(rs):>4} {obs:>12,} {alarms:>6} {expected:>8.1f}"
                f" {alarms / expected:>6.2f}"
            )


if __name__ == "__main__":
    main()
