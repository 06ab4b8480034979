"""IncrementalKS and RollingClassification hold their attributes in slots, and detectors share
one empty transitions list: no instance dict, no empty list per detector, the same behaviour.

The oracles: a detector's own :meth:`state` and transitions against those of a copy made
through plain data (which never shares anything), and the shared list's own contents.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from detectors import IncrementalKS
from detectors.base import NO_TRANSITIONS, EmptyList
from detectors.classification import RollingClassification
from detectors.ks_bank import KSBank
from detectors.registry import StateError, detector_from_state, detector_state
from stream.worker.checkpoints import CheckpointCodec


def _record(det: IncrementalKS) -> bytes:
    """The detector's checkpoint record (the calibration's wall time zeroed: it varies)."""
    doc = detector_state(det)
    cal = doc["state"]["_calibration"]
    if cal is not None:
        cal["v"]["seconds"] = 0.0
    return CheckpointCodec().encode(b"0/k/slots", 1, doc)


def _drifting(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=300).round(1), np.r_[rng.normal(size=400), rng.normal(2.0, size=200)]


def test_the_shared_empty_list_reads_as_empty_and_refuses_to_grow() -> None:
    shared = EmptyList()
    assert shared == [] and not shared and len(shared) == 0 and list(shared) == []
    for grow in (
        lambda: shared.append(1),
        lambda: shared.extend([1]),
        lambda: shared.insert(0, 1),
        lambda: shared.__setitem__(slice(0, 0), [1]),
        lambda: shared.__iadd__([1]),
    ):
        with pytest.raises(TypeError):
            grow()
    assert shared == [] and NO_TRANSITIONS == []


def test_a_detector_has_no_instance_dict_and_shares_its_empty_transitions() -> None:
    ref, xs = _drifting()
    det = IncrementalKS(ref, 50, alpha=1e-3)
    assert not hasattr(det, "__dict__")
    assert det.transitions is NO_TRANSITIONS
    det.update_many(xs[:100])
    assert det.transitions is NO_TRANSITIONS
    with pytest.raises(AttributeError):
        det.not_an_attribute = 1  # type: ignore[attr-defined]
    assert not hasattr(RollingClassification(5), "__dict__")


@pytest.mark.parametrize("path", ["update", "update_many", "bank"])
def test_transitions_are_recorded_in_a_list_of_their_own(path: str) -> None:
    ref, xs = _drifting()
    det = IncrementalKS(ref, 50, alpha=1e-3)
    oracle = IncrementalKS(ref, 50, alpha=1e-3)
    seen, expected = [], []
    bank = KSBank([det])
    for k in range(0, xs.size, 25):
        chunk = xs[k : k + 25]
        if path == "update":
            got = []
            for x in chunk:
                det.update(float(x))
                got += det.transitions
        elif path == "update_many":
            det.update_many(chunk)
            got = list(det.transitions)
        else:
            got = list(bank.update(chunk, [chunk.size])[0])
        seen += got
        for x in chunk:  # the oracle: one update at a time, transitions collected
            oracle.update(float(x))
            expected += oracle.transitions
    assert [t.kind for t in expected] == ["drift_started"]  # the test drifts once
    assert seen == expected
    assert NO_TRANSITIONS == []  # nothing was ever added to the shared list


@pytest.mark.parametrize("rule", [{"alpha": 1e-3}, {"ert": 2_000}])
def test_copies_and_restored_detectors_continue_exactly(rule: dict[str, float]) -> None:
    ref, xs = _drifting(5)
    det = IncrementalKS(ref, 50, seed=1, **rule)  # type: ignore[arg-type]
    det.update_many(xs[:420])
    for clone in (
        copy.copy(det),
        copy.deepcopy(det),
        pickle.loads(pickle.dumps(det)),
        detector_from_state(detector_state(det)),
    ):
        assert isinstance(clone, IncrementalKS) and not hasattr(clone, "__dict__")
        assert _record(clone) == _record(det)
        assert hasattr(clone, "_thresholds") == ("ert" in rule)
        ref_copy = detector_from_state(detector_state(det))
        for d in (clone, ref_copy):
            d.update_many(xs[420:])
        assert clone.transitions == ref_copy.transitions
        assert _record(clone) == _record(ref_copy)


def test_a_state_with_an_attribute_the_detector_cannot_hold_is_refused() -> None:
    ref, xs = _drifting()
    det = IncrementalKS(ref, 50, alpha=1e-3)
    det.update_many(xs[:80])
    doc = detector_state(det)
    doc["state"]["from_a_newer_version"] = 1
    with pytest.raises(StateError, match="cannot hold"):
        detector_from_state(doc)
    doc = detector_state(det)
    doc["state"]["update"] = 1  # a method's name stays forbidden
    with pytest.raises(StateError, match="forbidden"):
        detector_from_state(doc)
