from __future__ import annotations

import itertools
import math
import pickle
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors import DRIFT_RESOLVED, DRIFT_STARTED
from detectors.categorical import (
    OTHER,
    CategoricalDetector,
    CategoricalTransition,
    calibrate_chi2,
    category_of,
)

# A small alphabet, so that categories repeat, plus names that only the stream uses (unseen).
reference_values = st.sampled_from(["a", "b", "c", "d", "e"])
stream_values = st.sampled_from(["a", "b", "c", "d", "e", "new-1", "new-2"])


def pooled(reference: list[str], min_count: int, max_categories: int) -> list[str]:
    """The pooling rule, independently: frequent categories first (ties by name), then OTHER."""
    counts = Counter(reference)
    ranked = sorted((c for c in counts if counts[c] >= min_count), key=lambda c: (-counts[c], c))
    return [*ranked[: max_categories - 1], OTHER]


def scipy_chi2(reference: list[str], window: list[str], cells: list[str]) -> tuple[float, float]:
    """``chi2_contingency`` on the 2 x K table of pooled cells, empty columns left out."""

    def cell(c: str) -> str:
        return c if c in cells[:-1] else OTHER

    ref, win = Counter(map(cell, reference)), Counter(map(cell, window))
    table = np.array([[ref[c], win[c]] for c in cells if ref[c] + win[c] > 0]).T
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), float(res.pvalue)


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(reference_values, min_size=1, max_size=60),
    stream=st.lists(stream_values, min_size=1, max_size=120),
    window_size=st.integers(min_value=1, max_value=50),
    min_count=st.integers(min_value=1, max_value=4),
    max_categories=st.integers(min_value=2, max_value=6),
)
def test_statistic_equals_scipy_after_every_update(
    reference: list[str],
    stream: list[str],
    window_size: int,
    min_count: int,
    max_categories: int,
) -> None:
    det = CategoricalDetector(
        reference, window_size, min_count=min_count, max_categories=max_categories
    )
    cells = pooled(reference, min_count, max_categories)
    assert list(det.categories) == cells
    for i, x in enumerate(stream):
        det.update(x)
        window = stream[max(0, i + 1 - window_size) : i + 1]
        assert det.window == window
        stat, p = scipy_chi2(reference, window, cells)
        assert det.statistic == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert det.p_value == pytest.approx(p, rel=1e-9, abs=1e-300)


@settings(max_examples=30, deadline=None)
@given(
    stream=st.lists(stream_values, min_size=1, max_size=300),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=4),
)
def test_update_many_equals_update_on_each(stream: list[str], cuts: list[int]) -> None:
    reference = ["a"] * 30 + ["b"] * 20 + ["c"] * 8 + ["d"] * 2
    one = CategoricalDetector(reference, 25, alpha=0.01, resolve_after=5)
    many = CategoricalDetector(reference, 25, alpha=0.01, resolve_after=5)
    seen = []
    for x in stream:
        one.update(x)
        seen.extend(one.transitions)
    bounds = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    batched = []
    for lo, hi in itertools.pairwise(bounds):
        many.update_many(stream[lo:hi])
        batched.extend(many.transitions)
    assert batched == seen
    assert many.result() == one.result()
    assert many.window == one.window and many.in_drift == one.in_drift
    assert many.n_seen == one.n_seen == len(stream)


def test_alarm_rule_is_p_below_alpha() -> None:
    rng = np.random.default_rng(3)
    reference = list(rng.choice(["x", "y", "z"], 500, p=[0.5, 0.3, 0.2]))
    det = CategoricalDetector(reference, 100, alpha=0.001, resolve_after=10_000)
    stream = list(rng.choice(["x", "y", "z"], 600, p=[0.5, 0.3, 0.2]))
    stream += list(rng.choice(["x", "y", "z"], 300, p=[0.3, 0.3, 0.4]))
    first = None
    for i, x in enumerate(stream):
        det.update(x)
        if first is None and i >= 99 and det.p_value < 0.001:
            first = i
        assert det.drift_detected == (i == first), i
    assert first is not None and first > 600
    assert det.in_drift


