"""The detector kinds and their data-only state: round trips, and malformed states refused."""

from __future__ import annotations

from typing import Any, get_args

import numpy as np
import pytest

from detectors import ADWINDetector, IncrementalKS, KSWINDetector, PageHinkleyDetector, WindowedKS
from detectors.registry import (
    KINDS,
    DetectorName,
    DetectorOptions,
    StateError,
    build_detector,
    detector_from_state,
    detector_state,
    kind_of,
    validate_options,
)
from tests.support.plain import same_plain


def warmed(det: Any, n: int = 400, seed: int = 0) -> Any:
    det.update_many(np.random.default_rng(seed).normal(size=n))
    return det


def reference() -> np.ndarray:
    return np.random.default_rng(1).normal(size=300)


def test_the_kinds_are_the_settings_names() -> None:
    assert tuple(KINDS) == get_args(DetectorName)
    assert [k.name for k in KINDS.values() if k.needs_reference] == [
        "incremental_ks",
        "windowed_ks",
    ]
    assert kind_of(IncrementalKS(reference(), 50, alpha=0.01)).name == "incremental_ks"
    with pytest.raises(TypeError):
        kind_of(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: IncrementalKS(reference(), 50, alpha=0.01),
        lambda: WindowedKS(reference(), 50, stride=5, alpha=0.01),
        lambda: ADWINDetector(resolve_after=50),
        lambda: KSWINDetector(resolve_after=50, seed=3),
        lambda: PageHinkleyDetector(resolve_after=50),
    ],
)
def test_a_restored_detector_continues_identically(make: Any) -> None:
    det = warmed(make())
    clone = detector_from_state(detector_state(det))
    rng = np.random.default_rng(9)
    for x in np.r_[rng.normal(size=200), rng.normal(2.0, 1.0, size=300)]:
        det.update(x)
        clone.update(x)
        assert det.transitions == clone.transitions
    assert det.n_seen == clone.n_seen and det.in_drift == clone.in_drift


def ks_state() -> dict[str, Any]:
    return detector_state(warmed(IncrementalKS(reference(), 50, alpha=0.01)))


def tampered(change: Any) -> dict[str, Any]:
    doc = ks_state()
    change(doc["state"])
    return doc


def old_ks_state() -> dict[str, Any]:
    """The state of :func:`ks_state` as the versions before the derived fields wrote it: with
    the reference's per-slot ends (int64) and the window's per-slot counts (int32), and the
    reference counts as int64."""
    det = warmed(IncrementalKS(reference(), 50, alpha=0.01))
    doc = detector_state(det)
    old = {}
    for name, value in doc["state"].items():
        old[name] = det._ref_counts if name == "_ref_counts" else value
        if name == "_ref":  # the derived fields followed the distinct values
            old.update(_ref_end=det._ref_end, _counts=det._counts)
    assert old["_ref_end"].dtype == np.int64 and old["_counts"].dtype == np.int32
    doc["state"] = old
    return doc


def tampered_old(change: Any) -> dict[str, Any]:
    doc = old_ks_state()
    change(doc["state"])
    return doc


def _moved(counts: np.ndarray) -> np.ndarray:
    """``counts`` with one unit moved from its largest entry to its last: same sum, wrong."""
    out = counts.copy()
    out[int(np.argmax(out))] -= 1
    out[-1] += 1
    return out


