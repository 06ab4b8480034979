"""Detection quality: calibrated false-alarm rates and detection delays, driftwatch against river.

Usage::

    .venv/bin/python bench/detection.py [--quick] [--seeds S] [--json FILE] [--plot FILE.png]

Every scenario is run with S seeds (default 20). Each seed draws a fresh reference of 1,000
observations from the scenario's baseline and a fresh stream; every detector of the run sees the
same reference (if it uses one) and the same stream.

Detectors
---------
* driftwatch ``IncrementalKS(reference, window_size=W, ert=E)`` for W in {50, 200} and E in
  {1,000, 10,000}, every other argument at its default (resolve_ratio 0.6, resolve_after W,
  calibration seed 0). An alarm is a drift episode start (``drift_started``).
* river ADWIN, KSWIN (``seed`` = the scenario seed) and PageHinkley at river's defaults, through
  ``detectors.river_adapters`` with ``resolve_after=1``: an alarm is one river detection (river
  resets itself after each detection, so two detections never fall on consecutive updates and
  each starts its own episode).

All detectors are fed with ``update_many`` in chunks of 1,000 observations.

Null scenarios (nothing drifts): false alarms per 100k observations. driftwatch's target is
100k / E. A seed's stream is 50,000 observations for E = 1,000 and 200,000 for E = 10,000 (about
50 and 20 expected alarms per seed); ADWIN and PageHinkley run on the 200,000, KSWIN (a scipy
``ks_2samp`` per observation, about 6k observations/s) on the first 10,000. The four features of
one agent (Gaussian copula, pairwise correlation 0.6) each get their own detector; an agent
*incident* starts when the first of its features enters a drift episode while none was in one,
and is compared with four times the per-stream target.

Drift scenarios: 2,200 baseline observations (the largest window, 200, then 2,000 more), 5,000
changed ones, then 2,000 baseline ones again. Delay = observations after the change up to and
including the one whose update starts the first alarm after the change (a window of W fully past
the change has delay W); a miss is no alarm in the 5,000. Median and p90 count misses as
infinitely late. Alarms during the change beyond the first are counted (one change should give
one episode), and so is whether the episode still open when the change ends resolves within the
2,000 baseline observations that follow. An episode still open at the change (a false alarm
shortly before it) is reported separately: the change then raises no new alarm until that
episode has resolved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/detectors.py is named like the ``detectors`` package: keep this folder off the import path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import river  # noqa: E402
import scipy  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import special, stats  # noqa: E402

from detectors.base import DRIFT_STARTED, DriftDetector  # noqa: E402
from detectors.ks import IncrementalKS  # noqa: E402
from detectors.river_adapters import (  # noqa: E402
    ADWINDetector,
    KSWINDetector,
    PageHinkleyDetector,
)

FloatArray = npt.NDArray[np.float64]
Generator = Callable[[np.random.Generator, int], FloatArray]

SEED = 20_261_124
REF_N = 1_000
CHUNK = 1_000
PRE = 2_200
POST = 5_000
BACK = 2_000
RAMP = 500
TOLERANCE = 0.30
ACCEPT_DELAY = 51


# ---------------------------------------------------------------------------- detectors
@dataclass(frozen=True, slots=True)
class KSConfig:
    window: int
    ert: int

    @property
    def name(self) -> str:
        return f"KS W{self.window} E{self.ert // 1000}k"

    @property
    def target(self) -> float:
        """False alarms per 100k observations."""
        return 1e5 / self.ert


KS_CONFIGS = (
    KSConfig(50, 1_000),
    KSConfig(50, 10_000),
    # (window 200 with ERT 1,000 is refused: a false episode alone lasts ~400 observations)
    KSConfig(200, 10_000),
)
RIVER = ("ADWIN", "KSWIN", "PageHinkley")
DETECTORS = (*(c.name for c in KS_CONFIGS), *RIVER)


def river_detector(name: str, seed: int) -> DriftDetector:
    if name == "ADWIN":
        return ADWINDetector(resolve_after=1)
    if name == "KSWIN":
        return KSWINDetector(seed=seed, resolve_after=1)
    if name == "PageHinkley":
        return PageHinkleyDetector(resolve_after=1)
    raise ValueError(name)


@dataclass(slots=True)
class CalRecord:
    """One calibrated detector: its cost and its thresholds."""

    detector: str
    scenario: str
    model: str
    seconds: float
    construct_seconds: float
    threshold: float
    simulated_rate: float
    pickle_bytes: int = 0


@dataclass(slots=True)
class Recorder:
    calibrations: list[CalRecord] = field(default_factory=list)

    def build(self, cfg: KSConfig, reference: FloatArray, scenario: str) -> IncrementalKS:
        t0 = time.perf_counter()
        det = IncrementalKS(reference, window_size=cfg.window, ert=cfg.ert)
        elapsed = time.perf_counter() - t0
        cal = det.calibration
        assert cal is not None
        self.calibrations.append(
            CalRecord(
                cfg.name,
                scenario,
                cal.model,
                cal.seconds,
                elapsed,
                cal.threshold(REF_N, cfg.window),
                cal.simulated_rate,
            )
        )
        return det


def run_stream(det: DriftDetector, xs: FloatArray) -> list[tuple[int, int]]:
    """Feed ``xs`` in chunks; the drift episodes as ``[start, end)`` in ``n_seen`` terms.

    An episode started by update ``s`` and resolved by update ``e`` covers ``[s, e)``; one still
    open at the end gets ``e = len(xs) + 1``.
    """
    episodes: list[tuple[int, int]] = []
    start = -1
    for k in range(0, xs.shape[0], CHUNK):
        det.update_many(xs[k : k + CHUNK])
        for tr in det.transitions:
            if tr.kind == DRIFT_STARTED:
                start = tr.index
            else:
                episodes.append((start, tr.index))
                start = -1
    if start >= 0:
        episodes.append((start, xs.shape[0] + 1))
    return episodes


def in_drift_events(episodes: list[tuple[int, int]], n: int) -> int:
    return sum(min(e, n + 1) - s for s, e in episodes)


def union_episodes(episode_lists: list[list[tuple[int, int]]]) -> tuple[int, int]:
    """Starts of "any feature in an episode" over several features, and the updates it covers."""
    merged = sorted(ep for eps in episode_lists for ep in eps)
    count, covered, begin, reach = 0, 0, -1, -1
    for s, e in merged:
        if s > reach:  # a start in the update that resolved another: same incident
            count += 1
            covered += reach - begin if reach > begin else 0
            begin = s
        reach = max(reach, e)
    covered += reach - begin if reach > begin else 0
    return count, covered


# ---------------------------------------------------------------------------- data
LAT_MU, LAT_SIGMA = math.log(0.8), 0.5  # latency in seconds, median 0.8 s
TOKENS = 150.0
RETRY_P, RETRY_EXTRA = 0.15, 0.5
ERR_A, ERR_B = 2.0, 60.0
RHO = 0.6
MIX_MU = 0.9  # two-component mixture at +-0.9 with unit total variance


def normal(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.normal(size=size)


def latency(rng: np.random.Generator, size: int) -> FloatArray:
    return np.exp(rng.normal(LAT_MU, LAT_SIGMA, size=size))


def tokens(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.poisson(TOKENS, size=size).astype(np.float64)


def retries_with(p: float) -> Generator:
    def draw(rng: np.random.Generator, size: int) -> FloatArray:
        extra = 1.0 + rng.poisson(RETRY_EXTRA, size=size)
        return np.where(rng.random(size) < p, extra, 0.0)

    return draw


def error_rate(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.beta(ERR_A, ERR_B, size=size)


def agent(rng: np.random.Generator, size: int) -> dict[str, FloatArray]:
    """Four features of one agent from a Gaussian copula with pairwise correlation ``RHO``."""
    corr = np.full((4, 4), RHO) + (1 - RHO) * np.eye(4)
    z = rng.normal(size=(size, 4)) @ np.linalg.cholesky(corr).T
    u = special.ndtr(z)
    q = np.clip((u[:, 2] - (1 - RETRY_P)) / RETRY_P, 1e-300, 1.0)
    retry = np.where(u[:, 2] < 1 - RETRY_P, 0.0, 1.0 + stats.poisson.ppf(q, RETRY_EXTRA))
    return {
        "latency": np.exp(LAT_MU + LAT_SIGMA * z[:, 0]),
        "tokens": stats.poisson.ppf(u[:, 1], TOKENS).astype(np.float64),
        "retries": retry.astype(np.float64),
        "error_rate": stats.beta.ppf(u[:, 3], ERR_A, ERR_B),
    }


def single(gen: Generator) -> Callable[[np.random.Generator, int], dict[str, FloatArray]]:
    return lambda rng, size: {"": gen(rng, size)}


@dataclass(frozen=True, slots=True)
class NullScenario:
    name: str
    label: str
    draw: Callable[[np.random.Generator, int], dict[str, FloatArray]]


NULLS = (
    NullScenario("normal", "N(0,1)", single(normal)),
    NullScenario("latency", "lognormal latency, median 0.8 s, sigma 0.5", single(latency)),
    NullScenario("tokens", f"Poisson({TOKENS:g}) token counts", single(tokens)),
    NullScenario(
        "retries",
        f"retry counts: {1 - RETRY_P:.0%} zeros, else 1+Poisson({RETRY_EXTRA})",
        single(retries_with(RETRY_P)),
    ),
    NullScenario("error_rate", f"Beta({ERR_A:g},{ERR_B:g}) error rate", single(error_rate)),
    NullScenario("agent", f"the four above from a Gaussian copula, rho={RHO}", agent),
)


@dataclass(frozen=True, slots=True)
class DriftScenario:
    name: str
    label: str
    base: Generator
    changed: Generator


def shifted(delta: float) -> Generator:
    return lambda rng, size: rng.normal(delta, 1.0, size=size)


def scaled_variance(factor: float) -> Generator:
    return lambda rng, size: rng.normal(0.0, math.sqrt(factor), size=size)


def bimodal(rng: np.random.Generator, size: int) -> FloatArray:
    sign = np.where(rng.random(size) < 0.5, -1.0, 1.0)
    return sign * MIX_MU + math.sqrt(1 - MIX_MU**2) * rng.normal(size=size)


def ramp(rng: np.random.Generator, size: int) -> FloatArray:
    return rng.normal(size=size) + np.minimum(np.arange(1, size + 1) / RAMP, 1.0)


DRIFTS = (
    DriftScenario("shift 0.25sd", "N(0,1) -> N(0.25,1)", normal, shifted(0.25)),
    DriftScenario("shift 0.5sd", "N(0,1) -> N(0.5,1)", normal, shifted(0.5)),
    DriftScenario("shift 1sd", "N(0,1) -> N(1,1)", normal, shifted(1.0)),
    DriftScenario("variance x1.5", "N(0,1) -> N(0,1.5)", normal, scaled_variance(1.5)),
    DriftScenario(
        "shape",
        f"N(0,1) -> 0.5 N(-{MIX_MU},{1 - MIX_MU**2:.2f}) + 0.5 N({MIX_MU},{1 - MIX_MU**2:.2f})",
        normal,
        bimodal,
    ),
    DriftScenario("gradual 1sd", f"mean 0 -> 1 sd linearly over {RAMP} observations", normal, ramp),
    DriftScenario(
        "retry 5%->8%",
        f"retries: non-zero probability 5% -> 8% (1+Poisson({RETRY_EXTRA}))",
        retries_with(0.05),
        retries_with(0.08),
    ),
)


# ---------------------------------------------------------------------------- budgets
@dataclass(frozen=True, slots=True)
class Budget:
    quick: bool
    seeds: int

    def null_length(self, det: str) -> int:
        scale = 5 if self.quick else 1
        if det == "KSWIN":
            return 10_000 // scale
        if det.startswith("KS ") and det.endswith("E1k"):
            return 50_000 // scale
        return 200_000 // scale

    @property
    def stream_length(self) -> int:
        return 200_000 // (5 if self.quick else 1)


def rng_for(kind: str, index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([SEED, {"null": 0, "drift": 1}[kind], index, seed])


# ---------------------------------------------------------------------------- runs
def run_nulls(budget: Budget, rec: Recorder, log: Callable[[str], None]) -> dict[str, Any]:
    """Per scenario (and agent feature), per detector, per seed: alarms, events, in-drift time."""
    out: dict[str, Any] = {}
    for si, sc in enumerate(NULLS):
        t0 = time.perf_counter()
        for seed in range(budget.seeds):
            rng = rng_for("null", si, seed)
            refs = sc.draw(rng, REF_N)
            streams = sc.draw(rng, budget.stream_length)
            per_feature: dict[str, list[list[tuple[int, int]]]] = {}
            for feat, xs in streams.items():
                key = f"{sc.name}/{feat}" if feat else sc.name
                scen = out.setdefault(key, {d: [] for d in DETECTORS})
                for cfg in KS_CONFIGS:
                    n = budget.null_length(cfg.name)
                    det = rec.build(cfg, refs[feat], key)
                    eps = run_stream(det, xs[:n])
                    rec.calibrations[-1].pickle_bytes = len(pickle.dumps(det))
                    per_feature.setdefault(cfg.name, []).append(eps)
                    scen[cfg.name].append(
                        {"events": n, "alarms": len(eps), "in_drift": in_drift_events(eps, n)}
                    )
                for name in RIVER:
                    n = budget.null_length(name)
                    eps = run_stream(river_detector(name, seed), xs[:n])
                    scen[name].append({"events": n, "alarms": len(eps), "in_drift": 0})
            if len(streams) > 1:
                scen = out.setdefault(f"{sc.name}/any", {c.name: [] for c in KS_CONFIGS})
                for cfg in KS_CONFIGS:
                    n = budget.null_length(cfg.name)
                    incidents, covered = union_episodes(per_feature[cfg.name])
                    scen[cfg.name].append(
                        {
                            "events": n,
                            "alarms": incidents,
                            "in_drift": min(covered, n),
                            "streams": len(streams),
                        }
                    )
        log(f"null {sc.name}: {time.perf_counter() - t0:.0f} s")
    return out


def run_drifts(budget: Budget, rec: Recorder, log: Callable[[str], None]) -> dict[str, Any]:
    """Per scenario, per detector, per seed: delay (or None), pre-change alarms, open at change."""
    out: dict[str, Any] = {}
    for si, sc in enumerate(DRIFTS):
        t0 = time.perf_counter()
        scen: dict[str, list[dict[str, Any]]] = {d: [] for d in DETECTORS}
        for seed in range(budget.seeds):
            rng = rng_for("drift", si, seed)
            ref = sc.base(rng, REF_N)
            xs = np.r_[sc.base(rng, PRE), sc.changed(rng, POST), sc.base(rng, BACK)]
            for name in DETECTORS:
                if name in RIVER:
                    det = river_detector(name, seed)
                else:
                    cfg = next(c for c in KS_CONFIGS if c.name == name)
                    det = rec.build(cfg, ref, sc.name)
                eps = run_stream(det, xs)
                end = PRE + POST
                after = [s for s, _ in eps if PRE < s <= end]
                held = [e for s, e in eps if s <= end < e]  # the episode open when it ends
                scen[name].append(
                    {
                        "delay": after[0] - PRE if after else None,
                        "pre_alarms": sum(s <= PRE for s, _ in eps),
                        "open_at_change": any(s <= PRE < e for s, e in eps),
                        "starts": len(after),
                        "open_at_end": bool(held),
                        "resolved_after_end": bool(held) and held[0] <= end + BACK,
                    }
                )
        out[sc.name] = scen
        log(f"drift {sc.name}: {time.perf_counter() - t0:.0f} s")
    return out


# ---------------------------------------------------------------------------- summaries
def poisson_within(lam: float, tol: float = TOLERANCE) -> float:
    """P(|X - lam| <= tol * lam) for X ~ Poisson(lam): the spread counting noise alone gives."""
    lo, hi = math.ceil(lam * (1 - tol)), math.floor(lam * (1 + tol))
    return float(stats.poisson.cdf(hi, lam) - stats.poisson.cdf(lo - 1, lam))


def null_summary(key: str, det: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    events = sum(r["events"] for r in runs)
    alarms = sum(r["alarms"] for r in runs)
    row: dict[str, Any] = {
        "scenario": key,
        "detector": det,
        "seeds": len(runs),
        "events_per_seed": runs[0]["events"],
        "alarms": alarms,
        "per_100k": 1e5 * alarms / events,
        "in_drift_share": sum(r["in_drift"] for r in runs) / events,
    }
    cfg = next((c for c in KS_CONFIGS if c.name == det), None)
    if cfg is not None:
        target = cfg.target * runs[0].get("streams", 1)
        expected = runs[0]["events"] * target / 1e5
        ratios = [r["alarms"] / expected for r in runs]
        row |= {
            "target_per_100k": target,
            "ratio": row["per_100k"] / target,
            "seed_ratio_min": min(ratios),
            "seed_ratio_median": statistics.median(ratios),
            "seed_ratio_max": max(ratios),
            "within_30": sum(abs(q - 1) <= TOLERANCE for q in ratios) / len(ratios),
            "within_30_poisson": poisson_within(expected),
        }
    return row


def quantile_delay(delays: list[float], q: float) -> float:
    """Lower empirical quantile; misses are infinite."""
    ordered = sorted(delays)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def drift_summary(scenario: str, det: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    delays = [math.inf if r["delay"] is None else float(r["delay"]) for r in runs]
    cfg = next((c for c in KS_CONFIGS if c.name == det), None)
    return {
        "scenario": scenario,
        "detector": det,
        "seeds": len(runs),
        "median_delay": statistics.median(delays),
        "p90_delay": quantile_delay(delays, 0.9),
        "misses": sum(math.isinf(d) for d in delays),
        "open_at_change": sum(r["open_at_change"] for r in runs),
        "missed_while_open": sum(r["open_at_change"] and r["delay"] is None for r in runs),
        "pre_alarms": sum(r["pre_alarms"] for r in runs),
        "starts_mean": statistics.mean(r["starts"] for r in runs),
        "multi_start": sum(r["starts"] > 1 for r in runs),
        "open_at_end": sum(r["open_at_end"] for r in runs),
        "resolved_after_end": sum(r["resolved_after_end"] for r in runs),
        "pre_alarms_expected": (
            len(runs) * (PRE - cfg.window + 1) / cfg.ert if cfg is not None else math.nan
        ),
    }


def calibration_summary(recs: list[CalRecord]) -> list[dict[str, Any]]:
    rows = []
    for cfg in KS_CONFIGS:
        for model in ("continuous", "discrete"):
            sel = [r for r in recs if r.detector == cfg.name and r.model == model]
            if not sel:
                continue
            sized = [r.pickle_bytes for r in sel if r.pickle_bytes]
            rows.append(
                {
                    "detector": cfg.name,
                    "model": model,
                    "detectors": len(sel),
                    "calibration_s_median": statistics.median(r.seconds for r in sel),
                    "calibration_s_max": max(r.seconds for r in sel),
                    "construct_ms_median": 1e3
                    * statistics.median(r.construct_seconds for r in sel),
                    "pickle_bytes_median": statistics.median(sized) if sized else math.nan,
                    "threshold_d_median": statistics.median(r.threshold for r in sel),
                    "simulated_ert_median": statistics.median(
                        1 / r.simulated_rate if r.simulated_rate > 0 else math.inf for r in sel
                    ),
                }
            )
    return rows


# ---------------------------------------------------------------------------- printing
def table(headers: list[str], rows: list[list[str]], left: int = 2) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def fmt(v: float, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(v):
        return "miss"
    return f"{v:,.{digits}f}"


def null_table(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        ks = "target_per_100k" in r
        body.append(
            [
                r["scenario"],
                r["detector"],
                f"{r['events_per_seed']:,}",
                f"{r['alarms']:,}",
                fmt(r["per_100k"], 1),
                fmt(r["target_per_100k"], 0) if ks else "-",
                fmt(r["ratio"]) if ks else "-",
                (
                    f"{r['seed_ratio_min']:.2f}/{r['seed_ratio_median']:.2f}/{r['seed_ratio_max']:.2f}"
                    if ks
                    else "-"
                ),
                f"{r['within_30']:.0%}" if ks else "-",
                f"{r['within_30_poisson']:.0%}" if ks else "-",
                f"{r['in_drift_share']:.1%}" if r["detector"] not in RIVER else "-",
                fmt(r["in_drift_share"] / r["per_100k"] * 1e5, 0)
                if r["detector"] not in RIVER and r["per_100k"] > 0 and r["in_drift_share"] > 0
                else "-",
            ]
        )
    headers = [
        "scenario",
        "detector",
        "obs/seed",
        "alarms",
        "per 100k",
        "target",
        "ratio",
        "seed ratio min/med/max",
        "+-30%",
        "(Poisson)",
        "in drift",
        "ep len",
    ]
    return table(headers, body)


def drift_table(rows: list[dict[str, Any]]) -> str:
    body = [
        [
            r["scenario"],
            r["detector"],
            fmt(r["median_delay"], 0),
            fmt(r["p90_delay"], 0),
            f"{r['misses']}/{r['seeds']}",
            f"{r['open_at_change']}",
            f"{r['missed_while_open']}",
            f"{r['pre_alarms']}",
            fmt(r["pre_alarms_expected"], 1),
            fmt(r["starts_mean"], 1),
            f"{r['multi_start']}",
            f"{r['resolved_after_end']}/{r['open_at_end']}",
        ]
        for r in rows
    ]
    headers = [
        "scenario",
        "detector",
        "median",
        "p90",
        "misses",
        "open@chg",
        "missed&open",
        "pre FA",
        "(target)",
        "starts",
        ">1",
        "resolved",
    ]
    return table(headers, body)


def calibration_table(rows: list[dict[str, Any]]) -> str:
    body = [
        [
            r["detector"],
            r["model"],
            str(r["detectors"]),
            fmt(r["calibration_s_median"]),
            fmt(r["calibration_s_max"]),
            fmt(r["construct_ms_median"], 1),
            f"{r['pickle_bytes_median']:,.0f}",
            f"{r['threshold_d_median']:.3f}",
            fmt(r["simulated_ert_median"], 0),
        ]
        for r in rows
    ]
    headers = [
        "detector",
        "reference",
        "built",
        "cal s med",
        "cal s max",
        "ctor ms med",
        "pickle B",
        "D thresh",
        "sim ERT",
    ]
    return table(headers, body)


# ---------------------------------------------------------------------------- plot
COLORS = {
    "KS W50 E1k": "#1f77b4",
    "KS W50 E10k": "#17becf",
    "KS W200 E1k": "#2ca02c",
    "KS W200 E10k": "#98df8a",
    "ADWIN": "#d62728",
    "KSWIN": "#ff7f0e",
    "PageHinkley": "#9467bd",
}
MARKERS = {
    "KS W50 E1k": "o",
    "KS W50 E10k": "o",
    "KS W200 E1k": "s",
    "KS W200 E10k": "s",
    "ADWIN": "^",
    "KSWIN": "v",
    "PageHinkley": "D",
}


def plot(nulls: list[dict[str, Any]], drifts: list[dict[str, Any]], path: Path, title: str) -> None:
    fig = Figure(figsize=(15, 6.8), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
    floor = 0.01
    step = 0.8 / len(DETECTORS)

    def offset(i: int, j: int) -> float:
        return i - 0.4 + step * (j + 0.5)

    scenarios = list(dict.fromkeys(r["scenario"] for r in nulls))
    for i, sc in enumerate(scenarios):
        mult = 4 if sc.endswith("/any") else 1
        for cfg in KS_CONFIGS[:2]:
            t = cfg.target * mult
            band = (t * (1 - TOLERANCE), t * (1 + TOLERANCE))
            left.fill_between([i - 0.45, i + 0.45], *band, color="0.88", zorder=0)
            left.hlines(t, i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=0.8)
    for j, det in enumerate(DETECTORS):
        for i, sc in enumerate(scenarios):
            row = next((r for r in nulls if r["scenario"] == sc and r["detector"] == det), None)
            if row is None:
                continue
            x = offset(i, j)
            if row["per_100k"] <= 0:
                left.scatter([x], [floor], marker="_", s=80, color=COLORS[det], zorder=3)
                continue
            stuck = row["in_drift_share"] > 0.5
            left.scatter(
                [x],
                [row["per_100k"]],
                marker=MARKERS[det],
                s=40,
                facecolors="none" if stuck else COLORS[det],
                edgecolors=COLORS[det],
                linewidths=1.5,
                zorder=3,
            )
    left.set_yscale("log")
    left.set_ylim(floor * 0.7, None)
    left.text(-0.45, floor * 1.15, "0 alarms", fontsize=7, color="0.3")
    left.set_xticks(range(len(scenarios)), scenarios, rotation=35, ha="right")
    left.set_ylabel("false alarms per 100k observations (log)")
    left.set_title(
        "Null streams: false alarms; targets 100 and 10 per 100k (dashed, grey band +-30%)\n"
        "hollow: inside a drift episode more than half of the time",
        fontsize=10,
    )
    left.grid(axis="y", which="major", alpha=0.3)

    names = list(dict.fromkeys(r["scenario"] for r in drifts))
    cap = POST * 1.6
    for j, det in enumerate(DETECTORS):
        for i, sc in enumerate(names):
            row = next(r for r in drifts if r["scenario"] == sc and r["detector"] == det)
            x = offset(i, j)
            med, p90 = row["median_delay"], row["p90_delay"]
            if math.isinf(med):
                right.scatter([x], [cap], color=COLORS[det], marker="x", s=40, zorder=3)
                continue
            right.vlines(x, med, cap if math.isinf(p90) else p90, colors=COLORS[det], linewidth=1.2)
            right.scatter([x], [med], color=COLORS[det], marker=MARKERS[det], s=40, zorder=3)
    right.axhline(ACCEPT_DELAY, color="k", linestyle="--", linewidth=0.8)
    right.axhline(POST, color="0.5", linestyle=":", linewidth=0.8)
    right.text(len(names) - 0.55, ACCEPT_DELAY * 1.08, f"{ACCEPT_DELAY}", ha="right", fontsize=8)
    right.text(-0.45, POST * 1.1, f"x: more than half missed ({POST:,})", fontsize=8)
    right.set_yscale("log")
    right.set_xticks(range(len(names)), names, rotation=35, ha="right")
    right.set_ylabel("observations after the change (log)")
    right.set_title("Drift: median delay, whisker to p90 (to the top: p90 is a miss)", fontsize=10)
    right.grid(axis="y", which="major", alpha=0.3)
    handles = [
        left.scatter([], [], color=COLORS[d], marker=MARKERS[d], s=40, label=d) for d in DETECTORS
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(DETECTORS), fontsize=9)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------- main
def detectors_version() -> str:
    """The last commit touching detectors/, and whether the working tree differs from it."""
    root = _HERE.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    commit = git("log", "-1", "--format=%h", "--", "detectors")
    if not commit:
        return "unknown"
    dirty = git("status", "--porcelain", "--", "detectors")
    return commit + (" + local changes" if dirty else "")


def replot(source: Path, target: Path) -> None:
    """Redraw the plot from a ``--json`` file (misses are stored as null)."""
    data = json.loads(source.read_text())
    for row in data["drift_summary"]:
        for key in ("median_delay", "p90_delay"):
            if row[key] is None:
                row[key] = math.inf
    meta = data["meta"]
    title = (
        f"driftwatch detection benchmark ({meta['mode']}, {meta['seeds']} seeds, "
        f"{meta['date'][:10]})"
    )
    plot(data["null_summary"], data["drift_summary"], target, title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, null streams 5x shorter")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 20; quick 3)")
    parser.add_argument("--json", type=Path, default=None, help="save raw numbers here")
    parser.add_argument(
        "--plot", type=Path, default=_HERE / "detection.png", help="PNG (bench/detection.png)"
    )
    parser.add_argument(
        "--replot", type=Path, default=None, help="only redraw --plot from this --json file"
    )
    args = parser.parse_args(argv)
    if args.replot is not None:
        replot(args.replot, args.plot)
        return 0
    seeds = args.seeds or (3 if args.quick else 20)
    budget = Budget(args.quick, seeds)
    started = time.perf_counter()
    now = datetime.now(UTC)
    version = detectors_version()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {msg}", file=sys.stderr, flush=True)

    rec = Recorder()
    null_raw = run_nulls(budget, rec, log)
    drift_raw = run_drifts(budget, rec, log)
    nulls = [null_summary(k, d, runs) for k, per in null_raw.items() for d, runs in per.items()]
    drifts = [drift_summary(k, d, runs) for k, per in drift_raw.items() for d, runs in per.items()]
    cals = calibration_summary(rec.calibrations)
    total = time.perf_counter() - started

    mode = "quick" if args.quick else "full"
    head = [
        f"driftwatch detection benchmark -- {mode} mode, {seeds} seeds, "
        f"{now:%Y-%m-%d %H:%M} UTC, {total / 60:.1f} min",
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"river {river.__version__}; {os.cpu_count()} CPU(s); {platform.platform()}",
        f"detectors/ at {version}",
        f"Reference: {REF_N:,} baseline observations, new per seed. KS W<w> E<e>: "
        "IncrementalKS(reference, window_size=w, ert=e);",
        "river detectors at their defaults, 1 alarm = 1 detection.",
        "Null scenarios:",
        *(f"  {s.name:<11}{s.label}" for s in NULLS),
        "Drift scenarios (change after "
        f"{PRE:,} baseline observations, {POST:,} after; miss = no alarm in the {POST:,}):",
        *(f"  {s.name:<15}{s.label}" for s in DRIFTS),
    ]
    print("\n".join(head))
    print("\nNull streams: alarms per 100k observations. ratio = measured/target; seed ratio =")
    print("alarms/expected per seed (reference sample); +-30% = share of seeds within 30% of the")
    print("target, (Poisson) = that share if alarms were Poisson at exactly the target rate;")
    print("in drift = share of observations spent inside drift episodes, ep len = their mean")
    print("length (observations per false episode).")
    print(
        "agent/any = incidents (any of the 4 features enters drift) vs 4 x the per-stream target.\n"
    )
    print(null_table(nulls))
    print("\nDrift: delay in observations after the change (median, p90; misses count as late).")
    print("open@chg = seeds with a false episode open at the change; missed&open = misses among")
    print(f"them; pre FA = alarms before the change, all seeds ({PRE:,} observations each),")
    print("(target) = what the ERT promises for the tested pre-change observations; starts =")
    print(f"alarms during the {POST:,} changed observations, mean per seed; >1 = seeds with more")
    print("than one; resolved = seeds whose episode open at the end of the change resolved within")
    print(f"the {BACK:,} baseline observations that follow / seeds in an episode at that end.\n")
    print(drift_table(drifts))
    print(
        "\nCalibration cost (det.calibration.seconds; continuous thresholds are computed once per"
    )
    print("(n, W, ERT) and cached, so every continuous detector reports that one-time cost),")
    print(
        "constructor wall time, pickled size after the null stream, threshold D, simulated ERT.\n"
    )
    print(calibration_table(cals))
    accept = next(
        r for r in drifts if r["scenario"] == "shift 0.5sd" and r["detector"] == "KS W50 E1k"
    )
    print(
        "\nAcceptance: KS W50 E1k on the 0.5 sd shift: median delay "
        f"{fmt(accept['median_delay'], 0)}"
        f" (target <= {ACCEPT_DELAY}), misses {accept['misses']}/{accept['seeds']}"
        f" ({accept['missed_while_open']} of them with a false episode open at the change)."
    )

    title = f"driftwatch detection benchmark ({mode}, {seeds} seeds, {now:%Y-%m-%d})"
    plot(nulls, drifts, args.plot, title)
    log(f"plot written to {args.plot}")
    if args.json is not None:
        payload = {
            "meta": {
                "mode": mode,
                "seeds": seeds,
                "date": now.isoformat(),
                "seconds": total,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "river": river.__version__,
                "detectors": version,
            },
            "null_summary": nulls,
            "drift_summary": drifts,
            "calibration_summary": cals,
            "null_raw": null_raw,
            "drift_raw": drift_raw,
            "calibrations": [asdict(r) for r in rec.calibrations],
        }
        args.json.write_text(json.dumps(_finite(payload), indent=1))
        log(f"raw numbers written to {args.json}")
    return 0


def _finite(v: Any) -> Any:
    """JSON-safe copy: infinite delays (misses) and nan become null."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


if __name__ == "__main__":
    raise SystemExit(main())
