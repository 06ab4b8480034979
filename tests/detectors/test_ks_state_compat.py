"""IncrementalKS checkpoints of earlier versions stay readable, and the current ones are theirs
without the derived fields.

``data/ks_states_30e543b.bin`` holds checkpoint records (the worker's codec) of detectors built
and fed by :func:`build` with ``detectors/`` at commit 30e543b, where every scalar was a Python
attribute and the state held the derived ``_ref_end`` and ``_counts`` (and the reference counts
as int64). Written by::

    git archive 30e543b detectors | tar -x -C /tmp/old-detectors
    PYTHONPATH=/tmp/old-detectors .venv/bin/python tests/detectors/test_ks_state_compat.py

The same detectors built now must write the same records less the derived fields, with the
reference counts narrowed (so smaller), restore from the old records, and continue exactly as
the detectors that were never written. The ``ert`` detector is built now with the calibration
its old record holds (:func:`as_recorded`): the null simulation has drawn its streams
differently since (xoshiro256+ and a guide table), which moves the calibrated thresholds but
not the record.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

import detectors.ks_alarm as ks_alarm

sys.path.append(str(Path(__file__).resolve().parents[2]))  # the script form runs from here

from detectors import IncrementalKS
from detectors.ks_bank import KSBank
from detectors.ks_state import _DERIVED_FIELDS, stored_counts
from detectors.registry import detector_from_state, detector_state
from stream.worker.checkpoints import CheckpointCodec

FIXTURE = Path(__file__).parent / "data" / "ks_states_30e543b.bin"
CASES = ("alpha_events", "alpha_batches", "timed", "ert", "rebased", "banked")
KEY = b"0/k/compat"


def build(name: str) -> tuple[IncrementalKS, np.ndarray]:
    """Detector ``name`` after its seeded stream, and the events that continue it."""
    rng = np.random.default_rng([30, CASES.index(name)])
    ref = rng.normal(size=40).round(1)
    xs = np.r_[rng.normal(size=150), rng.normal(1.2, 1.0, size=60), rng.normal(size=90)].round(1)
    if name == "alpha_events":
        det = IncrementalKS(ref, 20, alpha=0.01, resolve_after=10)
        for x in xs:
            det.update(float(x))
    elif name == "alpha_batches":
        det = IncrementalKS(ref, 20, alpha=0.01, resolve_after=10)
        for k in range(0, xs.size, 37):
            det.update_many(xs[k : k + 37])
        det.gap  # noqa: B018 - a cached read, kept in the state
    elif name == "timed":
        det = IncrementalKS(ref, 15, duration=4.0, alpha=0.01)
        ts = np.cumsum(rng.exponential(0.3, size=xs.size))
        det.update_many(xs[:200], ts[:200])
        for x, t in zip(xs[200:], ts[200:], strict=True):
            det.update(float(x), float(t))
    elif name == "ert":
        det = IncrementalKS(ref, 20, ert=400, seed=2, resolve_after=15)
        det.update_many(xs)
    elif name == "rebased":
        det = IncrementalKS(ref, 20, alpha=0.01)
        det.update_many(xs[:120])
        det.set_reference(rng.normal(size=30).round(1))
        det.update_many(xs[120:])
    else:
        det = IncrementalKS(ref, 20, alpha=0.01, resolve_after=10)
        other = IncrementalKS(ref[:25], 10, alpha=0.01)
        bank = KSBank([other, det])
        for k in range(0, 200, 20):
            bank.update(np.r_[xs[k : k + 5], xs[k : k + 20]], [5, 20])
        det.update_many(xs[200:])
    return det, rng.normal(0.5, 1.0, size=200).round(1)


def as_recorded(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[IncrementalKS, np.ndarray]:
    """:func:`build`, calibrated (``ert``) as the detector of the old record was."""
    if name == "ert":
        _claim, doc = CheckpointCodec().decode(KEY, fixture()[name])
        old = detector_from_state(doc)
        assert isinstance(old, IncrementalKS) and old.calibration is not None
        cal = old.calibration
        monkeypatch.setattr(ks_alarm, "calibrate_gap", lambda *args, **kwargs: cal)
    return build(name)


def record(det: IncrementalKS) -> bytes:
    """The checkpoint record of ``det`` (the calibration's wall time zeroed: it varies)."""
    doc = detector_state(det)
    cal = doc["state"]["_calibration"]
    if cal is not None:
        cal["v"]["seconds"] = 0.0
    return CheckpointCodec().encode(KEY, 1, doc)


def fixture() -> dict[str, bytes]:
    records: dict[str, bytes] = msgpack.unpackb(FIXTURE.read_bytes())
    return records


def same_d(a: IncrementalKS, b: IncrementalKS) -> bool:
    """The same KS statistic ``D`` (nan for both with an empty window)."""
    return a.statistic == b.statistic or (np.isnan(a.statistic) and np.isnan(b.statistic))


def without_derived(old: bytes) -> bytes:
    """The record ``old`` of the previous version as this one writes it: the derived fields
    dropped, the reference counts in the narrowest dtype that holds them."""
    claim, doc = CheckpointCodec().decode(KEY, old)
    state = doc["state"]
    assert all(k in state for k in _DERIVED_FIELDS) and state["_ref_counts"].dtype == np.int64
    for k in _DERIVED_FIELDS:
        del state[k]
    state["_ref_counts"] = stored_counts(state["_ref_counts"])
    return CheckpointCodec().encode(KEY, claim, doc)


@pytest.mark.parametrize("name", CASES)
def test_a_detector_writes_the_previous_record_without_the_derived_fields(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    det, _ = as_recorded(name, monkeypatch)
    old = fixture()[name]
    now = record(det)
    assert now == without_derived(old)
    assert detector_state(det)["state"]["_ref_counts"].dtype == np.int8  # 30-40 values, few ties
    # per slot the old record held an int64 end and an int32 count (12 bytes), and 7 more per
    # distinct reference value (its int64 count, now int8)
    k = len(det._ref_values)
    assert len(old) - len(now) >= 12 * (2 * k + 1) + 7 * k
    assert len(now) < len(old)


def _continue_identically(det: IncrementalKS, restored: IncrementalKS, more: np.ndarray) -> None:
    """Both take ``more`` (0.25 s apart on a time window): the same decisions, gaps and D at
    every update, the same result and record at the end."""
    times = np.cumsum(np.full(more.size, 0.25)) + (det._window.now if det.duration else 0.0)
    for x, t in zip(more, times, strict=True):
        for d in (det, restored):
            d.update(float(x), float(t) if d.duration else None)
        assert restored.transitions == det.transitions
        assert restored.gap == det.gap
        assert same_d(restored, det)
    assert restored.result() == det.result()
    assert record(restored) == record(det)


@pytest.mark.parametrize("name", CASES)
def test_a_record_of_the_previous_version_restores_and_continues(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    det, more = as_recorded(name, monkeypatch)
    _claim, doc = CheckpointCodec().decode(KEY, fixture()[name])
    restored = detector_from_state(doc)
    assert isinstance(restored, IncrementalKS)
    assert record(restored) == record(det) == without_derived(fixture()[name])
    _continue_identically(det, restored, more)


@pytest.mark.parametrize("name", CASES)
def test_a_current_record_restores_to_a_detector_that_continues_identically(name: str) -> None:
    det, more = build(name)
    _claim, doc = CheckpointCodec().decode(KEY, record(det))
    restored = detector_from_state(doc)
    assert isinstance(restored, IncrementalKS)
    assert record(restored) == record(det)
    _continue_identically(det, restored, more)


@pytest.mark.parametrize("name", CASES)
def test_a_pickled_detector_continues_identically_and_on_its_own(name: str) -> None:
    det, more = build(name)
    clone = pickle.loads(pickle.dumps(det))
    assert record(clone) == record(det) and clone.transitions == det.transitions
    before = record(det)
    clone.update_many(more, None if det.duration is None else np.arange(more.size) + 1e6)
    assert record(det) == before  # the copy shares no buffer with the original
    det.update_many(more, None if det.duration is None else np.arange(more.size) + 1e6)
    assert clone.transitions == det.transitions and record(clone) == record(det)


def _write() -> None:  # pragma: no cover - run by hand with the previous version's detectors
    records: dict[str, Any] = {name: record(build(name)[0]) for name in CASES}
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_bytes(msgpack.packb(records))
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    _write()
