"""The compiled update against scipy and the alarm rule recomputed naively, event by event."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors import DRIFT_RESOLVED, DRIFT_STARTED, IncrementalKS
from detectors.kernels import boundary_uniform
from detectors.ks_bank import KSBank


def _scipy_gap(reference: np.ndarray, window: np.ndarray) -> int:
    """``D * n * m`` of scipy's statistic, as the integer it is."""
    d = stats.ks_2samp(reference, window).statistic
    return round(d * reference.size * window.size)


def _naive_transitions(
    det: IncrementalKS, reference: np.ndarray, stream: np.ndarray
) -> list[tuple[str, int]]:
    """The documented rule, with scipy's statistic after every event and no skipping.

    Alarm: the gap reaches ``gap_high`` (or, at ``gap_mixed <= G < gap_high``, the boundary
    draw of ``(index, seed)`` is below ``mix``); resolve: a tally, +1 below ``gap_low`` and -1
    (not below 0) otherwise, reaches ``resolve_after``.
    """
    cal = det.calibration
    n, m = reference.size, det.window_size
    # the resolve level of the alpha rule: a fraction of the gap where p first drops below alpha
    high = round(det.alarm_threshold() * n * m)
    out: list[tuple[str, int]] = []
    in_drift, below = False, 0
    for i in range(m, stream.size + 1):
        window = stream[i - m : i]
        g = _scipy_gap(reference, window)
        if cal is None:
            alarm = stats.ks_2samp(reference, window).pvalue < det._alpha
            low = math.ceil(det.resolve_ratio * high)
        else:
            draw = boundary_uniform(i, det.seed)
            mixed_fire = cal.mix > 0 and g >= cal.gap_mixed and draw < cal.mix
            alarm = g >= cal.gap_high or mixed_fire
            low = cal.gap_low
        if not in_drift:
            if alarm:
                in_drift, below = True, 0
                out.append((DRIFT_STARTED, i))
            continue
        below = below + 1 if g < low else max(below - 1, 0)
        if below >= (det.resolve_after or m):
            in_drift, below = False, 0
            out.append((DRIFT_RESOLVED, i))
    return out


def _transitions(det: IncrementalKS, stream: np.ndarray, chunk: int) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for k in range(0, stream.size, chunk):
        if chunk == 1:
            det.update(float(stream[k]))
        else:
            det.update_many(stream[k : k + chunk])
        seen += [(t.kind, t.index) for t in det.transitions]
    return seen


@pytest.mark.parametrize("chunk", [1, 37, 1000])
def test_calibrated_transitions_equal_the_naive_rule(chunk: int) -> None:
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 12, size=300).astype(float)  # tied: a randomised boundary
    stream = np.r_[
        rng.integers(0, 12, size=1500), rng.integers(1, 13, size=500), rng.integers(0, 12, size=800)
    ].astype(float)
    det = IncrementalKS(reference, window_size=60, ert=2_000, resolve_after=40)
    cal = det.calibration
    assert cal is not None and cal.mix > 0
    got = _transitions(det, stream, chunk)
    expected = _naive_transitions(det, reference, stream)
    assert got == expected
    assert len(expected) >= 2 and expected[0][0] == DRIFT_STARTED
    assert det.gap == _scipy_gap(reference, stream[-60:])
    assert det.statistic == stats.ks_2samp(reference, stream[-60:]).statistic


@pytest.mark.parametrize("chunk", [1, 250])
def test_alpha_transitions_equal_the_naive_rule(chunk: int) -> None:
    rng = np.random.default_rng(4)
    reference = rng.normal(size=400).round(1)
    stream = np.r_[rng.normal(size=900), rng.normal(0.6, 1.0, size=400), rng.normal(size=900)]
    stream = stream.round(1)
    det = IncrementalKS(reference, window_size=80, alpha=0.01, resolve_after=30)
    got = _transitions(det, stream, chunk)
    assert got == _naive_transitions(det, reference, stream)
    assert [k for k, _ in got[:2]] == [DRIFT_STARTED, DRIFT_RESOLVED]


def test_cached_reads_equal_scipy_without_a_full_evaluation() -> None:
    rng = np.random.default_rng(8)
    reference = rng.poisson(5, size=500).astype(float)
    det = IncrementalKS(reference, window_size=120)
    for k in range(0, 1200, 50):
        det.update_many(rng.poisson(5 + (k > 600), size=50).astype(float))
        window = det.window
        assert det._result is None  # nothing evaluated the full result yet
        assert det.gap == _scipy_gap(reference, window)
        assert det.statistic == stats.ks_2samp(reference, window).statistic
        assert det._result is None
        assert det.p_value == stats.ks_2samp(reference, window).pvalue  # on demand


