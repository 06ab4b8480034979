"""alibi-detect's ``CVMDriftOnline`` as a peer of bench/power.py.

alibi-detect pins a numpy older than driftwatch's, so it runs in an interpreter of its own
(``python -m venv /tmp/alibi && /tmp/alibi/bin/pip install alibi-detect==0.13.0``) and this
script imports nothing of driftwatch: bench/power.py writes each task's arrays to an ``.npz``
file and runs ``<that python> bench/alibi_cvm.py FILE``, which prints one JSON line.

``CVMDriftOnline`` has no drift episodes: after each detection the state is reset
(``reset_state``), as a user acting on the alarm would, and counting resumes.

Modes (the file's ``mode``; ``stream`` when absent):

``stream``
    ``reference``, ``stream``, ``pre`` (observations before the change), ``ert``, ``window``,
    ``n_bootstraps``. The detector is configured on the reference (its bootstrap of the ERT
    thresholds is timed as ``config_seconds``) and fed the stream one observation at a time.
    Printed: ``alarms_before`` (detections before the change, i.e. false alarms),
    ``first_after`` (observations after the change up to the first detection, or null), and
    the seconds spent.
``delays``
    The same for many ``references`` and ``streams`` (one row each) at one ``ert``, with the
    bootstrap read from (or first written to) ``boot_cache``: the thresholds' bootstrap
    simulates Gaussian streams (the statistic is rank based), so one bootstrap of
    ``n_bootstraps`` streams, seeded by ``boot_seed``, serves every reference of the same size.
    Printed: lists ``alarms_before`` and ``first_after``.
``null``
    ``references`` and null ``streams`` (one row each) and a list of ``erts``. The statistic of
    every full window is computed once with ``CVMDriftOnline.score`` (cached in ``stats_cache``)
    and the detector's decision rule (threshold at the steps since the last reset, reset after
    each detection) is replayed for each ERT's thresholds, computed by alibi-detect from the
    shared bootstrap. With ``verify_obs`` > 0 the first ``verify_obs`` observations of the first
    stream are also fed to ``predict`` at the first ERT, to check the replay. Printed:
    ``alarms`` per ERT, ``observations``, and ``verify`` (direct and replayed detections).
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: The bootstrapped statistics shared by the detectors built in this process.
_BOOT: dict[str, Any] = {}


def _detector(reference: Any, ert: float, window: int, n_bootstraps: int) -> Any:
    from alibi_detect.cd import CVMDriftOnline

    class Shared(CVMDriftOnline):
        def _simulate_streams(self, t_max: int) -> Any:
            return _BOOT["stats"].copy()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cls = Shared if "stats" in _BOOT else CVMDriftOnline
        return cls(
            reference,
            ert=ert,
            window_sizes=[window],
            n_bootstraps=n_bootstraps,
            batch_size=16,
            verbose=False,
        )


def _load_boot(data: Any) -> float:
    """Read the shared bootstrap (or simulate and write it); its seconds."""
    path = Path(str(data["boot_cache"]))
    started = time.perf_counter()
    if path.exists():
        _BOOT["stats"] = np.load(path)
        return 0.0
    from alibi_detect.cd import CVMDriftOnline

    n_bootstraps, t_max = int(data["n_bootstraps"]), 2 * int(data["window"]) - 1
    # a detector configured on placeholder statistics, then alibi-detect's own simulation
    _BOOT["stats"] = np.zeros((n_bootstraps, t_max, 1))
    det = _detector(data["references"][0], 1e4, int(data["window"]), n_bootstraps)
    np.random.seed(int(data["boot_seed"]))
    stats = CVMDriftOnline._simulate_streams(det, t_max)
    np.save(path, stats)
    _BOOT["stats"] = stats
    return time.perf_counter() - started


def _run(det: Any, stream: Any, pre: int) -> tuple[int, int | None]:
    alarms_before = 0
    for i, x in enumerate(stream):
        if det.predict(np.array([x]), return_test_stat=False)["data"]["is_drift"]:
            if i >= pre:
                return alarms_before, i - pre
            alarms_before += 1
            det.reset_state()
    return alarms_before, None


def _window_stats(det: Any, stream: Any, window: int, chunk: int = 2_000) -> Any:
    """The statistic of every full window of ``stream`` (NaN before the first), no resets.

    The state is reset every ``chunk`` observations (its arrays grow with the steps since a
    reset) and the last ``window - 1`` observations are fed again, so that each statistic is
    that of the same ``window`` values against the reference.
    """
    out = np.full(len(stream), np.nan)
    start = 0
    while start < len(stream):
        det.reset_state()
        first = max(0, start - window + 1)
        for i in range(first, min(len(stream), start + chunk)):
            s = float(det.score(np.array([stream[i]]))[0, 0])
            if i >= start:
                out[i] = s
        start += chunk
    return out


def _replay(stats: Any, thresholds: Any, window: int) -> int:
    """Detections of the decision rule of ``predict`` (reset after each) on ``stats``."""
    th = thresholds[:, 0].tolist()
    last = len(th) - 1
    alarms, since = 0, 0
    for s in stats.tolist():
        if since >= window - 1 and s > th[min(since, last)]:
            alarms += 1
            since = 0
        else:
            since += 1
    return alarms


def _null(data: Any) -> dict[str, Any]:
    window = int(data["window"])
    boot_seconds = _load_boot(data)
    cache = Path(str(data["stats_cache"]))
    started = time.perf_counter()
    if cache.exists():
        stats = np.load(cache)
    else:
        rows = []
        for ref, stream in zip(data["references"], data["streams"], strict=True):
            det = _detector(ref, 1e4, window, int(data["n_bootstraps"]))
            rows.append(_window_stats(det, stream, window))
        stats = np.array(rows)
        np.save(cache, stats)
    stats_seconds = time.perf_counter() - started
    alarms = []
    for ert in data["erts"].tolist():
        th = _detector(data["references"][0], ert, window, int(data["n_bootstraps"])).thresholds
        alarms.append(sum(_replay(row, th, window) for row in stats))
    verify: dict[str, int] = {}
    k = int(data["verify_obs"])
    if k > 0:
        ert = float(data["erts"][0])
        det = _detector(data["references"][0], ert, window, int(data["n_bootstraps"]))
        direct, _ = _run(det, data["streams"][0][:k], k)
        verify = {"direct": direct, "replayed": _replay(stats[0][:k], det.thresholds, window)}
    return {
        "alarms": alarms,
        "observations": int(stats.size),
        "verify": verify,
        "boot_seconds": boot_seconds,
        "stats_seconds": stats_seconds,
    }


def _delays(data: Any) -> dict[str, Any]:
    boot_seconds = _load_boot(data)
    started = time.perf_counter()
    before, after = [], []
    for ref, stream in zip(data["references"], data["streams"], strict=True):
        det = _detector(ref, float(data["ert"]), int(data["window"]), int(data["n_bootstraps"]))
        b, a = _run(det, stream, int(data["pre"]))
        before.append(b)
        after.append(a)
    return {
        "alarms_before": before,
        "first_after": after,
        "boot_seconds": boot_seconds,
        "seconds": time.perf_counter() - started,
    }


def _stream(data: Any) -> dict[str, Any]:
    started = time.perf_counter()
    det = _detector(
        data["reference"], float(data["ert"]), int(data["window"]), int(data["n_bootstraps"])
    )
    configured = time.perf_counter()
    alarms_before, first_after = _run(det, data["stream"], int(data["pre"]))
    return {
        "alarms_before": alarms_before,
        "first_after": first_after,
        "config_seconds": configured - started,
        "seconds": time.perf_counter() - configured,
    }


def main(path: str) -> None:
    data = np.load(path)
    mode = str(data["mode"]) if "mode" in data else "stream"
    answer = {"null": _null, "delays": _delays, "stream": _stream}[mode](data)
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1])
