"""Does each calibration reach its own target? The simulated rate of the calibrated thresholds.

Usage::

    nice -n 10 .venv/bin/python bench/calibration_check.py [--refs 20] [--ert 1e5]
        [--guarantee 0.9] [--window 200]

A calibration searches, on its own simulated null streams, the thresholds whose false-start
rate is the target (``1 / ert``; with a guarantee ``1.3 / ert`` for the order statistic of the
draws' rates); ``simulated_rate`` is the rate it reached. This script calibrates the tied
references of the cold fleet of ``bench/protection.py`` (token counts, retry counts, error
rates; reference 1,000) exactly as ``IncrementalKS(reference, window, ert=E)`` does, and counts
the calibrations whose reached rate is more than 10 % off the target, or whose alarm threshold
is the largest gap the statistic can take (a stream that can never alarm). It checks the
search, not the null model: whether the real rate matches is bench/null_rates.py's question.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from detectors.calibration import GUARANTEE_FACTOR, calibrate_gap  # noqa: E402

sys.path.append(str(_HERE))
from protection import reference_of  # noqa: E402

FEATURES = ("tokens", "retries", "error_rate")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--refs", type=int, default=20)
    p.add_argument("--first", type=int, default=0, help="first agent")
    p.add_argument("--ert", type=float, default=1e5)
    p.add_argument("--guarantee", type=float, default=None)
    p.add_argument("--window", type=int, default=200)
    a = p.parse_args()
    print(f"# python bench/calibration_check.py {' '.join(sys.argv[1:])}")
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.2f}")
    factor = 1.0 if a.guarantee is None else GUARANTEE_FACTOR
    head = f"{'feature':<11} {'refs':>4} {'off >10%':>8} {'never':>5}"
    print(f"{head} {'reached/target':>22} {'cal s':>6}")
    for feature in FEATURES:
        reached, never, seconds = [], 0, []
        for agent in range(a.first, a.first + a.refs):
            counts = np.unique(reference_of(agent, feature, 1_000), return_counts=True)[1]
            started = time.process_time()
            cal = calibrate_gap(
                counts, a.window, a.ert, resolve_after=a.window, seed=0, guarantee=a.guarantee
            )
            seconds.append(time.process_time() - started)
            reached.append(cal.simulated_rate * a.ert / factor)
            never += cal.gap_high >= 1_000 * a.window - a.window
        r = np.asarray(reached)
        off = int(np.sum(np.abs(r - 1.0) > 0.1))
        print(
            f"{feature:<11} {a.refs:>4} {off:>8} {never:>5} "
            f"{r.min():>6.2f} / {np.median(r):.2f} / {r.max():.2f}      {np.median(seconds):>6.2f}"
        )
    print("(reached/target: min / median / max over references; cal s: median CPU seconds)")
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
