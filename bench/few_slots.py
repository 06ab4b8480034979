"""CPU of one tied calibration: the few-slot null simulation against the segment tree.

Usage::

    nice -n 10 .venv/bin/python bench/few_slots.py [--repeats 3] [--window 200]
        [--erts 1e5] [--once-ert 1e6] [--slots] [--anchor DIR]

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

``--anchor DIR`` compares instead the kernels of another checkout ``DIR`` (``old``, e.g. main
exported by ``git -C REPO archive main | tar -x -C DIR``) with this one's (``new``), in two
worker processes (this script with ``--serve ROOT``, importing ``detectors`` from ``ROOT``) fed
alternately, so that both see the same load: for each profile and guarantee, the median CPU of
``calibrate_gap(counts, window, ert, seed=3, guarantee=...)`` over the repeats (the path
``AUTO`` picks) with the thresholds each found, then the CPU per simulated observation of
``simulate_segments`` (both paths, window 200, one Dirichlet draw per stream, at the level of
the top 0.06 % of tested gaps of this checkout's pilot; the split model is the guarantee's),
best of the repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
# a worker (--serve ROOT) imports the detectors of the checkout ROOT
_ROOT = sys.argv[sys.argv.index("--serve") + 1] if "--serve" in sys.argv else str(_HERE.parent)
sys.path.insert(0, _ROOT)

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


def _model(counts: list[int], split: bool) -> NullModel:
    model = NullModel.of_reference(np.array(counts), False)
    return model.split() if split else model


def serve() -> None:
    """Answer requests from ``--anchor``, one JSON line each, on this process's ``detectors``."""
    import detectors.kernels as kernels

    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "where":
            out: Any = {"kernels": kernels.__file__}
        elif req["op"] == "calibrate":
            t = time.process_time()
            cal = calibration.calibrate_gap(
                np.array(req["counts"]), req["m"], req["ert"], seed=3, guarantee=req["guarantee"]
            )
            out = {"seconds": time.process_time() - t, "high": cal.gap_high, "mix": cal.mix}
        else:
            model = _model(req["counts"], req["split"])
            out = {"ns": _per_observation(model, req["path"], req["h_min"], req["streams"])[0]}
        print(json.dumps(out), flush=True)


class _Worker:
    def __init__(self, root: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **req: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def anchor(root: str, repeats: int, window: int, erts: list[float]) -> None:
    """Old (``root``) against new (this checkout) kernels, alternating, in the same minutes."""
    workers = {"old": _Worker(str(Path(root).resolve())), "new": _Worker(str(_HERE.parent))}
    try:
        for name, w in workers.items():
            print(f"# {name}: {w.ask(op='where')['kernels']}")
            w.ask(
                op="calibrate",
                counts=[850, 100, 35, 10, 4, 1],
                m=window,
                ert=5000.0,
                guarantee=None,
            )
        print(
            f"{'reference':<34} {'ert':>9} {'guarantee':>9} {'old s':>7} {'new s':>7}"
            f" {'ratio':>6}  {'old high':>8} {'new high':>8}"
        )
        for ert in erts:
            for guarantee in (None, 0.9):
                for name, counts in PROFILES.items():
                    times: dict[str, list[float]] = {"old": [], "new": []}
                    high: dict[str, str] = {}
                    for _ in range(repeats):
                        for which, w in workers.items():
                            out = w.ask(
                                op="calibrate",
                                counts=counts,
                                m=window,
                                ert=ert,
                                guarantee=guarantee,
                            )
                            times[which].append(out["seconds"])
                            high[which] = f"{out['high']}{'*' if out['mix'] > 0 else ''}"
                    old, new = statistics.median(times["old"]), statistics.median(times["new"])
                    g = "None" if guarantee is None else f"{guarantee:g}"
                    print(
                        f"{name:<34} {ert:>9,.0f} {g:>9} {old:>7.3f} {new:>7.3f} {old / new:>6.1f}"
                        f"  {high['old']:>8} {high['new']:>8}",
                        flush=True,
                    )
        print(f"# load average {os.getloadavg()[0]:.2f}")
        print(
            f"{'reference':<34} {'model':>6} {'path':>6} {'old ns':>7} {'new ns':>7} {'ratio':>6}"
        )
        for name, counts in PROFILES.items():
            for split in (False, True):
                pilot = _per_observation(_model(counts, split), PREFIX, 0, 40)[1][0]
                h_min = int(np.quantile(pilot, 1.0 - 6e-4))
                for path in (TREE, PREFIX):
                    ns: dict[str, list[float]] = {"old": [], "new": []}
                    for _ in range(repeats):
                        for which, w in workers.items():
                            out = w.ask(
                                op="per_obs",
                                counts=counts,
                                split=split,
                                path=path,
                                h_min=h_min,
                                streams=100,
                            )
                            ns[which].append(out["ns"])
                    old, new = min(ns["old"]), min(ns["new"])
                    print(
                        f"{name:<34} {'split' if split else 'counts':>6}"
                        f" {'tree' if path == TREE else 'prefix':>6} {old:>7.1f} {new:>7.1f}"
                        f" {old / new:>6.1f}",
                        flush=True,
                    )
    finally:
        for w in workers.values():
            w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--erts", type=float, nargs="+", default=[1e5])
    parser.add_argument("--once-ert", type=float, default=None)
    parser.add_argument("--slots", action="store_true")
    parser.add_argument("--anchor", default=None, help="another checkout to compare against")
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve()
        return
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}")
    if args.anchor is not None:
        anchor(args.anchor, args.repeats, args.window, args.erts)
        print(f"# {datetime.now(UTC):%H:%M} UTC, load average at the end {os.getloadavg()[0]:.2f}")
        return
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