@pytest.mark.parametrize(
    "doc",
    [
        {"kind": "pickle", "state": {}},
        {"kind": "incremental_ks", "state": []},
        tampered(lambda s: s.pop("_ref_counts")),
        tampered(lambda s: s.update(update=1)),  # would shadow a method
        tampered(lambda s: s.update(__class__=1)),
        tampered(lambda s: s.update(n_seen="many")),
        tampered(lambda s: s.update(_ref_counts=s["_ref_counts"].astype(np.float64))),
        tampered(lambda s: s.update(_ref_counts=s["_ref_counts"].astype(np.uint8))),
        tampered(lambda s: s.update(_ref_counts=s["_ref_counts"][:-1])),
        tampered(lambda s: s.update(_ref_counts=s["_ref_counts"][None, :])),
        tampered(lambda s: s.update(_ref_counts=_moved(s["_ref_counts"]))),
        tampered(lambda s: s.update(_ref_counts=s["_ref_counts"] * 2)),  # n is 300, not 600
        tampered(lambda s: s["_window"]["v"].update(tags=s["_window"]["v"]["tags"] + 10_000)),
        tampered(lambda s: s["_window"]["v"].update(capacity=7)),
        tampered(lambda s: s.update(_window={"$": "window", "v": {"capacity": 50}})),
        tampered(lambda s: s.update(_calibration={"$": "record", "cls": "os.system", "v": {}})),
        tampered(lambda s: s.update(_thresholds={"$": "code", "v": "import os"})),
        # an earlier version's state whose derived fields disagree with what they derive from
        tampered_old(lambda s: s.update(_counts=_moved(s["_counts"]))),
        tampered_old(lambda s: s.update(_counts=s["_counts"][:-1])),
        tampered_old(lambda s: s.update(_counts=s["_counts"].astype(np.float64))),
        tampered_old(lambda s: s.update(_ref_end=_moved(s["_ref_end"]))),
        tampered_old(lambda s: s.update(_ref_end=s["_ref_end"] + 1)),
        tampered_old(lambda s: s.update(_ref_end=s["_ref_end"][1:])),
        tampered_old(lambda s: s.update(_ref_end={"$": "code", "v": "import os"})),
    ],
)
def test_malformed_states_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        detector_from_state(doc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(_counts=_moved(s["_counts"])), "_counts disagrees"),
        (lambda s: s.update(_ref_end=_moved(s["_ref_end"])), "_ref_end disagrees"),
        (lambda s: s.update(_counts=s["_counts"][:-1]), "_counts must hold 601 entries"),
        (lambda s: s.update(_ref_counts=s["_ref_counts"] * 1.0), "int8..int64 array, got 1-d"),
    ],
)
def test_a_corrupt_state_is_refused_with_what_is_wrong(change: Any, message: str) -> None:
    doc = tampered_old(change)
    with pytest.raises(StateError, match=message):
        detector_from_state(doc)


def test_an_earlier_versions_state_restores_to_the_same_detector() -> None:
    new, old = ks_state(), old_ks_state()
    assert "_counts" not in new["state"] and "_ref_end" not in new["state"]
    assert new["state"]["_ref_counts"].dtype == np.int8  # 300 distinct values, once each
    from_new, from_old = detector_from_state(new), detector_from_state(old)
    assert same_plain(detector_state(from_old), new) and same_plain(detector_state(from_new), new)
    rng = np.random.default_rng(4)
    for x in np.r_[rng.normal(size=100), rng.normal(1.5, 1.0, size=150)]:
        from_new.update(x)
        from_old.update(x)
        assert from_new.transitions == from_old.transitions
    assert from_new.result() == from_old.result()
    assert same_plain(detector_state(from_new), detector_state(from_old))


def test_a_river_state_is_checked_against_a_fresh_detector() -> None:
    doc = detector_state(warmed(KSWINDetector(resolve_after=50, seed=3)))
    doc["state"]["_detector"]["attrs"]["window"] = 3.0  # a deque expected
    with pytest.raises(StateError):
        detector_from_state(doc)
    doc = detector_state(warmed(ADWINDetector(resolve_after=50)))
    doc["state"]["_detector"]["attrs"]["_helper"]["v"] = b"\x00\x01garbage"
    with pytest.raises(StateError):
        detector_from_state(doc)


def _refused(call: Any) -> str | None:
    try:
        det = call()
    except ValueError as exc:
        return str(exc)
    if hasattr(det, "close"):
        det.close()
    return None


@pytest.mark.parametrize("name", ["incremental_ks", "windowed_ks"])
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"ert": 20_000.0},
        {"ert": 500.0},  # too short for a window of 200
        {"alpha": 0.01},
        {"alpha": 1.5},
        {"resolve_ratio": 0.0},
        {"resolve_after": 0},
        {"window_size": 0},
        {"duration": 60.0, "alpha": 0.01},
        {"duration": 60.0, "ert": 20_000.0},  # an ert needs a count window
        {"duration": -1.0, "alpha": 0.01},
    ],
)
def test_validation_refuses_exactly_what_the_constructor_refuses(
    name: DetectorName, changes: dict[str, Any]
) -> None:
    """The oracle is the detector's own constructor, given the options the registry builds with."""
    base = {"window_size": 200, "resolve_ratio": 0.6, "wait_for_calibration": False}
    options = DetectorOptions(**{**base, **changes})
    built = _refused(lambda: build_detector(name, reference(), options))
    validated = _refused(lambda: KINDS[name].validate(options))
    assert validated == built


@pytest.mark.parametrize(
    ("name", "ert", "refused"),
    [
        ("adwin", 20_000.0, False),
        ("adwin", 50.0, True),  # shorter than a false episode
        ("page_hinkley", 1e12, True),  # beyond the longest calibrated ERT
        ("kswin", 20_000.0, False),
        ("kswin", float("nan"), True),
    ],
)
def test_river_kinds_refuse_an_ert_their_calibration_cannot_reach(
    name: DetectorName, ert: float, refused: bool
) -> None:
    options = DetectorOptions(window_size=200, resolve_ratio=0.6, ert=ert)
    assert (_refused(lambda: validate_options(name, options)) is not None) is refused
