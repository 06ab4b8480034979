"""The compiled IncrementalKS update against the numpy implementation it replaced, many streams.

Usage::

    .venv/bin/python bench/ks_kernel.py [--agents 100] [--features 4] [--batches 20]
        [--repeats 3] [--anchor 2017254]

The anchor is ``detectors/ks.py`` as of commit ``--anchor`` (the last numpy implementation),
loaded from git into a module of its own and run on the same machine, in the same repeats, on
the same data, with the rest of ``detectors`` as it is now (both use the same calibration).

The workload is the worker's protected steady state: ``agents x features`` streams, each an
``IncrementalKS(reference, window_size=200, ert=100_000)`` with its own 1,000-value continuous
reference; every stream's calibration is finished and its window full before the timed part
(the script counts and prints the streams that test). Events arrive in batches of 5,000 with a
uniformly random stream each; the stream is null (no drift), so the time is the cost of
watching. Contenders, all fed the same batches:

* ``event``: ``det.update(x)`` per event in arrival order (anchor and now);
* ``grouped``: the batch grouped by stream, ``det.update_many(group)`` per stream (anchor, now);
* ``bank``: the grouped batch in one :meth:`detectors.ks_bank.KSBank.update` call (now only);
* ``reads``: after every batch, the statistic of every stream as the metrics read it: the
  anchor's ``result().statistic`` (a full evaluation and a p-value) and now ``statistic`` (the
  cached exact gap).

Every contender must produce the same transitions and the same final statistics (checked, the
run fails otherwise). Rates are medians over the repeats; ratios are medians of per-repeat
ratios against the anchor. JIT compile time is measured in subprocesses with an empty numba
cache (cold) and again with that cache filled (warm).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors.ks import IncrementalKS  # noqa: E402
from detectors.ks_bank import KSBank  # noqa: E402

WINDOW = 200
REFERENCE = 1_000
ERT = 100_000.0
BATCH = 5_000
SEED = 14


def load_anchor(commit: str) -> ModuleType:
    """``detectors/ks.py`` at ``commit``, imported as the module ``ks_anchor``.

    The file is written to a fresh directory that goes on ``sys.path``; the anchor imports the
    rest of ``detectors`` as it is now.
    """
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:detectors/ks.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    directory = Path(tempfile.mkdtemp(prefix="ks-anchor-"))
    (directory / "ks_anchor.py").write_text(source)
    sys.path.append(str(directory))
    return importlib.import_module("ks_anchor")


def build(
    cls: Any, refs: list[npt.NDArray[np.float64]], fill: npt.NDArray[np.float64]
) -> list[Any]:
    """Detectors of ``cls`` on ``refs``, calibrated, their windows filled with ``fill[j]``."""
    dets = [cls(r, window_size=WINDOW, ert=ERT, seed=SEED) for r in refs]
    for det, xs in zip(dets, fill, strict=True):
        det.calibration  # noqa: B018 - wait: every stream must be protected before timing
        det.update_many(xs)
    return dets


def testing(dets: list[Any]) -> int:
    """Streams whose calibration is ready and whose window is full (they test every event)."""
    return sum(
        d.calibration_ready and d.calibration is not None and len(d.window) == WINDOW for d in dets
    )


def run_event(dets: list[Any], batches: list[tuple[Any, ...]]) -> tuple[float, list[Any]]:
    seen: list[Any] = []
    t0 = time.perf_counter()
    for ids, xs, _order, _counts in batches:
        for j, x in zip(ids.tolist(), xs.tolist(), strict=True):
            det = dets[j]
            det.update(x)
            if det.transitions:
                seen += [(j, t.kind, t.index) for t in det.transitions]
    return time.perf_counter() - t0, seen


def run_grouped(dets: list[Any], batches: list[tuple[Any, ...]]) -> tuple[float, list[Any]]:
    seen: list[Any] = []
    t0 = time.perf_counter()
    for _ids, xs, order, counts in batches:
        grouped = xs[order]
        start = 0
        for j, c in enumerate(counts.tolist()):
            if c:
                det = dets[j]
                det.update_many(grouped[start : start + c])
                start += c
                seen += [(j, t.kind, t.index) for t in det.transitions]
    return time.perf_counter() - t0, seen


def run_bank(bank: KSBank, batches: list[tuple[Any, ...]]) -> tuple[float, list[Any]]:
    seen: list[Any] = []
    t0 = time.perf_counter()
    for _ids, xs, order, counts in batches:
        for j, ts in enumerate(bank.update(xs[order], counts)):
            seen += [(j, t.kind, t.index) for t in ts]
    return time.perf_counter() - t0, seen


def time_reads(dets: list[Any], anchor: bool, rounds: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    for _ in range(rounds):
        out = [d.result().statistic for d in dets] if anchor else [d.statistic for d in dets]
    return time.perf_counter() - t0, out


def one_repeat(anchor: ModuleType, args: argparse.Namespace, rep: int) -> dict[str, Any]:
    rng = np.random.default_rng(SEED + rep)
    streams = args.agents * args.features
    refs = [rng.normal(size=REFERENCE) for _ in range(streams)]
    fill = rng.normal(size=(streams, WINDOW))
    batches = []
    for _ in range(args.batches):
        ids = rng.integers(0, streams, size=BATCH)
        xs = rng.normal(size=BATCH)
        order = np.argsort(ids, kind="stable")
        batches.append((ids, xs, order, np.bincount(ids, minlength=streams)))
    events = args.batches * BATCH
    out: dict[str, Any] = {"streams": streams, "events": events}
    sets = {
        "anchor event": build(anchor.IncrementalKS, refs, fill),
        "now event": build(IncrementalKS, refs, fill),
        "anchor grouped": build(anchor.IncrementalKS, refs, fill),
        "now grouped": build(IncrementalKS, refs, fill),
        "now bank": build(IncrementalKS, refs, fill),
    }
    out["testing"] = {k: testing(v) for k, v in sets.items()}
    bank = KSBank(sets["now bank"])
    warm = [
        (
            w := rng.integers(0, streams, size=BATCH),
            rng.normal(size=BATCH),
            np.argsort(w, kind="stable"),
            np.bincount(w, minlength=streams),
        )
    ]
    run_event(sets["anchor event"], warm)
    run_event(sets["now event"], warm)
    run_grouped(sets["anchor grouped"], warm)
    run_grouped(sets["now grouped"], warm)
    run_bank(bank, warm)
    time_reads(sets["now event"], False, 1)
    time_reads(sets["anchor event"], True, 1)
    seen = {}
    for name, dets in sets.items():
        if name == "now bank":
            sec, seen[name] = run_bank(bank, batches)
        elif name.endswith("event"):
            sec, seen[name] = run_event(dets, batches)
        else:
            sec, seen[name] = run_grouped(dets, batches)
        out[name] = events / sec
    first = seen["anchor event"]
    for name, s in seen.items():
        if s != first:
            raise SystemExit(
                f"{name}: transitions differ from the anchor's ({s[:3]} vs {first[:3]})"
            )
    out["transitions"] = len(first)
    rounds = 5
    sec_a, stat_a = time_reads(sets["anchor grouped"], True, rounds)
    sec_n, stat_n = time_reads(sets["now grouped"], False, rounds)
    for name in ("now event", "now bank"):
        if [d.statistic for d in sets[name]] != stat_a:
            raise SystemExit(f"{name}: final statistics differ from the anchor's")
    if stat_n != stat_a:
        raise SystemExit("cached statistics differ from the anchor's full evaluation")
    out["anchor reads"] = rounds * streams / sec_a
    out["now reads"] = rounds * streams / sec_n
    return out


COMPILE_SNIPPET = """
import time, numpy as np
t0 = time.perf_counter()
from detectors.ks import IncrementalKS
from detectors.ks_bank import KSBank
t1 = time.perf_counter()
rng = np.random.default_rng(0)
det = IncrementalKS(rng.normal(size=300), window_size=50, alpha=0.01)
det.update(0.5)
det.update_many(rng.normal(size=100))
t2 = time.perf_counter()
bank = KSBank([IncrementalKS(rng.normal(size=300), window_size=50, alpha=0.01) for _ in range(2)])
bank.update(rng.normal(size=100), [50, 50])
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def compile_times() -> dict[str, tuple[float, float, float]]:
    """(import, first update, first bank update) seconds with a cold and a warm numba cache."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            res = subprocess.run(
                [sys.executable, "-c", COMPILE_SNIPPET],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            a, b, c = (float(v) for v in res.stdout.split())
            out[label] = (a, b, c)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--anchor", default="2017254")
    args = parser.parse_args()
    anchor = load_anchor(args.anchor)
    print(f"load average before: {os.getloadavg()}")
    print(
        f"{args.agents} agents x {args.features} features, reference {REFERENCE}, window {WINDOW},"
        f" ert {ERT:,.0f}, batches of {BATCH} x {args.batches}, {args.repeats} repeats,"
        f" anchor detectors/ks.py at {args.anchor}"
    )
    reps = [one_repeat(anchor, args, r) for r in range(args.repeats)]
    r0 = reps[0]
    print(f"streams testing (calibrated, window full): {r0['testing']} of {r0['streams']}")
    print(
        f"transitions per repeat (identical in every contender): {[r['transitions'] for r in reps]}"
    )
    names = ["anchor event", "now event", "anchor grouped", "now grouped", "now bank"]
    print(f"\n{'contender':<16} {'updates/s':>12} {'x anchor event':>15} {'x anchor grouped':>17}")
    for name in names:
        rate = statistics.median(r[name] for r in reps)
        ev = statistics.median(r[name] / r["anchor event"] for r in reps)
        gr = statistics.median(r[name] / r["anchor grouped"] for r in reps)
        print(f"{name:<16} {rate:>12,.0f} {ev:>15.2f} {gr:>17.2f}")
    ra = statistics.median(r["anchor reads"] for r in reps)
    rn = statistics.median(r["now reads"] for r in reps)
    ratio = statistics.median(r["now reads"] / r["anchor reads"] for r in reps)
    print(
        f"\nstatistic reads/s: anchor result().statistic {ra:,.0f}, now statistic {rn:,.0f}, "
        f"ratio {ratio:.1f}x"
    )
    ct = compile_times()
    print("\nJIT (seconds)   import  first update  first bank update")
    for label, (a, b, c) in ct.items():
        print(f"{label:<14} {a:>7.2f} {b:>13.2f} {c:>18.2f}")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
