"""Tests for detectors.multitest.adjust_pvalues."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

import detectors.multitest as multitest
from detectors.multitest import CORRECTION_METHODS, adjust_pvalues

# Five tests; sorted ascending the p-values are
#   rank j:   1      2     3     4     5
#   p_(j):  0.001  0.02  0.03  0.04  0.5
#   index:    1      0     3     2     4
P = [0.02, 0.001, 0.04, 0.03, 0.5]


def test_none_returns_raw_values() -> None:
    np.testing.assert_array_equal(adjust_pvalues(P, "none"), P)


def test_bonferroni_hand_computed() -> None:
    # m * p = 5 * [0.02, 0.001, 0.04, 0.03, 0.5] = [0.1, 0.005, 0.2, 0.15, 2.5 -> clipped to 1]
    expected = [0.1, 0.005, 0.2, 0.15, 1.0]
    np.testing.assert_allclose(adjust_pvalues(P, "bonferroni"), expected, rtol=1e-12)


def test_holm_hand_computed() -> None:
    # (m - j + 1) * p_(j) in rank order: 5*0.001=0.005, 4*0.02=0.08, 3*0.03=0.09,
    # 2*0.04=0.08, 1*0.5=0.5; running maximum: 0.005, 0.08, 0.09, 0.09, 0.5.
    # Back to input order (indices 1, 0, 3, 2, 4):
    expected = [0.08, 0.005, 0.09, 0.09, 0.5]
    np.testing.assert_allclose(adjust_pvalues(P, "holm"), expected, rtol=1e-12)


def test_bh_hand_computed() -> None:
    # m / j * p_(j) in rank order: 5/1*0.001=0.005, 5/2*0.02=0.05, 5/3*0.03=0.05,
    # 5/4*0.04=0.05, 5/5*0.5=0.5; running minimum from the top: 0.005, 0.05, 0.05, 0.05, 0.5.
    # Back to input order (indices 1, 0, 3, 2, 4):
    expected = [0.05, 0.005, 0.05, 0.05, 0.5]
    np.testing.assert_allclose(adjust_pvalues(P, "bh"), expected, rtol=1e-12)


def test_decisions_differ_between_fwer_and_fdr() -> None:
    alpha = 0.06
    assert list(adjust_pvalues(P, "none") < alpha) == [True, True, True, True, False]
    assert list(adjust_pvalues(P, "bonferroni") < alpha) == [False, True, False, False, False]
    assert list(adjust_pvalues(P, "holm") < alpha) == [False, True, False, False, False]
    assert list(adjust_pvalues(P, "bh") < alpha) == [True, True, True, True, False]


def test_ties_get_equal_adjusted_values() -> None:
    # holm: 3*0.01=0.03, 2*0.01=0.02 -> max 0.03, 1*0.04=0.04
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.01, 0.04], "holm"), [0.03, 0.03, 0.04])
    # bh: 3/1*0.01=0.03, 3/2*0.01=0.015, 3/3*0.04=0.04; minimum from the top: 0.015, 0.015, 0.04
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.01, 0.04], "bh"), [0.015, 0.015, 0.04])
    # Order of appearance of the ties does not matter.
    np.testing.assert_allclose(adjust_pvalues([0.04, 0.01, 0.01], "bh"), [0.04, 0.015, 0.015])


def test_clipped_to_one() -> None:
    # bonferroni: 2*0.6=1.2 -> 1, 2*0.7=1.4 -> 1
    np.testing.assert_array_equal(adjust_pvalues([0.6, 0.7], "bonferroni"), [1.0, 1.0])
    # holm: 2*0.6=1.2 -> 1, then max(1, 0.7) = 1
    np.testing.assert_array_equal(adjust_pvalues([0.6, 0.7], "holm"), [1.0, 1.0])
    # bh: 2/1*0.6=1.2 -> 1, 2/2*0.7=0.7; minimum from the top: 0.7, 0.7
    np.testing.assert_allclose(adjust_pvalues([0.6, 0.7], "bh"), [0.7, 0.7])


@pytest.mark.parametrize("method", CORRECTION_METHODS)
def test_edge_inputs(method: str) -> None:
    assert adjust_pvalues([], method).shape == (0,)
    np.testing.assert_array_equal(adjust_pvalues([0.0, 1.0], method)[[0]], [0.0])
    assert adjust_pvalues([0.2], method).tolist() == [0.2]
    grid = np.array([[0.01, 0.2], [0.03, 0.04]])
    out = adjust_pvalues(grid, method)
    assert out.shape == (2, 2)
    np.testing.assert_allclose(out.ravel(), adjust_pvalues(grid.ravel(), method))
    raw = np.array([0.3, 0.01, 0.02])
    adjust_pvalues(raw, method)
    np.testing.assert_array_equal(raw, [0.3, 0.01, 0.02])  # input left untouched
    assert adjust_pvalues(raw, method).dtype == np.float64


@pytest.mark.parametrize("bad", ["BH", "fdr", "", None])
def test_bad_method_names_parameter_and_value(bad: object) -> None:
    with pytest.raises(ValueError, match=r"method must be one of .*'holm'.*got") as info:
        adjust_pvalues([0.1], bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [float("nan"), -0.01, 1.5])
def test_bad_pvalue_names_parameter_and_value(bad: float) -> None:
    with pytest.raises(ValueError, match="pvalues must all lie in") as info:
        adjust_pvalues([0.1, bad, 0.2], "holm")
    assert repr(bad) in str(info.value)
    assert "position 1" in str(info.value)


pvalue_arrays = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(0.0, 1.0, allow_nan=False),
)


@given(pvalue_arrays)
def test_properties(p: np.ndarray) -> None:
    adjusted = {method: adjust_pvalues(p, method) for method in CORRECTION_METHODS}
    for values in adjusted.values():
        assert np.all(values >= p)
        assert np.all(values <= 1.0)
        # Adjustment preserves the order of the raw p-values.
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(values[order]) >= 0)
    assert np.all(adjusted["bonferroni"] >= adjusted["holm"])
    assert np.all(adjusted["holm"] >= adjusted["bh"] - 1e-15)


@given(pvalue_arrays, st.randoms(use_true_random=False))
def test_permutation_equivariant(p: np.ndarray, rnd: object) -> None:
    perm = np.arange(p.size)
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    for method in CORRECTION_METHODS:
        np.testing.assert_allclose(adjust_pvalues(p[perm], method), adjust_pvalues(p, method)[perm])


@given(pvalue_arrays)
def test_bh_matches_scipy(p: np.ndarray) -> None:
    np.testing.assert_allclose(
        adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"), rtol=1e-12
    )


def test_module_is_pure_numpy() -> None:
    tree = ast.parse(Path(multitest.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "collections", "typing", "numpy"}
