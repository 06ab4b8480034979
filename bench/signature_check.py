"""Do shared tied thresholds keep each reference's rate? Their rate on the reference's own model.

Usage::

    nice -n 10 .venv/bin/python bench/signature_check.py [--agents 10] [--first 0] [--ert 1e5]

A many-valued tied reference served a shared calibration (``calibrate_gap(..., share=True)``:
its tie signature's canonical reference, :mod:`detectors.signature`) alarms at thresholds
solved on another lattice. For each reference of the cold fleet of ``bench/protection.py``
(token counts and error rates; reference 1,000, window 200), this script simulates the
reference's *own* null model (the one its own calibration would solve on; Dirichlet on its
value counts) and counts the false starts of the shared thresholds: the ratio to the target is
what sharing costs or gives on that reference, against 1.0 for its own calibration (whose
simulation solves exactly this ratio to 1, up to its Monte Carlo error). Paired, so it shows a
signature's bias with far fewer references than the false alarms on real null streams of
``bench/protection.py`` do; whether the real rate matches is that script's question.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from detectors.calibration import NullModel, calibrate_gap, simulate  # noqa: E402
from detectors.signature import tie_signature  # noqa: E402

sys.path.append(str(_HERE))
from protection import reference_of  # noqa: E402

WINDOW, SIZE = 200, 1_000


def shared_ratio(counts: np.ndarray, ert: float, seed: int) -> float:
    """False starts per observation of the shared thresholds on ``counts``' own null model,
    times ``ert`` (``300 ert`` simulated observations: about 300 starts at the target)."""
    cal = calibrate_gap(counts, WINDOW, ert, resolve_after=WINDOW, share=True)
    model = NullModel.of_reference(counts, continuous=False)
    runs = simulate(
        model,
        WINDOW,
        int(300 * ert),
        stride=1,
        h_min=cal.floor,
        ratio=0.6,
        resolve_after=WINDOW,
        seed=seed,
    )
    starts = runs.starts(cal.gap_high, cal.gap_low, cal.gap_mixed, cal.mix)
    return starts / runs.observations * ert


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agents", type=int, default=10)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--ert", type=float, default=1e5)
    a = p.parse_args()
    print(f"# python bench/signature_check.py {' '.join(sys.argv[1:])}")
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}")
    print(f"{'feature':<11} {'refs':>4} {'signatures':>10} {'mean ratio':>10} {'median':>7} range")
    for feature in ("tokens", "error_rate"):
        ratios, keys = [], set()
        for agent in range(a.first, a.first + a.agents):
            counts = np.unique(reference_of(agent, feature, SIZE), return_counts=True)[1]
            keys.add(tie_signature(counts).key)
            ratios.append(shared_ratio(counts, a.ert, 1_000 + agent))
        print(
            f"{feature:<11} {a.agents:>4} {len(keys):>10} {statistics.mean(ratios):>10.2f} "
            f"{statistics.median(ratios):>7.2f} {min(ratios):.2f}-{max(ratios):.2f}"
        )
    print("(ratio: false starts of the shared thresholds on the reference's own null model,")
    print(" over the target; 1.0 is what the reference's own calibration solves for)")
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
