"""The few-slot null simulation is the segment tree's: the same kept gaps, bit for bit.

Both paths of :func:`detectors.kernels.simulate_segments` and
:func:`detectors.kernels.record_streams` run on the same seed and arguments; every returned
array and count must be equal, for flags, few-valued and retry-count references, with and
without the guarantee's split model, with a test after every observation and every few, for the
Bayesian bootstrap (one draw per stream or per group of streams) and for fixed probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.calibration import NullModel
from detectors.kernels import (
    AUTO,
    FEW_SLOTS,
    PREFIX,
    TREE,
    chosen_path,
    record_streams,
    simulate_segments,
)

REFERENCES = {
    "flag": [920, 80],
    "three-valued": [500, 300, 200],
    "retries": [850, 100, 35, 10, 4, 1],
}
WINDOW = 50


def _model(name: str, split: bool, bootstrap: bool) -> NullModel:
    model = NullModel.of_reference(np.array(REFERENCES[name]), continuous=False)
    model = model.split() if split else model
    if bootstrap:
        return model
    alpha = model.cell_alpha / model.cell_alpha.sum()
    return NullModel(alpha, model.cell_slot, model.slot_ref, model.n, bootstrap=False)


def _simulate(
    model: NullModel, path: int, h_min: int, stride: int, per_draw: int, capacity: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    return simulate_segments(
        model.cell_alpha,
        model.cell_slot,
        model.slot_ref,
        model.n,
        WINDOW,
        48,
        1_500,
        stride,
        h_min,
        math.ceil(0.6 * h_min),
        WINDOW,
        model.bootstrap,
        11,
        capacity,
        per_draw,
        path,
    )


def _same(a: tuple, b: tuple) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype
            assert np.array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("split", [False, True], ids=["counts", "split"])
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("bootstrap", [True, False], ids=["bootstrap", "fixed"])
def test_prefix_path_keeps_the_trees_gaps(
    name: str, split: bool, stride: int, bootstrap: bool
) -> None:
    model = _model(name, split, bootstrap)
    everything = _simulate(model, TREE, 0, stride, 1, 10**6)
    _same(everything, _simulate(model, PREFIX, 0, stride, 1, 10**6))
    tested = everything[0]
    for share in (0.05, 0.002):  # a low level (long runs) and a rare one (mostly skipped)
        h_min = int(np.quantile(tested, 1.0 - share, method="lower"))
        for per_draw in (1, 16):
            tree = _simulate(model, TREE, h_min, stride, per_draw, 10**6)
            assert tree[0].shape[0] > 0
            _same(tree, _simulate(model, PREFIX, h_min, stride, per_draw, 10**6))
    # the capacity stop: the same streams done, the same gaps kept
    small = _simulate(model, TREE, 0, stride, 1, 5_000)
    assert small[3] < 48
    _same(small, _simulate(model, PREFIX, 0, stride, 1, 5_000))


@pytest.mark.parametrize("slots", [5, 13, 41])
@pytest.mark.parametrize("stride", [1, 4])
def test_prefix_path_records_given_streams_as_the_tree(slots: int, stride: int) -> None:
    """Any slots, gaps between values included, and a window that never fills in one row."""
    rng = np.random.default_rng(slots)
    slot_ref = np.zeros(slots, dtype=np.int64)
    slot_ref[1::2] = rng.integers(1, 60, slots // 2)
    n = int(slot_ref.sum())
    streams = rng.integers(0, slots, (6, 900)).astype(np.int64)
    streams[:, :300] = rng.choice(np.flatnonzero(slot_ref), (6, 300))
    tiny = streams[:1, :40]
    for h_min in (0, n * 10, n * 25):
        args = (n, WINDOW, stride, h_min, math.ceil(0.6 * h_min), 20)
        tree = record_streams(streams, slot_ref, *args, TREE)
        _same(tree, record_streams(streams, slot_ref, *args, PREFIX))
        _same(tree, record_streams(streams, slot_ref, *args))  # AUTO: few slots
        _same(record_streams(tiny, slot_ref, *args, TREE), record_streams(tiny, slot_ref, *args))
    assert record_streams(streams, slot_ref, n, WINDOW, stride, n * 10, 6 * n, 20)[0].size > 0


def test_few_slots_take_the_prefix_path_and_many_the_tree() -> None:
    retries = NullModel.of_reference(np.array(REFERENCES["retries"]), continuous=False)
    continuous = NullModel.of_reference(np.ones(1_000, dtype=np.int64), continuous=True)
    assert chosen_path(retries.slot_ref.shape[0], AUTO) == PREFIX
    assert chosen_path(retries.split().slot_ref.shape[0], AUTO) == PREFIX
    assert chosen_path(FEW_SLOTS, AUTO) == PREFIX
    assert chosen_path(FEW_SLOTS + 1, AUTO) == TREE
    assert chosen_path(continuous.slot_ref.shape[0], AUTO) == TREE
    assert chosen_path(13, TREE) == TREE
    assert chosen_path(2_001, PREFIX) == PREFIX
