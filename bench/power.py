"""Detection delay at one calibrated false-alarm rate: driftwatch KS (with and without the
conditional guarantee, two windows, two reference sizes) against river's ADWIN and PageHinkley,
and optionally alibi-detect's CVMDriftOnline.

Usage::

    nice -n 10 .venv/bin/python bench/power.py [--seeds 10] [--ert 10000] [--jobs 2]
        [--alibi-python /tmp/alibi/bin/python [--cvm-bootstraps 20000]
         [--cvm-null-refs 8 --cvm-null-obs 60000]]
    nice -n 5 .venv/bin/python bench/power.py --matched [--seeds 20] [--null-refs 12]
        [--null-obs 50000] [--alibi-python /tmp/alibi/bin/python] [--json FILE]

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

``--matched`` (issue #12) matches *measured* rates instead: for each contender and base law
(lognormal sigma 0.5; Poisson 10) its knob -- driftwatch's ``ert`` for ``IncrementalKS`` at
window 200 (the default) and 50, the same ``ert`` for each of a W50 and a W200 detector run side
by side (half the budget each; an alarm of either counts), ADWIN's ``delta``, PageHinkley's
``threshold``, CVMDriftOnline's ``ert`` -- is moved by secant steps until its false alarms on
``--null-refs`` (reference, ``--null-obs`` null observations) pairs are within 8 % of
``1 / --ert`` per observation (the closest of at most 6 evaluations is kept). KSWIN's alpha only
selects a rung of its statistic (k / 30): the two rungs around ERT 10^4 are measured, on a third
of the null pairs. The delays are then measured at the matched values on ``--seeds`` fresh
streams (seeds apart from the null ones). CVM runs on one shared bootstrap of its thresholds
(bench/alibi_cvm.py, ``null`` and ``delays`` modes); its null detections are replayed from its
window statistics, checked against ``predict`` on 30,000 observations.
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from detectors import ADWINDetector, IncrementalKS, KSWINDetector, PageHinkleyDetector  # noqa: E402
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


# ---------------------------------------------------------------- matched measured rates
#: The base law of each scenario: its null streams set the parameter the scenario runs at.
SCENARIO_LAW = {
    "lognormal +0.5 sigma": "lognormal sigma 0.5",
    "lognormal spread x1.3": "lognormal sigma 0.5",
    "Poisson 10 -> 12": "Poisson 10",
}
DEFAULT_KS = "KS W200 (default)"
PAIR = "KS W50 + W200, half each"
#: KSWIN's p-value takes one value per statistic k / 30: the rungs near ERT 10^4 (see main).
KSWIN_RUNGS = (17, 18)


def _kswin_alpha(k: int) -> float:
    """The smallest alpha at which river's KSWIN alarms on a statistic of ``k`` / 30."""
    from scipy.stats import ks_2samp

    a = np.arange(30.0)
    b = np.r_[np.arange(k) + 100.0, np.arange(30 - k)]
    return float(ks_2samp(a, b, method="auto").pvalue) * 1.000001


def contenders() -> dict[str, tuple[str, float]]:
    """Matched-rate contenders: name -> (knob, slope of log rate per log knob, first guess)."""
    return {
        DEFAULT_KS: ("ert", -1.0),
        "KS W50": ("ert", -1.0),
        PAIR: ("ert each", -1.0),
        "ADWIN": ("delta", 1.0),
        "PageHinkley": ("threshold", -4.0),
        CVM: ("ert", -1.0),
        **{f"KSWIN k={k}/30": ("alpha", 1.0) for k in KSWIN_RUNGS},
    }


def first_guess(name: str, law: str, ert: float) -> float:
    if name == "ADWIN":
        return 0.2 if law.startswith("lognormal") else 0.09
    if name == "PageHinkley":
        return 71.0 if law.startswith("lognormal") else 400.0
    if name.startswith("KSWIN"):
        return _kswin_alpha(int(name.split("=")[1].split("/")[0]))
    return 2 * ert if name == PAIR else ert


def null_set(law: str, refs: int, obs: int) -> list[tuple[FloatArray, FloatArray]]:
    """``refs`` (reference, null stream) pairs of ``law``, seeds apart from the delay runs'."""
    base, _ = SCENARIOS[NULLS[law]]
    out = []
    for r in range(refs):
        rng = np.random.default_rng([SEED, 104_729, r, len(law)])
        out.append((base(rng, 1_000), base(rng, obs)))
    return out


def build_matched(name: str, reference: FloatArray, x: float, seed: int) -> list[DriftDetector]:
    """The detector(s) of contender ``name`` at knob value ``x`` (two for the pair)."""
    if name == DEFAULT_KS:
        return [IncrementalKS(reference, 200, ert=x)]
    if name == "KS W50":
        return [IncrementalKS(reference, 50, ert=x)]
    if name == PAIR:
        return [IncrementalKS(reference, 50, ert=x), IncrementalKS(reference, 200, ert=x)]
    if name == "ADWIN":
        return [ADWINDetector(min(x, 0.999), resolve_after=200)]
    if name == "PageHinkley":
        return [PageHinkleyDetector(threshold=x, resolve_after=200)]
    return [KSWINDetector(alpha=x, resolve_after=200, seed=seed)]


