"""alibi-detect's ``CVMDriftOnline`` on one stream, as a peer of bench/power.py.

alibi-detect pins a numpy older than driftwatch's, so it runs in an interpreter of its own
(``python -m venv /tmp/alibi && /tmp/alibi/bin/pip install alibi-detect==0.13.0``) and this
script imports nothing of driftwatch: bench/power.py writes each task's arrays to an ``.npz``
file and runs ``<that python> bench/alibi_cvm.py FILE``, which prints one JSON line.

The file holds ``reference``, ``stream``, ``pre`` (observations before the change; the whole
stream for a null run), ``ert``, ``window`` and ``n_bootstraps``. The detector is configured on
the reference (its bootstrap of the ERT thresholds is timed as ``config_seconds``) and fed the
stream one observation at a time. ``CVMDriftOnline`` has no drift episodes: after each
detection the state is reset (``reset_state``), as a user acting on the alarm would, and
counting resumes. Printed: ``alarms_before`` (detections before the change, i.e. false alarms),
``first_after`` (observations after the change up to the first detection, or null), and the
seconds spent.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def main(path: str) -> None:
    from alibi_detect.cd import CVMDriftOnline

    data = np.load(path)
    pre = int(data["pre"])
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = CVMDriftOnline(
            data["reference"],
            ert=float(data["ert"]),
            window_sizes=[int(data["window"])],
            n_bootstraps=int(data["n_bootstraps"]),
            batch_size=16,
            verbose=False,
        )
    configured = time.perf_counter()
    alarms_before = 0
    first_after = None
    for i, x in enumerate(data["stream"]):
        if det.predict(np.array([x]), return_test_stat=False)["data"]["is_drift"]:
            if i < pre:
                alarms_before += 1
                det.reset_state()
            else:
                first_after = i - pre
                break
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "alarms_before": alarms_before,
                "first_after": first_after,
                "config_seconds": configured - started,
                "seconds": done - configured,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