def test_bank_equals_separate_detectors() -> None:
    rng = np.random.default_rng(12)
    refs = [rng.integers(0, 8, size=200).astype(float), rng.normal(size=300).round(2)]
    refs.append(rng.exponential(size=250).round(1))
    solo = [IncrementalKS(r, window_size=50, alpha=0.01, resolve_after=20) for r in refs]
    banked = [IncrementalKS(r, window_size=50, alpha=0.01, resolve_after=20) for r in refs]
    bank = KSBank(banked)
    seen_solo: list[list[tuple[str, int]]] = [[] for _ in refs]
    seen_bank: list[list[tuple[str, int]]] = [[] for _ in refs]
    for batch in range(30):
        shift = 1.0 if 10 <= batch < 18 else 0.0
        ids = rng.integers(0, len(refs), size=90)
        xs = np.array([refs[j][rng.integers(0, refs[j].size)] + shift for j in ids])
        for j, det in enumerate(solo):
            det.update_many(xs[ids == j])
            seen_solo[j] += [(t.kind, t.index) for t in det.transitions]
        order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=len(refs))
        transitions = bank.update(xs[order], counts)
        for j in range(len(refs)):
            seen_bank[j] += [(t.kind, t.index) for t in transitions[j]]
    assert seen_bank == seen_solo
    assert any(seen_solo)
    for one, two in zip(solo, banked, strict=True):
        assert np.array_equal(one.window, two.window)
        assert one.n_seen == two.n_seen and one.in_drift == two.in_drift
        assert one.result() == two.result()


def test_bank_follows_direct_updates_new_references_and_calibrations() -> None:
    rng = np.random.default_rng(13)
    refs = [rng.integers(0, 6, size=200).astype(float), rng.normal(size=250).round(1)]
    solo = [IncrementalKS(r, window_size=40, ert=2_000, resolve_after=20) for r in refs]
    banked = [IncrementalKS(r, window_size=40, ert=2_000, resolve_after=20) for r in refs]
    bank = KSBank(banked)  # calibrations still running: installed during the first tests
    seen_solo: list[tuple[int, str, int]] = []
    seen_bank: list[tuple[int, str, int]] = []
    for batch in range(40):
        shift = 1.0 if 15 <= batch < 25 else 0.0
        parts = [refs[j][rng.integers(0, refs[j].size, size=25)] + shift for j in range(2)]
        if batch == 30:  # a re-baseline of stream 1 between batches
            new_ref = rng.normal(size=260).round(1)
            solo[1].set_reference(new_ref)
            banked[1].set_reference(new_ref)
        if batch % 7 == 3:  # stream 0 updated on its own, outside the bank
            for j, det in ((0, solo[0]), (0, banked[0])):
                det.update_many(parts[j][:5])
                seen = seen_solo if det is solo[0] else seen_bank
                seen += [(j, t.kind, t.index) for t in det.transitions]
            parts[0] = parts[0][5:]
        for j, det in enumerate(solo):
            det.update_many(parts[j])
            seen_solo.extend((j, t.kind, t.index) for t in det.transitions)
        out = bank.update(np.concatenate(parts), [parts[0].size, parts[1].size])
        for j, ts in enumerate(out):
            seen_bank.extend((j, t.kind, t.index) for t in ts)
        assert [d.gap for d in banked] == [d.gap for d in solo]
    assert seen_bank == seen_solo
    assert any(kind == DRIFT_STARTED for _, kind, _ in seen_solo)
    for one, two in zip(solo, banked, strict=True):
        assert one.result() == two.result() and one.in_drift == two.in_drift
        assert np.array_equal(one.window, two.window)
        a, b = one.calibration, two.calibration
        assert a is not None and b is not None
        assert (a.gap_high, a.gap_low, a.gap_mixed, a.mix) == (
            b.gap_high,
            b.gap_low,
            b.gap_mixed,
            b.mix,
        )


def test_bank_rejects_bad_batches_and_changes_nothing() -> None:
    dets = [IncrementalKS([1.0, 2.0, 3.0], window_size=5, min_window=1) for _ in range(2)]
    bank = KSBank(dets)
    with pytest.raises(ValueError, match="counts must give 2 non-negative sizes summing to 3"):
        bank.update([1.0, 2.0, 3.0], [1, 1])
    with pytest.raises(ValueError, match="xs must be finite: value nan at index 1"):
        bank.update([1.0, math.nan], [1, 1])
    assert [d.n_seen for d in dets] == [0, 0]
    with pytest.raises(ValueError, match="a bank takes count windows"):
        KSBank([IncrementalKS([1.0, 2.0], window_size=5, duration=1.0)])
