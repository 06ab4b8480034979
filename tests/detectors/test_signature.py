"""Tie signatures: which tied references share one calibration, and that sharing keeps the rate."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

import detectors.ks_alarm as ks_alarm
from detectors import IncrementalKS
from detectors.calibration import _shared, calibrate_gap
from detectors.null_rate import count_false_starts
from detectors.signature import FEW_VALUES, tie_signature


def counts_of(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_counts=True)[1]


def retries(rng: np.random.Generator, size: int) -> np.ndarray:
    return np.where(rng.random(size) < 0.85, 0.0, 1.0 + rng.poisson(0.5, size))


def tokens(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.poisson(300.0, size).astype(float)


def test_canonical_references_keep_the_size_and_the_kind() -> None:
    rng = np.random.default_rng(1)
    for gen, kind in ((retries, "few"), (tokens, "many")):
        counts = counts_of(gen(rng, 1_000))
        sig = tie_signature(counts)
        assert sig.kind == kind
        assert sum(sig.counts) == 1_000 and min(sig.counts) >= 1
        assert sig.key[0] == 1_000
    # a heavy atom makes a reference few-valued whatever its number of values
    heavy = np.r_[400, np.ones(FEW_VALUES * 4, dtype=np.int64)]
    assert tie_signature(heavy).kind == "few"


def test_many_valued_references_of_one_kind_share_a_signature() -> None:
    rng = np.random.default_rng(2)
    keys = [tie_signature(counts_of(tokens(rng, 1_000))).key for _ in range(200)]
    assert len(set(keys)) <= 5  # 200 references, a handful of signatures


def test_few_valued_references_share_only_an_identical_profile() -> None:
    assert tie_signature([853, 101, 46]) == tie_signature(np.array([853, 101, 46]))
    assert tie_signature([853, 101, 46]) != tie_signature([852, 102, 46])


def test_different_structures_do_not_share() -> None:
    assert tie_signature([900, 100]).key != tie_signature([500, 500]).key
    assert tie_signature([900, 100]).key != tie_signature([1_800, 200]).key  # n differs


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="atom_counts"):
        tie_signature([3, 0, 2])


def test_shared_calibration_is_reused_and_does_not_depend_on_who_came_first() -> None:
    rng = np.random.default_rng(3)
    drawn = [counts_of(tokens(rng, 400)) for _ in range(6)]
    a, b = next(
        (x, y)
        for i, x in enumerate(drawn)
        for y in drawn[i + 1 :]
        if tie_signature(x) == tie_signature(y) and not np.array_equal(x, y)
    )
    _shared.cache_clear()
    first = calibrate_gap(a, 30, 800.0, resolve_after=5, share=True)
    assert calibrate_gap(b, 30, 800.0, resolve_after=5, share=True) is first
    _shared.cache_clear()
    again = calibrate_gap(b, 30, 800.0, resolve_after=5, share=True)
    assert replace(again, seconds=first.seconds) == first
    own = calibrate_gap(a, 30, 800.0, resolve_after=5, share=False)
    assert own is not first


@pytest.mark.parametrize("gen", [retries, tokens], ids=["retries", "tokens"])
def test_streams_on_shared_thresholds_alarm_at_the_ert(
    gen: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ks_alarm, "calibrate_gap", functools.partial(calibrate_gap, share=True))
    # 24 references, each served its signature's calibration; about 800 false alarms expected
    ert, window, rows, steps = 1_000.0, 30, 2, 20_000
    starts = observations = 0
    keys = set()
    for seed in range(24):
        rng = np.random.default_rng([7, seed])
        ref = gen(rng, 600)  # type: ignore[operator]
        keys.add(tie_signature(counts_of(ref)).key)
        det = IncrementalKS(ref, window, ert=ert, resolve_after=5, resolve_ratio=0.9)
        starts += count_false_starts(det, gen(rng, rows * steps).reshape(rows, steps))  # type: ignore[operator]
        observations += rows * (steps - window + 1)
    if gen is tokens:
        assert len(keys) < 24  # thresholds were shared
    assert 0.75 < starts / observations * ert < 1.3