def test_transition_names_the_category_that_moved() -> None:
    reference = ["stop"] * 900 + ["length"] * 80 + ["content_filter"] * 20
    det = CategoricalDetector(reference, 200, alpha=1e-4, resolve_after=50)
    calm = (["stop"] * 45 + ["length"] * 4 + ["content_filter"]) * 4
    det.update_many(calm + ["length"] * 100)
    started = [t for t in det.transitions if t.kind == DRIFT_STARTED]
    assert len(started) == 1
    t = started[0]
    assert isinstance(t, CategoricalTransition)
    assert t.largest_change is not None
    assert t.largest_change.category == "length"
    assert t.largest_change.reference_share == pytest.approx(0.08)
    assert t.largest_change.window_share > 0.08
    assert t.p_value < 1e-4 and t.n_reference == 1000 and t.n_window == 200
    det.update_many(calm * 2)
    assert [t.kind for t in det.transitions][-1:] == [DRIFT_RESOLVED]
    assert not det.in_drift


def test_unseen_and_rare_categories_pool_into_other() -> None:
    reference = ["a"] * 50 + ["b"] * 40 + ["rare"] * 2
    det = CategoricalDetector(reference, 10, min_count=5)
    assert det.categories == ("a", "b", OTHER)
    assert det.reference_counts.tolist() == [50, 40, 2]
    det.update_many(["never-seen"] * 6 + ["rare"] * 2 + ["a"] * 2)
    assert det.window_counts.tolist() == [2, 0, 8]
    change = det.largest_change()
    assert change.category == OTHER
    assert change.window_share == pytest.approx(0.8)


def test_array_values_are_their_sorted_set() -> None:
    assert category_of(["stop", "length"]) == category_of(["length", "stop", "stop"])
    assert category_of(("stop",)) == "stop" == category_of(["stop"])
    assert category_of([]) == "<empty>"
    det = CategoricalDetector([["stop"]] * 10 + [["length", "stop"]] * 10, 4)
    assert set(det.categories) == {"stop", "length|stop", OTHER}
    det.update_many([["stop", "length"], ["stop"]])
    assert det.window == ["length|stop", "stop"]


def test_set_reference_rebaselines_exactly() -> None:
    rng = np.random.default_rng(4)
    det = CategoricalDetector(list(rng.choice(list("abc"), 400)), 60, alpha=0.01)
    det.update_many(list(rng.choice(list("abcd"), 200, p=[0.1, 0.1, 0.2, 0.6])))
    assert det.in_drift
    new_ref = list(rng.choice(list("abcd"), 300, p=[0.1, 0.1, 0.2, 0.6]))
    det.set_reference(new_ref)
    fresh = CategoricalDetector(new_ref, 60)
    fresh.update_many(det.window)
    assert det.categories == fresh.categories
    assert det.result() == fresh.result()
    assert det.in_drift  # an open episode resolves by the usual rule against the new reference


def test_pickle_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(5)
    det = CategoricalDetector(list(rng.choice(list("pqrs"), 300)), 50, alpha=0.01)
    det.update_many(list(rng.choice(list("pqrs"), 120)))
    clone = pickle.loads(pickle.dumps(det))
    tail = list(rng.choice(list("pqrs"), 200)) + list(rng.choice(list("pq"), 100))
    for x in tail:
        det.update(x)
        clone.update(x)
        assert det.transitions == clone.transitions
    assert det.result() == clone.result()


def test_nan_before_any_observation() -> None:
    det = CategoricalDetector(["a", "b"], 5)
    assert math.isnan(det.statistic) and math.isnan(det.p_value)
    assert not det.drift_detected and not det.in_drift


