"""The null simulation's draws: xoshiro256+ words, a guide table, exact cell probabilities.

The words are checked against a plain-Python xoshiro256+ seeded by splitmix64, their top 53
bits for uniformity, the guide table against a search of the cumulative cuts for every entry
and many words, the cuts against the cell probabilities, and the drawn cells against their
probabilities by a chi-square test. All seeds are fixed: the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors.calibration import NullModel
from detectors.kernels import (
    PREFIX,
    TREE,
    draw_cell,
    draw_stream,
    guide_table,
    next_words,
    seeded_state,
    simulate_segments,
)

_MASK = (1 << 64) - 1
_SPAN = 1 << 53


def _reference_words(seed: int, count: int) -> list[int]:
    """xoshiro256+ (Blackman and Vigna), its state from splitmix64 started at ``seed * C``."""
    z = (seed * 0xD1B54A32D192ED03) & _MASK
    s = []
    for _ in range(4):
        z = (z + 0x9E3779B97F4A7C15) & _MASK
        x = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
        s.append(x ^ (x >> 31))
    out = []
    for _ in range(count):
        out.append((s[0] + s[3]) & _MASK)
        t = (s[1] << 17) & _MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & _MASK
    return out


def _words(seed: int, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.uint64)
    next_words(seeded_state(seed), out)
    return out


@pytest.mark.parametrize("seed", [0, 1, 3, 20_261_203, 2**62 + 7])
def test_words_are_xoshiro256_plus_seeded_by_splitmix64(seed: int) -> None:
    assert [int(w) for w in _words(seed, 64)] == _reference_words(seed, 64)


def test_words_do_not_depend_on_the_blocks() -> None:
    state = seeded_state(5)
    parts = [np.empty(k, dtype=np.uint64) for k in (1, 7, 0, 100, 12)]
    for part in parts:
        next_words(state, part)
    assert np.array_equal(np.concatenate(parts), _words(5, 120))
    assert not np.array_equal(_words(5, 120), _words(6, 120))


def test_top_53_bits_are_uniform() -> None:
    words = _words(11, 400_000)
    u = (words >> np.uint64(11)).astype(np.float64) / _SPAN
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    top = (words >> np.uint64(56)).astype(np.int64)  # 256 bins of the top byte
    assert stats.chisquare(np.bincount(top, minlength=256)).pvalue > 1e-3
    bit = (words >> np.uint64(11)) & np.uint64(1)  # the lowest bit used
    assert abs(int(bit.sum()) - 200_000) < 4 * math.sqrt(100_000)
    a, b = (u[0::2] * 16).astype(np.int64), (u[1::2] * 16).astype(np.int64)
    pairs = np.bincount(16 * a + b, minlength=256)  # successive pairs, 16 x 16 bins
    assert stats.chisquare(pairs).pvalue > 1e-3


WEIGHTS = {
    "retries": [850.0, 100.0, 35.0, 10.0, 4.0, 1.0],
    "flag": [920.0, 80.0],
    "one cell": [3.0],
    "zeros inside and at the ends": [0.0, 2.0, 0.0, 0.0, 5.0, 1e-9, 0.0],
    "tiny and large": [1e-300, 1.0, 1e-12, 7.5e6],
    "many cells": list(np.random.default_rng(1).gamma(1.0, size=3_001)),
}


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_guide_table_is_exact_for_the_cumulative_cuts(name: str) -> None:
    w = np.array(WEIGHTS[name])
    cut, guide, shift = guide_table(w)
    assert cut.shape == w.shape and cut[-1] == _SPAN
    assert np.all(np.diff(cut) >= 0) and cut[0] >= 0
    width = np.diff(cut, prepend=0)
    assert np.all(width[w == 0.0] == 0)  # a cell of no weight is never drawn
    assert np.all(np.abs(width - w / w.sum() * _SPAN) <= 4.0)  # w_j / total to a few 2**-53
    assert guide.shape[0] >= max(1_024, 2 * w.shape[0]) and (guide.shape[0] << shift) == _SPAN
    starts = np.arange(guide.shape[0], dtype=np.int64) << shift
    assert np.array_equal(guide, np.searchsorted(cut, starts, side="right"))
    edges = np.concatenate([cut[:-1] - 1, cut[:-1], cut[:-1] + 1, [0, _SPAN - 1], starts])
    words = (_words(len(name), 20_000) >> np.uint64(11)).astype(np.int64)
    for r in np.concatenate([edges[(edges >= 0) & (edges < _SPAN)], words]):
        assert draw_cell(cut, guide, shift, int(r)) == np.searchsorted(cut, r, side="right")


@pytest.mark.parametrize("name", ["retries", "flag", "zeros inside and at the ends"])
def test_drawn_cells_follow_the_weights(name: str) -> None:
    w = np.array(WEIGHTS[name])
    cut, guide, shift = guide_table(w)
    stream = np.empty(1_000_000, dtype=np.int64)
    cells = np.arange(w.shape[0], dtype=np.int64)
    draw_stream(seeded_state(17), cut, guide, shift, cells, stream, np.empty(999, np.uint64))
    seen = np.bincount(stream, minlength=w.shape[0])
    expected = w / w.sum() * stream.shape[0]
    assert np.all(seen[expected == 0.0] == 0)
    live = expected >= 5.0
    chi2 = stats.chisquare(seen[live], expected[live] * seen[live].sum() / expected[live].sum())
    assert chi2.pvalue > 1e-3


def test_simulation_is_a_function_of_the_seed() -> None:
    model = NullModel.of_reference(np.array([850, 100, 35, 10, 4, 1]), continuous=False)

    def run(seed: int, path: int) -> tuple:
        args = (model.cell_alpha, model.cell_slot, model.slot_ref, model.n, 50, 12, 1_000, 1)
        return simulate_segments(*args, 0, 0, 50, True, seed, 10**6, 4, path)

    first = run(3, PREFIX)
    for again in (run(3, PREFIX), run(3, TREE)):
        for x, y in zip(first, again, strict=True):
            assert np.array_equal(x, y)
    assert not np.array_equal(first[0], run(4, PREFIX)[0])