def all_starts(
    dets: list[DriftDetector], stream: FloatArray, stop_after: int | None = None
) -> list[int]:
    """Indices of every drift episode start of the detectors (side by side: either alerts).

    With ``stop_after`` each detector stops at its first start after that index.
    """
    found: list[int] = []
    chunk = 5_000 if stop_after is None else 250
    for det in dets:
        for k in range(0, len(stream), chunk):
            det.update_many(stream[k : k + chunk])
            new = [t.index for t in det.transitions if t.kind == DRIFT_STARTED]
            found += new
            if stop_after is not None and any(i > stop_after for i in new):
                break
    return sorted(found)


def null_alarms(name: str, law: str, x: float, refs: int, obs: int, py: str | None) -> int:
    """False alarms (episode starts; detections for CVM) of ``name`` at ``x`` on the null set."""
    pairs = null_set(law, refs, obs)
    if name != CVM:
        return sum(
            len(all_starts(build_matched(name, ref, x, r), s)) for r, (ref, s) in enumerate(pairs)
        )
    assert py is not None
    got = run_cvm(py, cvm_null_task(law, pairs, [x], 0))
    return int(got["alarms"][0])


def cvm_null_task(
    law: str, pairs: list[tuple[FloatArray, FloatArray]], erts: list[float], verify: int
) -> dict[str, Any]:
    tag = law.split()[0].lower()
    return {
        "mode": "null",
        "references": np.array([p[0] for p in pairs]),
        "streams": np.array([p[1] for p in pairs]),
        "erts": np.array(erts),
        "window": 50,
        "n_bootstraps": CVM_BOOT,
        "boot_seed": 1,
        "boot_cache": f"/tmp/h5-cvm-boot-n1000-w50-b{CVM_BOOT}-s1.npy",
        "stats_cache": f"/tmp/power-cvm-stats-{tag}-{len(pairs)}x{len(pairs[0][1])}.npy",
        "verify_obs": verify,
    }


CVM_BOOT = 20_000