def test_calibration_hits_its_simulated_rate_and_randomises_deterministically() -> None:
    cal = calibrate_chi2([120, 60, 15, 5], 50, 2_000.0, resolve_after=25)
    assert cal.model == "discrete"
    assert 0.7 < cal.simulated_rate * 2_000 < 1.3
    assert cal.gap_mixed <= cal.gap_high
    # the randomised boundary: the same observation index always decides the same way
    draws = [cal.fires(cal.gap_mixed, i, 0) for i in range(2_000)]
    assert draws == [cal.fires(cal.gap_mixed, i, 0) for i in range(2_000)]
    if cal.mix > 0:
        assert 0.5 * cal.mix < np.mean(draws) < 1.5 * cal.mix + 0.01


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window_size": 0}, "window_size"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": 0.1, "ert": 5000}, "alpha or ert"),
        ({"ert": 10}, "ert"),
        ({"min_count": 0}, "min_count"),
        ({"max_categories": 1}, "max_categories"),
        ({"resolve_ratio": 0.0}, "resolve_ratio"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"window_size": 20, **kwargs}
    with pytest.raises(ValueError, match=match):
        CategoricalDetector(["a", "b"], **args)  # type: ignore[arg-type]


def test_empty_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="reference"):
        CategoricalDetector([], 10)


def test_background_calibration_and_pickling_under_ert() -> None:
    rng = np.random.default_rng(12)
    reference = list(rng.choice(list("abc"), 1000, p=[0.5, 0.3, 0.2]))
    stream = list(rng.choice(list("abc"), 600, p=[0.5, 0.3, 0.2]))
    waiting = CategoricalDetector(reference, 100, ert=2_000, seed=3)
    waiting.update_many(stream)
    assert waiting.calibration is not None and waiting.calibration_ready
    same = calibrate_chi2(waiting.reference_counts, 100, 2_000, resolve_after=100, seed=3)
    assert waiting.calibration == same  # cached: the same thresholds for the same reference
    clone = pickle.loads(pickle.dumps(waiting))
    tail = list(rng.choice(list("abc"), 400, p=[0.2, 0.3, 0.5]))
    waiting.update_many(tail)
    clone.update_many(tail)
    assert waiting.transitions == clone.transitions and waiting.in_drift
    eager = CategoricalDetector(reference, 100, ert=2_000, seed=3, wait_for_calibration=False)
    eager.close()  # cancels a calibration that has not started; a running one finishes
    eager.update_many(stream)
    assert eager.n_seen == 600 and eager.window == stream[-100:]
    assert eager.calibration == same  # a cancelled calibration is computed when needed


# ---------------------------------------------------------------------------- state
def test_state_round_trip_continues_exactly_with_and_without_calibration() -> None:
    from detectors.registry import StateError, detector_from_state, detector_state

    rng = np.random.default_rng(11)
    cats = ["a", "b", "c", "d", "rare"]
    null = [0.5, 0.3, 0.15, 0.049, 0.001]
    ref = rng.choice(cats, 800, p=null)
    stream = np.r_[
        rng.choice(cats, 900, p=null), rng.choice(cats, 700, p=[0.3, 0.3, 0.2, 0.1, 0.1])
    ]
    for kwargs in ({"alpha": 1e-4}, {"ert": 3000.0}):
        whole = CategoricalDetector(ref, 150, **kwargs)
        part = CategoricalDetector(ref, 150, **kwargs)
        whole.update_many(stream)
        part.update_many(stream[:1000])
        state = detector_state(part)
        assert state["kind"] == "chi2"
        restored = detector_from_state(state)
        assert isinstance(restored, CategoricalDetector)
        before = [(t.kind, t.index) for t in part.transitions]
        restored.update_many(stream[1000:])
        after = [(t.kind, t.index, t.largest_change) for t in restored.transitions]
        want = [(t.kind, t.index, t.largest_change) for t in whole.transitions]
        assert [w for w in want if w[1] > 1000] == after, kwargs
        assert all((k, i) in [(w[0], w[1]) for w in want] for k, i in before)
        assert restored.statistic == whole.statistic and restored.categories == whole.categories
    bad = detector_state(part)
    bad["state"]["categories"] = ["a", "b"]  # no "other" cell
    with pytest.raises(StateError):
        detector_from_state(bad)
    bad = detector_state(part)
    bad["state"]["window"] = ["a"] * 151  # longer than the window
    with pytest.raises(StateError):
        detector_from_state(bad)
