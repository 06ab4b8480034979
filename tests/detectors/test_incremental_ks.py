from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors import DRIFT_RESOLVED, DRIFT_STARTED, IncrementalKS, WindowedKS
from detectors.registry import detector_from_state, detector_state
from tests.detectors.oracle import assert_matches_scipy, time_window
from tests.support.plain import same_plain

# Integer telemetry with few distinct values (ties everywhere), and continuous-ish values.
few_values = st.integers(min_value=0, max_value=4).map(float)
rounded = st.floats(min_value=-3, max_value=3, allow_nan=False).map(lambda v: round(v, 1))
values = st.one_of(few_values, rounded)


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(values, min_size=1, max_size=60),
    stream=st.lists(values, min_size=1, max_size=120),
    window_size=st.integers(min_value=1, max_value=70),
)
def test_count_window_equals_scipy_after_every_update(
    reference: list[float], stream: list[float], window_size: int
) -> None:
    det = IncrementalKS(reference, window_size=window_size, min_window=1)
    ref = np.asarray(reference)
    for i, x in enumerate(stream):
        det.update(x)
        window = np.asarray(stream[max(0, i + 1 - window_size) : i + 1])
        assert np.array_equal(det.window, window)
        assert_matches_scipy(det.result(), ref, window)


@settings(max_examples=40, deadline=None)
@given(
    reference=st.lists(values, min_size=1, max_size=50),
    steps=st.lists(
        st.tuples(values, st.floats(min_value=-0.5, max_value=3.0)), min_size=1, max_size=100
    ),
    duration=st.floats(min_value=0.5, max_value=20.0),
    cap=st.integers(min_value=1, max_value=80),
)
def test_time_window_equals_scipy_after_every_update(
    reference: list[float], steps: list[tuple[float, float]], duration: float, cap: int
) -> None:
    det = IncrementalKS(reference, window_size=cap, duration=duration, min_window=1)
    ref = np.asarray(reference)
    xs: list[float] = []
    ts: list[float] = []
    t = 1000.0
    for x, dt in steps:
        t += dt  # negative steps: late events, raised to the latest time
        xs.append(x)
        ts.append(t)
        det.update(x, t)
        window = time_window(xs, ts, duration, cap)
        assert np.array_equal(np.sort(det.window), np.sort(window))
        assert_matches_scipy(det.result(), ref, window)