def match(args: tuple[str, str, float, int, int, str | None]) -> dict[str, Any]:
    """Move the knob of ``name`` until its null rate on ``law`` is within 8 % of 1 / ``ert``.

    Secant steps on (log knob, log rate) from the first guess, at most 6 evaluations on the
    same null streams; KSWIN's rungs are measured, not moved. The closest evaluation is kept.
    """
    name, law, ert, refs, obs, py = args
    if name.startswith("KSWIN"):
        refs = max(1, refs // 3)  # a scipy KS test per update: ~2,000 updates/s
    knob, slope = contenders()[name]
    target = refs * obs / ert
    x = first_guess(name, law, ert)
    started = time.perf_counter()
    tried: list[tuple[float, int]] = []
    for _ in range(1 if name.startswith("KSWIN") else 6):
        alarms = null_alarms(name, law, x, refs, obs, py)
        tried.append((x, alarms))
        q = max(alarms, 0.5) / target
        if abs(q - 1) <= 0.08:
            break
        if len(tried) >= 2 and tried[-1][1] != tried[-2][1] and tried[-2][1] > 0:
            (x0, a0), (x1, a1) = tried[-2], tried[-1]
            s = (np.log(max(a1, 0.5)) - np.log(a0)) / (np.log(x1) - np.log(x0))
            slope = s if s * slope > 0 else slope
        step = float(np.clip(-np.log(q) / slope, -np.log(4), np.log(4)))
        x = x * float(np.exp(step))
        if name == "ADWIN":
            x = min(x, 0.999)
    best = min(tried, key=lambda t: abs(np.log(max(t[1], 0.5) / target)))
    verify: dict[str, int] = {}
    if name == CVM:
        assert py is not None
        verify = run_cvm(py, cvm_null_task(law, null_set(law, refs, obs), [best[0]], 30_000))[
            "verify"
        ]
    return {
        "name": name,
        "law": law,
        "knob": knob,
        "value": best[0],
        "alarms": best[1],
        "observations": refs * obs,
        "streams": refs,
        "ratio": best[1] / target,
        "evaluations": len(tried),
        "tried": tried,
        "verify": verify,
        "seconds": time.perf_counter() - started,
    }


def delays(args: tuple[str, str, float, int, str | None]) -> list[dict[str, Any]]:
    """Delay, open episode and false alarms before the change, per seed, at knob ``x``."""
    name, scenario, x, seeds, py = args
    base, changed = SCENARIOS[scenario]
    refs, streams = [], []
    for seed in range(seeds):
        rng = np.random.default_rng([SEED, seed, len(scenario)])
        refs.append(base(rng, 5_000)[:1_000])
        streams.append(np.r_[base(rng, PRE), changed(rng, POST)])
    if name == CVM:
        assert py is not None
        task = cvm_null_task(SCENARIO_LAW[scenario], list(zip(refs, streams, strict=True)), [], 0)
        task.update(mode="delays", ert=x, pre=PRE)
        got = run_cvm(py, task)
        return [
            {"delay": None if a is None else a + 1, "false_before": b}
            for a, b in zip(got["first_after"], got["alarms_before"], strict=True)
        ]
    out = []
    for seed, (ref, stream) in enumerate(zip(refs, streams, strict=True)):
        starts = all_starts(build_matched(name, ref, x, seed), stream, stop_after=PRE)
        after = [i - PRE for i in starts if i > PRE]
        out.append(
            {"delay": after[0] if after else None, "false_before": sum(i <= PRE for i in starts)}
        )
    return out


def main_matched(a: argparse.Namespace) -> None:
    """``--matched``: every contender at a measured null rate within 15 % of 1 / ``--ert``."""
    names = [n for n in contenders() if n != CVM or a.alibi_python]
    laws = list(NULLS)
    started = time.perf_counter()
    matched: dict[tuple[str, str], dict[str, Any]] = {}
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(a.jobs) as pool:
        # the slow contenders first
        order = sorted(names, key=lambda n: (n != CVM, not n.startswith("KSWIN")))
        futs = {
            pool.submit(match, (n, law, a.ert, a.null_refs, a.null_obs, a.alibi_python)): (n, law)
            for n in order
            for law in laws
        }
        later = {}
        for fut in as_completed(futs):
            got = fut.result()
            matched[futs[fut]] = got
            print(
                f"# matched {got['name']} on {got['law']}: {got['knob']} {got['value']:.4g}, "
                f"ratio {got['ratio']:.2f} ({got['seconds']:.0f} s)",
                flush=True,
            )
            for s, law in SCENARIO_LAW.items():
                if law == got["law"]:
                    job = (got["name"], s, got["value"], a.seeds, a.alibi_python)
                    later[pool.submit(delays, job)] = (got["name"], s)
        for fut in as_completed(later):
            runs[later[fut]] = fut.result()
    print(f"# python bench/power.py {' '.join(sys.argv[1:])}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, target ERT {a.ert:,.0f}, {a.seeds} delay "
        f"seeds, {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.2f}"
    )
    n_null = sum(m["streams"] for m in matched.values())
    print(
        f"# null: {n_null} streams (one detector, or pair, each), every one calibrated and "
        f"testing from its first full window; delays: {len(runs) * a.seeds} streams"
    )
    print()
    head = (
        f"{'contender':<26} {'law':<20} {'parameter':<20} {'null obs':>9} {'alarms':>6}"
        f" {'rate/target':>11} {'evals':>5}"
    )
    print(head)
    print("-" * len(head))
    for n in names:
        for law in laws:
            m = matched[(n, law)]
            print(
                f"{n:<26} {law:<20} {m['knob'] + ' ' + format(m['value'], '.4g'):<20}"
                f" {m['observations']:>9,} {m['alarms']:>6} {m['ratio']:>11.2f}"
                f" {m['evaluations']:>5}"
            )
    for law in laws:
        if (CVM, law) in matched and matched[(CVM, law)]["verify"]:
            v = matched[(CVM, law)]["verify"]
            print(
                f"# {CVM} {law}: predict() on 30,000 null observations {v['direct']} "
                f"detections, the replay {v['replayed']}"
            )
    print()
    head = (
        f"{'scenario':<22} {'contender':<26} {'parameter':<20} {'rate/target':>11} {'median':>7}"
        f" {'p90':>7} {'misses':>6} {'false before':>12}"
    )
    print(head)
    print("-" * len(head))
    for s, law in SCENARIO_LAW.items():
        for n in names:
            m, rs = matched[(n, law)], runs[(n, s)]
            ds = sorted(np.inf if r["delay"] is None else r["delay"] for r in rs)
            med = statistics.median(ds)
            p90 = ds[min(len(ds) - 1, int(0.9 * len(ds)))]

            def f(v: float) -> str:
                return "miss" if v == np.inf else f"{v:,.0f}"

            print(
                f"{s:<22} {n:<26} {m['knob'] + ' ' + format(m['value'], '.4g'):<20}"
                f" {m['ratio']:>11.2f} {f(med):>7} {f(p90):>7}"
                f" {sum(r['delay'] is None for r in rs):>6}"
                f" {sum(r['false_before'] for r in rs):>12}"
            )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                {
                    "matched": [
                        dict(v, tried=[list(t) for t in v["tried"]]) for v in matched.values()
                    ],
                    "runs": {f"{k[0]} | {k[1]}": v for k, v in runs.items()},
                }
            )
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--ert", type=float, default=10_000.0)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--alibi-python", help="an interpreter with alibi-detect (runs the peer)")
    p.add_argument("--cvm-bootstraps", type=int, default=20_000)
    p.add_argument("--cvm-null-refs", type=int, default=8)
    p.add_argument("--cvm-null-obs", type=int, default=60_000)
    p.add_argument("--matched", action="store_true", help="match measured null rates first")
    p.add_argument("--null-refs", type=int, default=20)
    p.add_argument("--null-obs", type=int, default=50_000)
    p.add_argument("--json", help="--matched: write the matched values and per-seed rows here")
    a = p.parse_args()
    if a.matched:
        main_matched(a)
        return
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
