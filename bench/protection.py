"""Time to protection of a cold fleet: calibrating every stream of N agents x 4 features.

Usage::

    nice -n 10 .venv/bin/python bench/protection.py [--agents 10000] [--reference 1000]
        [--window 200] [--ert 1e5] [--anchor 10] [--check-refs 60] [--check-obs 200000]
        [--check-from 0]

Each agent has its own profile (the ranges of ``stream.tools.simulation.TelemetrySimulator``):
lognormal latency rounded to 0.1 ms, Poisson token counts, zero-inflated retry counts and
beta error rates rounded to 4 decimals -- 1 continuous and 3 tied features. For every stream
the reference is drawn, its atoms counted and its threshold calibrated exactly as
``IncrementalKS(reference, window, ert=E)`` does it (``calibrate_gap`` with the detector's
defaults), one stream after the other in this process: one core. Reported:

* the time to protect the whole cold fleet (every stream calibrated), and its CPU per stream
  by feature (mean and p99), the shared calibrations computed (misses) and reused (hits);
* the anchor, measured in the same run: ``--anchor`` streams per tied feature calibrated on
  their own counts (``share=False``, what every stream cost before sharing), and the ratio;
* the false-alarm check of shared thresholds: for ``--check-refs`` agents per feature, an
  ``IncrementalKS`` on that agent's reference (served the shared calibration) counts its drift
  episode starts on ``--check-obs`` fresh null observations from the same agent's profile
  (``detectors.null_rate.count_false_starts``, the detector's own rule). The mean over
  references of measured / target rate must be within +-30 %.

The JIT compile of the kernels happens before the timed part (a warm-up calibration) and is
reported separately.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

import detectors.ks_alarm as ks_alarm  # noqa: E402
from detectors.calibration import calibrate_gap, shared_calibrations  # noqa: E402
from detectors.ks import IncrementalKS  # noqa: E402
from detectors.null_rate import count_false_starts  # noqa: E402
from detectors.signature import tie_signature  # noqa: E402

SEED = 20_261_214
STEPS = 20_000
FloatArray = npt.NDArray[np.float64]
Draw = Callable[[np.random.Generator, int], FloatArray]
FEATURES = ("latency", "tokens", "retries", "error_rate")


def profile(agent: int) -> dict[str, Draw]:
    """The four feature generators of one agent (its own parameters)."""
    r = np.random.default_rng([SEED, agent])
    log_mean, log_sd = float(np.log(r.uniform(400, 1200))), float(r.uniform(0.25, 0.45))
    tokens = float(r.uniform(200, 800))
    zero, retry_mean = float(r.uniform(0.8, 0.92)), float(r.uniform(0.3, 0.8))
    b = float(r.uniform(40, 80))
    return {
        "latency": lambda g, k: np.round(g.lognormal(log_mean, log_sd, k), 1),
        "tokens": lambda g, k: g.poisson(tokens, k).astype(np.float64),
        "retries": lambda g, k: np.where(g.random(k) < zero, 0.0, 1.0 + g.poisson(retry_mean, k)),
        "error_rate": lambda g, k: np.round(g.beta(2.0, b, k), 4),
    }


def reference_of(agent: int, feature: str, size: int) -> FloatArray:
    rng = np.random.default_rng([SEED, agent, FEATURES.index(feature), 1])
    return profile(agent)[feature](rng, size)


def calibrate(
    ref: FloatArray, window: int, ert: float, share: bool
) -> tuple[float, tuple[int, ...] | None]:
    """CPU seconds to calibrate one stream as IncrementalKS does, and its tie signature."""
    started = time.process_time()
    _, counts = np.unique(ref, return_counts=True)
    cal = calibrate_gap(
        counts, window, ert, resolve_ratio=0.6, resolve_after=window, seed=0, share=share
    )
    seconds = time.process_time() - started
    return seconds, None if cal.model == "continuous" else tie_signature(counts).key


def protect(
    agents: int, size: int, window: int, ert: float
) -> tuple[dict[str, list[float]], dict[str, set[tuple[int, ...]]]]:
    cpu: dict[str, list[float]] = {f: [] for f in FEATURES}
    keys: dict[str, set[tuple[int, ...]]] = {f: set() for f in FEATURES}
    for agent in range(agents):
        for feature in FEATURES:
            seconds, key = calibrate(reference_of(agent, feature, size), window, ert, True)
            cpu[feature].append(seconds)
            if key is not None:
                keys[feature].add(key)
    return cpu, keys


def check(
    feature: str, refs: int, size: int, window: int, ert: float, observations: int, first: int = 0
) -> tuple[int, float, list[float]]:
    """False starts of shared-threshold detectors on their own null streams (agents ``first``
    to ``first + refs - 1``)."""
    ratios = []
    total = 0
    rows = max(1, observations // STEPS)
    ks_alarm.calibrate_gap = functools.partial(calibrate_gap, share=True)  # the detectors share too
    for agent in range(first, first + refs):
        det = IncrementalKS(reference_of(agent, feature, size), window, ert=ert)
        draw = profile(agent)[feature]
        rng = np.random.default_rng([SEED, agent, FEATURES.index(feature), 2])
        starts = sum(count_false_starts(det, draw(rng, STEPS)[None, :]) for _ in range(rows))
        total += starts
        ratios.append(starts / (rows * (STEPS - window + 1)) * ert)
    return total, rows * (STEPS - window + 1) * refs / ert, ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--reference", type=int, default=1_000)
    p.add_argument("--window", type=int, default=200)
    p.add_argument("--ert", type=float, default=100_000.0)
    p.add_argument("--anchor", type=int, default=10)
    p.add_argument("--check-refs", type=int, default=60)
    p.add_argument("--check-obs", type=int, default=200_000)
    p.add_argument(
        "--check-from",
        type=int,
        default=0,
        help="first agent of the false-alarm check (agents not used to choose the signature)",
    )
    a = p.parse_args()
    print(f"# python bench/protection.py {' '.join(sys.argv[1:])}")
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} "
        f"cores, load average {os.getloadavg()[0]:.2f} at start, one calibrating thread"
    )
    started = time.perf_counter()
    calibrate(reference_of(10**9, "retries", 300), 20, 2_000.0, False)  # JIT compile
    print(f"JIT warm-up (compile or load the kernel cache): {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    cpu, keys = protect(a.agents, a.reference, a.window, a.ert)
    wall = time.perf_counter() - started
    hits, misses = shared_calibrations()
    streams = a.agents * len(FEATURES)
    tied = [s for f in FEATURES[1:] for s in cpu[f]]
    print(
        f"\nCold fleet: {a.agents:,} agents x {len(FEATURES)} features = {streams:,} streams "
        f"(reference {a.reference:,}, window {a.window}, ert {a.ert:,.0f})"
    )
    total_cpu = sum(map(sum, cpu.values()))
    print(f"time to protect every stream: {wall:,.1f} s wall, {total_cpu:,.1f} s CPU")
    print(f"shared tied calibrations: {misses:,} computed, {hits:,} reused "
          f"(hit rate {hits / max(1, hits + misses):.1%})")  # fmt: skip
    print(f"mean CPU per tied stream: {1e3 * statistics.mean(tied):.1f} ms")
    print(f"\n{'feature':<11} {'signatures':>10} {'mean ms':>8} {'p99 ms':>8} {'max s':>7} "
          f"{'own-counts ms':>13} {'ratio':>6}")  # fmt: skip
    for feature in FEATURES:
        xs = sorted(cpu[feature])
        sigs = keys[feature]
        own = [
            calibrate(reference_of(10**6 + i, feature, a.reference), a.window, a.ert, False)[0]
            for i in range(a.anchor if feature != "latency" else 0)
        ]
        own_ms = f"{1e3 * statistics.median(own):,.0f}" if own else "-"
        ratio = f"{statistics.median(own) / statistics.mean(xs):,.0f}x" if own else "-"
        print(
            f"{feature:<11} {len(sigs) if sigs else '-':>10} {1e3 * statistics.mean(xs):>8.1f} "
            f"{1e3 * xs[int(0.99 * (len(xs) - 1))]:>8.1f} {xs[-1]:>7.2f} {own_ms:>13} {ratio:>6}"
        )
    print("(own-counts ms: median CPU of one calibration on the stream's own counts, no sharing;")
    print(" ratio: that anchor over the mean per-stream cost with sharing, same run)")

    print(f"\nFalse alarms on shared thresholds ({a.check_refs} agents per feature from agent "
          f"{a.check_from:,}, {a.check_obs:,} null observations each)")  # fmt: skip
    print(f"{'feature':<11} {'alarms':>7} {'expected':>8} {'mean ratio':>10} {'<=1.3x':>7} "
          f"{'median':>7} {'range':>11}")  # fmt: skip
    for feature in FEATURES:
        total, expected, ratios = check(
            feature, a.check_refs, a.reference, a.window, a.ert, a.check_obs, a.check_from
        )
        share = sum(r <= 1.3 for r in ratios) / len(ratios)
        print(
            f"{feature:<11} {total:>7,} {expected:>8,.0f} {statistics.mean(ratios):>10.2f} "
            f"{share:>7.0%} {statistics.median(ratios):>7.2f} "
            f"{min(ratios):>5.2f}-{max(ratios):<5.2f}"
        )
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