@settings(max_examples=40, deadline=None)
@given(
    reference=st.lists(values, min_size=5, max_size=80),
    stream=st.lists(values, min_size=1, max_size=400),
    window_size=st.integers(min_value=1, max_value=60),
    chunks=st.lists(st.integers(min_value=1, max_value=90), min_size=1, max_size=20),
    alpha=st.sampled_from([0.05, 0.2]),
)
def test_update_many_equals_update_on_each(
    reference: list[float],
    stream: list[float],
    window_size: int,
    chunks: list[int],
    alpha: float,
) -> None:
    one = IncrementalKS(reference, window_size=window_size, alpha=alpha, resolve_after=5)
    many = IncrementalKS(reference, window_size=window_size, alpha=alpha, resolve_after=5)
    seen_one = []
    for x in stream:
        one.update(x)
        seen_one.extend(one.transitions)
    seen_many = []
    i = 0
    sizes = iter(chunks * (len(stream) // max(1, sum(chunks)) + 1))
    while i < len(stream):
        k = next(sizes)
        many.update_many(stream[i : i + k])
        seen_many.extend(many.transitions)
        i += k
    assert seen_one == seen_many
    assert one.n_seen == many.n_seen == len(stream)
    assert np.array_equal(one.window, many.window)
    assert one.in_drift == many.in_drift
    assert one.drift_detected == many.drift_detected
    assert one.result() == many.result()


def test_large_window_and_unequal_sizes_against_scipy() -> None:
    rng = np.random.default_rng(7)
    reference = rng.poisson(20, size=2500).astype(float)  # integer token counts: heavy ties
    det = IncrementalKS(reference, window_size=3000)
    stream = np.r_[rng.poisson(20, size=4000), rng.poisson(21, size=3000)].astype(float)
    for start in range(0, stream.size, 500):
        det.update_many(stream[start : start + 500])
        window = stream[max(0, start + 500 - 3000) : start + 500]
        assert_matches_scipy(det.result(), reference, window)
    assert det.in_drift  # a +1 shift in a Poisson(20) mean is found with 3,000 observations


@pytest.mark.parametrize(("n", "window_size"), [(1_000, 200), (40_000, 300), (500, 40_000)])
def test_narrow_buffer_dtype_and_stored_counts(n: int, window_size: int) -> None:
    # int16 slots and cumulative counts while both fit, whatever the window (no per-slot counts
    # are kept); int32 beyond; the state holds no per-slot counts, the reference's per-value
    # counts in the narrowest dtype (each value once here: int8) and the tags as int32
    rng = np.random.default_rng(11)
    reference = rng.normal(size=n)
    det = IncrementalKS(reference, window_size=window_size, alpha=1e-6)
    stream = rng.normal(0.05, 1.0, size=window_size + 500)
    det.update_many(stream)
    narrow = np.int16 if n < 16_000 else np.int32
    assert det._narrow.dtype == narrow
    assert_matches_scipy(det.result(), reference, stream[-window_size:])
    held = detector_state(det)["state"]
    assert "_counts" not in held and "_ref_end" not in held
    assert held["_ref_counts"].dtype == np.int8 and held["_ref_counts"].tolist() == [1] * n
    assert det._window.tags().dtype == np.int32
    clone = detector_from_state(detector_state(det))
    tail = rng.normal(0.5, 1.0, size=400)
    det.update_many(tail)
    clone.update_many(tail)
    assert det.transitions == clone.transitions
    assert det.result() == clone.result()


@pytest.mark.parametrize(
    ("n", "n_values", "stored"),
    [
        (1_000, 1_000, np.int8),  # distinct values: every count 1
        (1_000, 4, np.int16),  # four values, about 250 each
        (1_000, 1, np.int16),  # one value, 1,000 times
        (70_000, 2, np.int32),  # two values, about 35,000 each
    ],
)
def test_the_reference_counts_are_stored_narrow_and_read_in_any_width(
    n: int, n_values: int, stored: type
) -> None:
    rng = np.random.default_rng(n_values)
    if n_values == n:
        reference = rng.normal(size=n)
    else:
        reference = rng.integers(0, n_values, size=n).astype(float)
    det = IncrementalKS(reference, window_size=200, alpha=0.01, resolve_after=20)
    det.update_many(rng.normal(size=300) if n_values == n else reference[:300])
    doc = detector_state(det)
    held = doc["state"]["_ref_counts"]
    counts = np.unique(reference, return_counts=True)[1]
    assert held.dtype == stored and held.tolist() == counts.tolist()
    assert held.dtype == np.min_scalar_type(-int(counts.max()))  # the narrowest signed one
    tail = np.r_[rng.normal(size=100), rng.normal(3.0, 1.0, size=300)]
    if n_values != n:
        tail = rng.integers(0, n_values, size=400).astype(float) + np.repeat([0.0, 1.0], 200)
    restored = []
    for width in (np.int32, np.int64):
        wide = {"kind": doc["kind"], "state": dict(doc["state"])}
        wide["state"]["_ref_counts"] = held.astype(width)
        clone = detector_from_state(wide)
        assert clone.reference.tolist() == det.reference.tolist()
        assert same_plain(detector_state(clone), doc)  # written back narrow, all else the same
        restored.append(clone)
    kinds = []
    for x in tail:
        det.update(float(x))
        kinds += [t.kind for t in det.transitions]
        for clone in restored:
            clone.update(float(x))
            assert clone.transitions == det.transitions
            assert clone.gap == det.gap
    assert DRIFT_STARTED in kinds  # the continuation exercises an alarm
    for clone in restored:
        assert clone.result() == det.result()
        assert same_plain(detector_state(clone), detector_state(det))


def test_alarm_rule_is_p_below_alpha_at_every_update() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 6, size=300).astype(float)
    det = IncrementalKS(reference, window_size=100, alpha=0.05, resolve_after=30)
    stream = np.r_[
        rng.integers(0, 6, size=600), rng.integers(1, 7, size=400), rng.integers(0, 6, size=600)
    ].astype(float)
    kinds = []
    for x in stream:
        det.update(x)
        kinds += [t.kind for t in det.transitions]
        if len(det.window) < 100:
            continue
        p = stats.ks_2samp(reference, det.window).pvalue
        if det.drift_detected:
            assert p < 0.05
        if not det.in_drift and not det.transitions:
            assert p >= 0.05  # no alarm may be missed between exact evaluations
    assert kinds[:2] == [DRIFT_STARTED, DRIFT_RESOLVED]


def test_transition_carries_the_evidence() -> None:
    rng = np.random.default_rng(11)
    reference = rng.normal(size=1000)
    det = IncrementalKS(reference, window_size=200, alpha=1e-4)
    det.update_many(rng.normal(size=500))
    assert not det.in_drift
    det.update_many(rng.normal(2.0, 1.0, size=300))
    (started,) = [t for t in det.transitions if t.kind == DRIFT_STARTED]
    assert started.p_value < 1e-4 and started.statistic >= started.threshold
    assert started.statistic_sign == 1  # the window moved up
    assert started.n_reference == 1000 and started.n_window == 200
    assert 500 < started.index <= 800


def test_nan_before_any_observation_and_partial_windows() -> None:
    det = IncrementalKS([1.0, 2.0, 3.0], window_size=10)
    assert math.isnan(det.statistic) and math.isnan(det.p_value)
    assert not det.drift_detected and not det.in_drift
    det.update(2.0)
    assert_matches_scipy(det.result(), np.array([1.0, 2.0, 3.0]), np.array([2.0]))


def test_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(5)
    det = IncrementalKS(rng.integers(0, 9, size=400).astype(float), window_size=150)
    det.update_many(rng.integers(0, 9, size=700).astype(float))
    state = detector_state(det)
    clone = detector_from_state(state)
    tail = np.r_[rng.integers(0, 9, size=300), rng.integers(3, 12, size=300)].astype(float)
    for x in tail:
        det.update(x)
        clone.update(x)
        assert det.transitions == clone.transitions
    assert det.result() == clone.result()
    # about the size of the data held: reference, slot counts and a 150-value window
    held = state["state"]
    assert sum(v.nbytes for v in held.values() if isinstance(v, np.ndarray)) < 40_000


def test_set_reference_rebaselines_exactly() -> None:
    rng = np.random.default_rng(9)
    det = IncrementalKS(rng.normal(size=300), window_size=100, resolve_ratio=0.8, resolve_after=20)
    det.update_many(rng.normal(1.0, 1.0, size=250))
    assert det.in_drift
    new_ref = rng.normal(1.0, 1.0, size=400).round(2)
    det.set_reference(new_ref)
    assert_matches_scipy(det.result(), new_ref, det.window)
    det.update_many(rng.normal(1.0, 1.0, size=300).round(2))
    assert not det.in_drift
    assert_matches_scipy(det.result(), new_ref, det.window)


def test_windowed_and_incremental_agree_at_every_evaluation() -> None:
    rng = np.random.default_rng(21)
    reference = rng.gamma(2.0, size=700).round(1)
    inc = IncrementalKS(reference, window_size=250)
    win = WindowedKS(reference, window_size=250, stride=25)
    stream = np.r_[rng.gamma(2.0, size=1000), rng.gamma(2.6, size=1000)].round(1)
    evaluations = 0
    for x in stream:
        inc.update(x)
        before = win.n_evaluations
        win.update(x)
        if win.n_evaluations > before:
            evaluations += 1
            assert inc.result() == win.result()
    assert evaluations == (stream.size - 250) // 25 + 1
    assert inc.in_drift and win.in_drift


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reference": []}, "reference must hold at least one value"),
        ({"reference": [1.0, math.nan]}, "reference must hold finite numbers"),
        ({"reference": [[1.0, 2.0]]}, "reference must be 1-D"),
        ({"reference": ["a"]}, "reference must be a 1-D array"),
        ({"window_size": 0}, "window_size must be an integer >= 1, got 0"),
        ({"window_size": 2.5}, "window_size must be an integer >= 1, got 2.5"),
        ({"duration": -1.0}, "duration must be a finite number of seconds > 0, got -1.0"),
        ({"alpha": 1.5}, r"alpha must be in \(0, 1\), got 1.5"),
        ({"resolve_ratio": 0.0}, r"resolve_ratio must be in \(0, 1\], got 0.0"),
        ({"resolve_after": 0}, "resolve_after must be an integer >= 1, got 0"),
        ({"min_window": 0}, "min_window must be an integer >= 1, got 0"),
    ],
)
def test_invalid_arguments_name_the_parameter(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"reference": [1.0, 2.0, 3.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        IncrementalKS(**args)  # type: ignore[arg-type]


def test_non_finite_observations_are_rejected_and_change_nothing() -> None:
    det = IncrementalKS([1.0, 2.0], window_size=5, min_window=1)
    det.update(1.0)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="x must be finite"):
            det.update(bad)
    with pytest.raises(ValueError, match="xs must be finite: value nan at index 1"):
        det.update_many([1.0, math.nan])
    assert det.n_seen == 1 and list(det.window) == [1.0]
    timed = IncrementalKS([1.0, 2.0], window_size=5, duration=10.0)
    with pytest.raises(ValueError, match=r"t \(event time in seconds\) is required"):
        timed.update(1.0)


@pytest.mark.parametrize("duration", [None, 3.0])
def test_sorted_window_slots_follow_the_ring(duration: float | None) -> None:
    # the window keeps its slots in ascending order (and in ring order), no count per slot:
    # after every update, a window slide, an expiry or a new reference they are the sorted
    # slots of the window's values, and the exact gap read from them is scipy's statistic
    rng = np.random.default_rng(5)
    det = IncrementalKS(
        rng.integers(0, 6, size=300).astype(float), window_size=40, duration=duration, alpha=1e-3
    )
    xs = rng.integers(-1, 8, size=600) + rng.choice([0.0, 0.5], size=600)
    ts = np.cumsum(rng.exponential(0.1, size=600))
    for i, x in enumerate(xs.tolist()):
        det.update(x, float(ts[i]) if duration else None)
        if i == 300:
            det.set_reference(rng.integers(0, 9, size=200).astype(float))
        window = det.window
        assert det._sorted.tolist() == sorted(det._slots_of(window).tolist())
        assert det._window.tags().tolist() == det._slots_of(window).tolist()
        expected = stats.ks_2samp(det.reference, window).statistic
        assert det.statistic == pytest.approx(expected, abs=1e-12)
