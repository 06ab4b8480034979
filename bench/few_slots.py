"""CPU of one tied calibration: the few-slot null simulation against the segment tree.

Usage::

    nice -n 10 .venv/bin/python bench/few_slots.py [--repeats 3] [--window 200]
        [--erts 1e5] [--once-ert 1e6]

For each few-valued reference (counts of its sorted distinct values, n = 1,000) and each
guarantee (None, 0.9), ``calibrate_gap(counts, window, ert)`` runs with the null simulation on
the segment tree (``detectors.kernels.TREE``, the path every reference took before) and on the
few-slot prefix counts (``PREFIX``, what ``AUTO`` now picks for at most ``FEW_SLOTS`` slots),
alternating, in the same process. Reported: the median CPU (``time.process_time``) over the
repeats of each path, their ratio, and whether the two calibrations are identical (thresholds,
randomised boundary, simulated rate and observations; the run fails otherwise). ``--once-ert``
adds one repeat of the retry profile at that ERT. A warm-up calibration compiles or loads the
kernels first.

``--slots`` measures instead where the prefix counts stop paying (the cutoff
``detectors.kernels.FEW_SLOTS``): CPU per simulated observation of ``simulate_segments`` on each
path, window 200, at the level a calibration to ERT 10^5 records from (the top 0.06 % of tested
gaps), for the profiles above, tied references of 1,000 Poisson values with growing means (more
distinct values, more slots) and the continuous models of 500, 750 and 1,000 values (1,001,
1,501 and 2,001 slots); best of 2.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

import detectors.calibration as calibration  # noqa: E402
from detectors.calibration import NullModel  # noqa: E402
from detectors.kernels import PREFIX, TREE, simulate_segments  # noqa: E402

PROFILES = {
    "flag [920, 80]": [920, 80],
    "3-valued [700, 200, 100]": [700, 200, 100],
    "retries [850, 100, 35, 10, 4, 1]": [850, 100, 35, 10, 4, 1],
}


def _on(path: int) -> Callable[..., Any]:
    kernel: Any = simulate_segments

    def run(*args: Any) -> Any:
        return kernel(*args, path)

    return run


def _calibrate(path: int, counts: list[int], m: int, ert: float, guarantee: float | None) -> Any:
    calibration.simulate_segments = _on(path)  # type: ignore[assignment]
    try:
        t = time.process_time()
        cal = calibration.calibrate_gap(np.array(counts), m, ert, seed=3, guarantee=guarantee)
        return time.process_time() - t, cal
    finally:
        calibration.simulate_segments = simulate_segments


def _same(a: Any, b: Any) -> bool:
    fields = ("gap_high", "gap_low", "gap_mixed", "mix", "simulated_rate", "observations")
    return all(getattr(a, f) == getattr(b, f) for f in (*fields, "extrapolated"))


def _per_observation(model: NullModel, path: int, h_min: int, streams: int) -> tuple[float, Any]:
    t = time.process_time()
    out = simulate_segments(
        model.cell_alpha,
        model.cell_slot,
        model.slot_ref,
        model.n,
        200,
        streams,
        5_000,
        1,
        h_min,
        math.ceil(0.6 * h_min),
        200,
        True,
        3,
        4_000_000,
        1,
        path,
    )
    return (time.process_time() - t) / (streams * 5_000) * 1e9, out


def slots() -> None:
    """CPU per simulated observation of each path against the slot count."""
    rng = np.random.default_rng(0)
    models = [NullModel.of_reference(np.array(c), False) for c in PROFILES.values()]
    for mean in (50, 400, 2_000, 10_000, 100_000):
        counts = np.unique(rng.poisson(mean, 1_000), return_counts=True)[1]
        models.append(NullModel.of_reference(counts, False))
    for n in (500, 750, 1_000):
        models.append(NullModel.of_reference(np.ones(n, dtype=np.int64), True))
    print(f"{'slots':>6} {'split':>6} {'tree ns':>8} {'prefix ns':>9} {'ratio':>6}  identical")
    for base in models:
        for model in (base, base.split()) if base.slot_ref.shape[0] < 1_000 else (base,):
            pilot = _per_observation(model, TREE, 0, 40)[1][0]
            h_min = int(np.quantile(pilot, 1.0 - 6e-4))
            ns: dict[int, list[float]] = {TREE: [], PREFIX: []}
            outs: dict[int, Any] = {}
            for _ in range(2):
                for path in (TREE, PREFIX):
                    seconds, outs[path] = _per_observation(model, path, h_min, 200)
                    ns[path].append(seconds)
            same = all(
                np.array_equal(a, b) for a, b in zip(outs[TREE][:3], outs[PREFIX][:3], strict=True)
            )
            tree, prefix = min(ns[TREE]), min(ns[PREFIX])
            split = "yes" if model is not base else "no"
            print(
                f"{model.slot_ref.shape[0]:>6} {split:>6} {tree:>8.1f} {prefix:>9.1f}"
                f" {tree / prefix:>6.2f}  {'yes' if same else 'NO'}",
                flush=True,
            )
            if not same:
                raise SystemExit("the paths keep different gaps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--erts", type=float, nargs="+", default=[1e5])
    parser.add_argument("--once-ert", type=float, default=None)
    parser.add_argument("--slots", action="store_true")
    args = parser.parse_args()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}")
    if args.slots:
        slots()
        print(f"# load average at the end {os.getloadavg()[0]:.2f}")
        return
    for path in (TREE, PREFIX):
        _calibrate(path, [850, 100, 35, 10, 4, 1], args.window, 5000.0, None)
    header = f"{'reference':<34} {'ert':>9} {'guarantee':>9} {'tree s':>8} {'prefix s':>8}"
    print(header + f" {'ratio':>6}  identical")
    cases = [
        (name, e, g, args.repeats) for e in args.erts for g in (None, 0.9) for name in PROFILES
    ]
    if args.once_ert is not None:
        cases += [("retries [850, 100, 35, 10, 4, 1]", args.once_ert, g, 1) for g in (None, 0.9)]
    for name, ert, guarantee, repeats in cases:
        counts = PROFILES[name]
        times: dict[int, list[float]] = {TREE: [], PREFIX: []}
        cals: dict[int, Any] = {}
        for _ in range(repeats):
            for path in (TREE, PREFIX):
                seconds, cals[path] = _calibrate(path, counts, args.window, ert, guarantee)
                times[path].append(seconds)
        same = _same(cals[TREE], cals[PREFIX])
        tree, prefix = statistics.median(times[TREE]), statistics.median(times[PREFIX])
        g = "None" if guarantee is None else f"{guarantee:g}"
        print(
            f"{name:<34} {ert:>9,.0f} {g:>9} {tree:>8.3f} {prefix:>8.3f} {tree / prefix:>6.1f}"
            f"  {'yes' if same else 'NO'}",
            flush=True,
        )
        if not same:
            raise SystemExit(f"calibrations differ: {cals[TREE]} / {cals[PREFIX]}")
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
