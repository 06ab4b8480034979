"""Throughput and memory of ``IncrementalKS`` against scipy and river anchors.

Usage::

    .venv/bin/python bench/detectors.py [--quick] [--repeats R] [--json FILE]

Every case compares a reference of N values with a sliding window of N values on a null stream
(the stream has the reference's distribution). Only the steady state is timed: each contender's
window is filled first, then a short untimed warm-up runs, then the timed updates. Every repeat
draws a fresh null stream and runs each contender on it once, in turn, so the detector and its
anchors share the machine's conditions; rates are medians over the repeats and ratios are medians
of the per-repeat ratios. Memory is measured once per case, with tracemalloc and pickle.

Contenders, all fed the same stream:

* ``IncrementalKS(reference, window_size=N)`` (default ``alpha=0.05``), per event (``update``)
  and batched (``update_many`` on batches of 64);
* ``scipy.stats.ks_2samp(reference, window)`` recomputed after every update, the window kept in
  a numpy ring buffer: the exact answer the detector must reproduce;
* river's ``KSWIN(alpha=0.005, window_size=2N, stat_size=N)``: it tests the latest N values
  against the N before them, the sample sizes (and the 2N values held) of the detector;
* river's ``KSWIN(alpha=0.005, window_size=N, stat_size=min(N // 3, 1000))`` ("KSWIN-lite"): a
  cheaper and much weaker setting, closer to river's defaults (100 / 30).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# This file is named like the ``detectors`` package: keep its own folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import river  # noqa: E402
import scipy  # noqa: E402
from river import drift  # noqa: E402
from scipy import stats  # noqa: E402

from detectors.base import DRIFT_STARTED  # noqa: E402
from detectors.ks import IncrementalKS  # noqa: E402

FloatArray = npt.NDArray[np.float64]

BATCH = 64
KSWIN_ALPHA = 0.005
SEED = 20_240_601


# ---------------------------------------------------------------------------- cases and budgets
@dataclass(frozen=True, slots=True)
class Case:
    data: str
    n: int


CASES: tuple[Case, ...] = (
    Case("normal-2dp", 500),
    Case("normal-2dp", 5_000),
    Case("normal-2dp", 50_000),
    Case("poisson20", 5_000),
    Case("normal-raw", 5_000),
    Case("normal-raw", 50_000),
)

DATA_LABELS = {
    "normal-2dp": "N(0,1) rounded to 0.01 (ties, telemetry-like)",
    "poisson20": "Poisson(20) integers (token_count-like, heavy ties)",
    "normal-raw": "N(0,1) unrounded (no ties: every reference value distinct, worst case)",
}


def draw(data: str, rng: np.random.Generator, size: int) -> FloatArray:
    """``size`` values of the named distribution, as float64."""
    if data == "normal-2dp":
        return np.round(rng.normal(size=size), 2)
    if data == "poisson20":
        return rng.poisson(20.0, size=size).astype(np.float64)
    if data == "normal-raw":
        return rng.normal(size=size)
    raise ValueError(f"unknown data kind {data!r}")


@dataclass(frozen=True, slots=True)
class Budget:
    """How many updates each contender is timed over in one repeat."""

    quick: bool

    @property
    def event(self) -> int:
        return 10_000 if self.quick else 100_000

    @property
    def batched(self) -> int:
        return BATCH * (500 if self.quick else 5_000)

    @property
    def warmup(self) -> int:
        return 1_000 if self.quick else 5_000

    def ks_2samp(self, n: int) -> int:
        if self.quick:
            return max(30, min(300, 300_000 // n))
        return max(300, min(2_000, 5_000_000 // n))

    def kswin(self, n: int) -> int:
        if self.quick:
            return max(10, min(300, 200_000 // n))
        return max(50, min(2_000, 2_500_000 // n))

    @property
    def kswin_lite(self) -> int:
        return 100 if self.quick else 1_000

    def set_reference_calls(self, n: int) -> int:
        return max(2, 10_000 // n) if self.quick else max(3, 50_000 // n)

    def stream_length(self, n: int) -> int:
        timed = max(self.event, self.batched, self.ks_2samp(n), self.kswin(n), self.kswin_lite)
        return 2 * n + self.warmup + timed


# ---------------------------------------------------------------------------- contenders
def _rate(updates: int, seconds: float) -> float:
    return updates / seconds


def filled_detector(reference: FloatArray, stream: FloatArray, n: int) -> IncrementalKS:
    det = IncrementalKS(reference, window_size=n)
    det.update_many(stream[:n])
    return det


def check_exact(det: IncrementalKS, reference: FloatArray) -> None:
    """Fail loudly if the detector disagrees with scipy (a benchmark of a wrong answer is moot)."""
    want = stats.ks_2samp(reference, det.window)
    if det.statistic != float(want.statistic) or not math.isclose(
        det.p_value, float(want.pvalue), rel_tol=1e-9, abs_tol=1e-300
    ):
        raise RuntimeError(
            f"IncrementalKS disagrees with ks_2samp: ({det.statistic}, {det.p_value}) "
            f"vs ({want.statistic}, {want.pvalue})"
        )


def time_per_event(reference: FloatArray, stream: FloatArray, n: int, budget: Budget) -> float:
    det = filled_detector(reference, stream, n)
    start = n + budget.warmup
    for x in stream[n:start].tolist():
        det.update(x)
    xs = stream[start : start + budget.event].tolist()
    t0 = time.perf_counter()
    for x in xs:
        det.update(x)
    rate = _rate(len(xs), time.perf_counter() - t0)
    check_exact(det, reference)
    return rate


def time_batched(
    reference: FloatArray, stream: FloatArray, n: int, budget: Budget
) -> tuple[float, int]:
    """Updates/s of ``update_many`` on batches of 64, and the drift episodes started meanwhile."""
    det = filled_detector(reference, stream, n)
    start = n + budget.warmup
    for i in range(n, start, BATCH):
        det.update_many(stream[i : min(i + BATCH, start)])
    batches = [stream[i : i + BATCH] for i in range(start, start + budget.batched, BATCH)]
    alarms = 0
    t0 = time.perf_counter()
    for batch in batches:
        det.update_many(batch)
        if det.transitions:
            alarms += sum(t.kind == DRIFT_STARTED for t in det.transitions)
    rate = _rate(budget.batched, time.perf_counter() - t0)
    check_exact(det, reference)
    return rate, alarms


def time_ks_2samp(reference: FloatArray, stream: FloatArray, n: int, budget: Budget) -> float:
    window = stream[:n].copy()
    pos = 0
    count = budget.ks_2samp(n)
    warm = stream[n : n + 10].tolist()
    xs = stream[n + 10 : n + 10 + count].tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for x in warm:
            window[pos] = x
            pos = (pos + 1) % n
            stats.ks_2samp(reference, window)
        t0 = time.perf_counter()
        for x in xs:
            window[pos] = x
            pos += 1
            if pos == n:
                pos = 0
            stats.ks_2samp(reference, window)
        return _rate(count, time.perf_counter() - t0)


def _time_kswin(
    detector: drift.KSWIN, xs: FloatArray, warmup: int, count: int
) -> tuple[float, int]:
    """Updates/s of a KSWIN over ``count`` tested updates, and its detections meanwhile.

    KSWIN empties most of its window after a detection and tests nothing until it is full
    again; those refill updates are run but not timed, so the rate is the steady state's.
    """
    values = xs.tolist()
    for x in values[:warmup]:
        detector.update(x)
    detections = timed = 0
    elapsed = 0.0
    for x in values[warmup:]:
        if len(detector.window) < detector.window_size:
            detector.update(x)
            continue
        t0 = time.perf_counter()
        detector.update(x)
        elapsed += time.perf_counter() - t0
        timed += 1
        detections += bool(detector.drift_detected)
        if timed == count:
            break
    return _rate(timed, elapsed), detections


def time_kswin(stream: FloatArray, n: int, budget: Budget) -> tuple[float, int]:
    """KSWIN testing the latest N values against the N before them (window pre-filled, 2N)."""
    det = drift.KSWIN(
        alpha=KSWIN_ALPHA,
        window_size=2 * n,
        stat_size=n,
        seed=SEED,
        window=stream[: 2 * n].tolist(),
    )
    return _time_kswin(det, stream[2 * n :], 5, budget.kswin(n))


def time_kswin_lite(stream: FloatArray, n: int, budget: Budget) -> tuple[float, int]:
    """KSWIN with window N and stat_size min(N // 3, 1000) (window pre-filled)."""
    det = drift.KSWIN(
        alpha=KSWIN_ALPHA,
        window_size=n,
        stat_size=min(n // 3, 1000),
        seed=SEED,
        window=stream[:n].tolist(),
    )
    return _time_kswin(det, stream[n:], 20, budget.kswin_lite)


def time_set_reference(
    reference: FloatArray, stream: FloatArray, n: int, new_refs: list[FloatArray], calls: int
) -> float:
    """Milliseconds per ``set_reference`` of a new N-value reference on a full window."""
    det = filled_detector(reference, stream, n)
    det.set_reference(new_refs[-1])
    t0 = time.perf_counter()
    for i in range(calls):
        det.set_reference(new_refs[i % len(new_refs)])
    return 1e3 * (time.perf_counter() - t0) / calls


@dataclass(slots=True)
class Memory:
    distinct_reference_values: int
    held_bytes: int
    peak_bytes: int
    pickled_bytes: int


def measure_memory(reference: FloatArray, stream: FloatArray, n: int) -> Memory:
    """tracemalloc around constructing a detector and filling its window (caches warmed first)."""
    warm = filled_detector(reference, stream, n)
    _ = warm.p_value
    del warm
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        det = filled_detector(reference, stream, n)
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pickled = len(pickle.dumps(det, protocol=pickle.HIGHEST_PROTOCOL))
    return Memory(len(np.unique(reference)), current - base, peak - base, pickled)


# ---------------------------------------------------------------------------- one case
@dataclass(slots=True)
class CaseResult:
    data: str
    n: int
    memory: Memory
    updates: dict[str, int]
    rates: dict[str, list[float]] = field(default_factory=dict)
    set_reference_ms: list[float] = field(default_factory=list)
    alarms: list[int] = field(default_factory=list)
    river_detections: dict[str, list[int]] = field(default_factory=dict)

    def median(self, key: str) -> float:
        return statistics.median(self.rates[key])

    def ratio(self, num: str, den: str) -> float:
        """Median of per-repeat ratios (each pair measured in the same repeat)."""
        return statistics.median(
            a / b for a, b in zip(self.rates[num], self.rates[den], strict=True)
        )


CONTENDERS = ("event", "batched", "ks_2samp", "kswin", "kswin_lite")


def run_case(case: Case, budget: Budget, repeats: int, log: Callable[[str], None]) -> CaseResult:
    """All contenders on one case; every repeat draws a fresh null stream (same reference)."""
    n = case.n
    seed_key = [SEED, n, sorted(DATA_LABELS).index(case.data)]
    rng = np.random.default_rng(seed_key)
    reference = draw(case.data, rng, n)
    new_refs = [draw(case.data, rng, n) for _ in range(2)]

    def stream_for(repeat: int) -> FloatArray:
        rng = np.random.default_rng([*seed_key, repeat])
        return draw(case.data, rng, budget.stream_length(n))

    result = CaseResult(
        case.data,
        n,
        measure_memory(reference, stream_for(0), n),
        {
            "event": budget.event,
            "batched": budget.batched,
            "ks_2samp": budget.ks_2samp(n),
            "kswin": budget.kswin(n),
            "kswin_lite": budget.kswin_lite,
            "set_reference": budget.set_reference_calls(n),
        },
        rates={name: [] for name in CONTENDERS},
        river_detections={"kswin": [], "kswin_lite": []},
    )
    for r in range(repeats):
        stream = stream_for(r)
        log(f"  {case.data} N={n:,}: repeat {r + 1}/{repeats}")
        result.rates["event"].append(time_per_event(reference, stream, n, budget))
        rate, alarms = time_batched(reference, stream, n, budget)
        result.rates["batched"].append(rate)
        result.alarms.append(alarms)
        result.rates["ks_2samp"].append(time_ks_2samp(reference, stream, n, budget))
        for name, timer in (("kswin", time_kswin), ("kswin_lite", time_kswin_lite)):
            rate, detections = timer(stream, n, budget)
            result.rates[name].append(rate)
            result.river_detections[name].append(detections)
        result.set_reference_ms.append(
            time_set_reference(reference, stream, n, new_refs, budget.set_reference_calls(n))
        )
    return result


# ---------------------------------------------------------------------------- report
def fmt_rate(v: float) -> str:
    if v >= 99_950:
        return f"{v / 1e3:,.0f}k"
    if v >= 1_000:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(v: float) -> str:
    return f"{v:,.0f}x" if v >= 99.5 else f"{v:.1f}x"


def table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Plain aligned text: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *(line(r) for r in rows)]


def report(results: list[CaseResult], meta: dict[str, object], budget: Budget) -> str:
    n_values = sorted({r.n for r in results})
    counts = "; ".join(
        f"N={n:,}: ks_2samp {budget.ks_2samp(n):,}, KSWIN {budget.kswin(n):,}" for n in n_values
    )
    out = [
        f"driftwatch detector benchmark -- {meta['mode']} mode, {meta['repeats']} repeat(s), "
        f"{meta['date']}",
        f"python {meta['python']}, numpy {meta['numpy']}, scipy {meta['scipy']}, "
        f"river {meta['river']}; {meta['cpus']} CPU(s); {meta['platform']}",
        "Reference of N values vs a sliding window of N values; null stream (same distribution).",
        "  event    IncrementalKS(reference, window_size=N).update(x), alpha=0.05 (defaults)",
        f"  batch64  the same detector, update_many() on numpy batches of {BATCH}",
        "  ks_2samp scipy.stats.ks_2samp(reference, window) after every update (numpy ring)",
        f"  KSWIN    river KSWIN(alpha={KSWIN_ALPHA}, window_size=2N, stat_size=N): the latest N",
        "           values against the N before them -- the detector's sample sizes and memory",
        f"  lite     river KSWIN(alpha={KSWIN_ALPHA}, window_size=N, stat_size=min(N//3, 1000)):",
        "           closer to river's defaults (100/30); cheaper, and a far weaker test",
        f"Timed updates per repeat: event {budget.event:,}; batch64 {budget.batched:,}; "
        f"lite {budget.kswin_lite:,};",
        f"  {counts}.",
        "Each repeat draws a fresh null stream and runs every contender on it, in turn.",
        "Rates: updates/s, median over repeats ((min): slowest repeat). Ratios: median of",
        "per-repeat ratios.",
        "",
    ]
    rows = []
    for r in results:
        rows.append(
            [
                r.data,
                f"{r.n:,}",
                fmt_rate(r.median("event")),
                fmt_rate(r.median("batched")),
                fmt_rate(min(r.rates["batched"])),
                fmt_rate(r.median("ks_2samp")),
                fmt_rate(r.median("kswin")),
                fmt_rate(r.median("kswin_lite")),
                fmt_ratio(r.ratio("batched", "ks_2samp")),
                fmt_ratio(r.ratio("event", "ks_2samp")),
                fmt_ratio(r.ratio("batched", "kswin")),
                fmt_ratio(r.ratio("batched", "kswin_lite")),
            ]
        )
    out += table(
        [
            "data",
            "N",
            "event/s",
            "batch64/s",
            "(min)",
            "ks_2samp/s",
            "KSWIN/s",
            "lite/s",
            "batch/ks",
            "event/ks",
            "batch/KSWIN",
            "batch/lite",
        ],
        rows,
    )
    out.append("")
    rows = []
    for r in results:
        m = r.memory
        rows.append(
            [
                r.data,
                f"{r.n:,}",
                f"{m.distinct_reference_values:,}",
                f"{m.held_bytes / r.n:.1f}",
                f"{m.peak_bytes / r.n:.1f}",
                f"{m.pickled_bytes / r.n:.1f}",
                f"{statistics.median(r.set_reference_ms):.2f}",
                f"{statistics.median(r.alarms):g}",
            ]
        )
    out += table(
        ["data", "N", "K", "held B/obs", "peak B/obs", "pickle B/obs", "set_ref ms", "alarms"],
        rows,
    )
    out += [
        "",
        "K: distinct reference values. held: bytes tracemalloc still counts after constructing the",
        "detector and filling its window (caches warmed beforehand), divided by N; peak: the",
        "transient peak during that; pickle: len(pickle.dumps(detector)) / N. set_ref ms: one",
        "set_reference() with a new N-value reference, window full. alarms: drift episodes started",
        f"during the timed batch64 run ({budget.batched:,} null updates, alpha=0.05 tested after",
        "every update, so false alarms are expected), median over repeats.",
        "",
        "Data:",
        *(f"  {key:<11}{label}" for key, label in DATA_LABELS.items()),
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer updates")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5; quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="also save raw numbers here")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    budget = Budget(quick=args.quick)
    meta: dict[str, object] = {
        "mode": "quick" if args.quick else "full",
        "repeats": repeats,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "river": river.__version__,
        "cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(terse=True),
        "batch": BATCH,
        "seed": SEED,
    }

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = []
    t0 = time.perf_counter()
    for case in CASES:
        results.append(run_case(case, budget, repeats, log))
    log(f"done in {time.perf_counter() - t0:.1f} s")
    print(report(results, meta, budget))
    if args.json is not None:
        payload = {"meta": meta, "cases": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
