"""Calibration is checked where it matters: false alarms measured on null streams.

The tolerances are statistical: about 640 false alarms are expected in each check, so the
pooled rate lands within +-25 % of the target unless the calibration is off (the naive per-test
rule on the same streams is several times over).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from detectors import DRIFT_STARTED, IncrementalKS
from detectors.calibration import NullModel, calibrate_gap, guarantee_order, simulate
from detectors.kernels import boundary_uniform, count_starts
from detectors.null_rate import count_false_starts
from detectors.registry import detector_from_state, detector_state

ERT = 500.0
WINDOW = 30
REFERENCE = 600
EVENTS = 40_000
SEEDS = range(8)
# short episodes, so that many false alarms fit in a fast test
EPISODES = {"resolve_ratio": 0.9, "resolve_after": 5, "guarantee": None}

Generator = Callable[[np.random.Generator, int], np.ndarray]


def normal(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.normal(size=size)


def retries(rng: np.random.Generator, size: int) -> np.ndarray:
    # zero-inflated retry counts: ~85 % zeros, ties everywhere
    return ((rng.random(size) < 0.15) * (1 + rng.poisson(0.5, size))).astype(float)


def tokens(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.poisson(12, size).astype(float)


def false_alarm_ratio(make: Callable[[np.ndarray], IncrementalKS], gen: Generator) -> float:
    """Pooled false starts per event over null streams, divided by the target 1 / ERT."""
    starts = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        det = make(gen(rng, REFERENCE))
        stream = gen(rng, EVENTS)
        for i in range(0, EVENTS, 500):
            det.update_many(stream[i : i + 500])
            starts += sum(t.kind == DRIFT_STARTED for t in det.transitions)
    return starts / (len(SEEDS) * EVENTS) * ERT


def mean_ratio_over_references(
    make: Callable[[np.ndarray], IncrementalKS], gen: Generator, refs: int = 40
) -> float:
    """Mean over references of the false-alarm ratio, counted by the compiled rule (equal to
    the detector's own starts, see test_kernels.py) on 2,000,000 null observations each."""
    ratios = []
    for seed in range(refs):
        rng = np.random.default_rng([21, seed])
        det = make(gen(rng, REFERENCE))
        rows, steps = 200, 10_000
        starts = count_false_starts(det, gen(rng, rows * steps).reshape(rows, steps))
        ratios.append(starts / (rows * (steps - WINDOW + 1)) * ERT)
    return float(np.mean(ratios))


@pytest.mark.parametrize("gen", [normal, retries, tokens], ids=["continuous", "retries", "tokens"])
def test_false_alarm_rate_matches_the_ert(gen: Generator) -> None:
    """Mean over 40 references within +-30 % (heavily tied references spread 0.3x-3.6x each)."""
    make = lambda ref: IncrementalKS(ref, WINDOW, ert=ERT, **EPISODES)  # noqa: E731
    ratio = mean_ratio_over_references(make, gen)
    assert 0.7 <= ratio <= 1.3, ratio


def test_the_detector_itself_alarms_at_the_ert() -> None:
    ratio = false_alarm_ratio(lambda ref: IncrementalKS(ref, WINDOW, ert=ERT, **EPISODES), tokens)
    assert 0.75 <= ratio <= 1.25, ratio


@pytest.mark.parametrize("gen", [normal, retries], ids=["continuous", "retries"])
def test_false_alarm_rate_matches_the_ert_at_the_default_hysteresis(gen: Generator) -> None:
    """resolve_ratio 0.6, resolve_after = window: episodes last a few windows, a large share of
    a null stream at this short ERT, so the calibration must simulate them faithfully. Mean
    over 40 references within +-30 % (8 references pooled sat at 1.25 on average over
    simulation seeds: those references' own sampling, not the rule; 48 gave 1.06-1.08)."""
    make = lambda ref: IncrementalKS(ref, WINDOW, ert=ERT, guarantee=None)  # noqa: E731
    ratio = mean_ratio_over_references(make, gen)
    assert 0.7 <= ratio <= 1.3, ratio


def test_the_naive_per_test_rule_cries_wolf_on_the_same_streams() -> None:
    def naive(ref: np.ndarray) -> IncrementalKS:
        # p < 0.05 after every event; every fresh crossing counts (no episode hysteresis)
        return IncrementalKS(ref, WINDOW, alpha=0.05, resolve_ratio=1.0, resolve_after=1)

    ratio = false_alarm_ratio(naive, normal)
    assert ratio > 3.0, ratio


def test_ties_change_the_threshold() -> None:
    rng = np.random.default_rng(0)
    _, counts = np.unique(retries(rng, REFERENCE), return_counts=True)
    discrete = calibrate_gap(counts, WINDOW, ERT, **EPISODES)  # type: ignore[arg-type]
    continuous = calibrate_gap(np.ones(REFERENCE, dtype=int), WINDOW, ERT, **EPISODES)  # type: ignore[arg-type]
    assert discrete.model == "discrete" and continuous.model == "continuous"
    # with a few atoms the KS statistic is stochastically smaller: its threshold is lower
    assert discrete.gap_high < continuous.gap_high
    assert 0.5 / ERT < discrete.simulated_rate < 1.5 / ERT


def test_continuous_calibrations_are_shared_and_cached() -> None:
    first = calibrate_gap(np.ones(250, dtype=int), 25, 400.0)
    again = calibrate_gap(np.ones(250, dtype=int), 25, 400.0)
    assert again is first


def test_calibration_survives_a_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    det = IncrementalKS(tokens(rng, REFERENCE), WINDOW, ert=ERT, **EPISODES)  # type: ignore[arg-type]
    clone = detector_from_state(detector_state(det))
    assert clone.calibration == det.calibration
    stream = tokens(rng, 5000)
    det.update_many(stream)
    clone.update_many(stream)
    assert det.transitions == clone.transitions


def test_taking_the_state_does_not_wait_for_a_background_calibration() -> None:
    import threading

    from detectors import background

    rng = np.random.default_rng(2)
    gate = threading.Event()
    blockers = [background.submit(gate.wait) for _ in range(2)]  # occupy both threads
    try:
        det = IncrementalKS(
            tokens(rng, REFERENCE), WINDOW, ert=ERT, wait_for_calibration=False, **EPISODES
        )  # type: ignore[arg-type]
        assert not det.calibration_ready
        clone = detector_from_state(
            detector_state(det)
        )  # returns although the calibration is queued
        queued = IncrementalKS(
            tokens(rng, REFERENCE), WINDOW, ert=ERT, wait_for_calibration=False, **EPISODES
        )  # type: ignore[arg-type]
        queued.close()  # a dropped stream's queued calibration is cancelled
        assert queued.calibration_ready and queued.calibration is None
    finally:
        gate.set()
        for b in blockers:
            b.result()
    # the copy calibrated again, with the same seed: same thresholds, same decisions
    assert clone.calibration is not None and det.calibration is not None
    assert replace(clone.calibration, seconds=0.0) == replace(det.calibration, seconds=0.0)
    stream = tokens(rng, 5000)
    det.update_many(stream)
    clone.update_many(stream)
    assert det.transitions == clone.transitions


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ert": 0.5}, "ert must be a finite number of observations > 1"),
        ({"ert": 100.0, "alpha": 0.01}, "give alpha or ert, not both"),
        ({"ert": 100.0, "duration": 60.0}, "ert calibration needs a count window"),
        ({"ert": 100.0, "min_window": 5}, "ert calibration needs a count window"),
    ],
)
def test_invalid_ert_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IncrementalKS([1.0, 2.0, 3.0], 10, **kwargs)  # type: ignore[arg-type]


def test_calibrate_gap_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="atom_counts"):
        calibrate_gap([], 10, 100.0)
    with pytest.raises(ValueError, match="ert must be"):
        calibrate_gap([1, 1], 10, float("inf"))


def _direct_starts(
    gaps: np.ndarray, high: int, low: int, after: int, mixed: int, mix: float, seed: int
) -> int:
    """The detector's episode rule, one step at a time (the oracle for the compiled count)."""
    starts = 0
    for r, row in enumerate(gaps):
        in_drift, below = False, 0
        for t, g in enumerate(row):
            if not in_drift:
                if g >= high or (g >= mixed and boundary_uniform(r * 1000 + t, seed) < mix):
                    in_drift, below, starts = True, 0, starts + 1
            else:
                below = below + 1 if g < low else max(below - 1, 0)
                if below >= after:
                    in_drift, below = False, 0
    return starts


def test_compiled_episode_count_equals_the_step_by_step_rule() -> None:
    rng = np.random.default_rng(3)
    for _ in range(25):
        gaps = rng.integers(0, 100, size=(8, 200))
        index = (1000 * np.arange(8)[:, None] + np.arange(200)[None, :]).ravel()
        bounds = np.arange(0, 8 * 200 + 1, 200)  # one run per row
        high = int(rng.integers(40, 100))
        low = int(rng.integers(1, high + 1))
        after = int(rng.integers(1, 25))
        mixed, mix = int(rng.integers(0, high)), float(rng.random())
        flat = gaps.ravel()
        assert count_starts(flat, index, bounds, high, low, high, 0.0, after, 5) == (
            _direct_starts(gaps, high, low, after, high, 0.0, 5)
        )
        assert count_starts(flat, index, bounds, high, low, mixed, mix, after, 5) == (
            _direct_starts(gaps, high, low, after, mixed, mix, 5)
        )


def test_long_erts_are_extrapolated_and_ordered() -> None:
    """Thresholds keep rising with the ERT beyond what is simulated (no flat clamp); a
    few-valued reference is searched directly up to 10^6 (its longer simulation budget)."""
    counts = np.array([300, 200, 100])
    cals = [calibrate_gap(counts, WINDOW, e, **EPISODES) for e in (2e3, 1e5, 1e6, 1e7)]  # type: ignore[arg-type]
    assert [c.extrapolated for c in cals] == [False, False, False, True]
    assert cals[2].observations >= 100 * 1e6 > cals[1].observations
    floors = [c.gap_high - (1 - c.mix) * (c.gap_high - c.gap_mixed) for c in cals]
    assert floors == sorted(floors) and len(set(floors)) == 4, floors
    assert cals[-1].gap_high <= 600 * WINDOW


def test_windowed_ks_calibrated_to_the_ert_of_its_schedule() -> None:
    from detectors import WindowedKS

    def make(ref: np.ndarray) -> IncrementalKS:
        return WindowedKS(ref, WINDOW, stride=3, ert=ERT, **EPISODES)  # type: ignore[return-value]

    ratio = false_alarm_ratio(make, normal)
    assert 0.75 <= ratio <= 1.25, ratio


def test_randomised_boundary_brings_a_two_valued_feature_to_its_ert() -> None:
    """Bernoulli(0.03), reference 2,000, W 100, ERT 1,000: the KS gap of a two-valued feature
    jumps between few values, so the rate hits the target only with the randomised boundary
    (without it, measured 0.71x here; before it was applied, an ERT of 1,835 was measured)."""
    with_mix, without = [], []
    for seed in range(30):
        rng = np.random.default_rng([31, seed])
        det = IncrementalKS(
            (rng.random(2_000) < 0.03).astype(float), 100, ert=1_000, guarantee=None
        )
        xs = (rng.random(1_000_000) < 0.03).astype(float).reshape(100, 10_000)
        expected = 100 * (10_000 - 99) / 1_000
        assert det.calibration is not None and det.calibration.mix > 0
        with_mix.append(count_false_starts(det, xs) / expected)
        det._calibration = replace(det.calibration, mix=0.0)
        without.append(count_false_starts(det, xs) / expected)
    assert 0.85 <= np.mean(with_mix) <= 1.15, np.mean(with_mix)
    assert np.mean(without) < 0.8, np.mean(without)


def test_the_randomised_boundary_is_applied_by_the_detector_and_update_many_agrees() -> None:
    rng = np.random.default_rng(32)
    ref = (rng.random(2_000) < 0.03).astype(float)
    xs = (rng.random(60_000) < 0.03).astype(float)
    one = IncrementalKS(ref, 100, ert=1_000, guarantee=None)
    many = IncrementalKS(ref, 100, ert=1_000, guarantee=None)
    cal = one.calibration
    assert cal is not None and cal.mix > 0
    singles = []
    for x in xs:
        one.update(x)
        singles.extend(one.transitions)
    batched = []
    for k in range(0, xs.size, 1_000):
        many.update_many(xs[k : k + 1_000])
        batched.extend(many.transitions)
    assert singles == batched
    starts = [t for t in singles if t.kind == DRIFT_STARTED]
    # some episodes start on the randomised boundary, below gap_high
    assert any(round(t.statistic * 2_000 * 100) < cal.gap_high for t in starts)
    assert len(starts) == count_false_starts(one, xs[None, :])


def test_the_guarantee_raises_the_share_of_references_within_1_3x() -> None:
    """A sparse flag (Bernoulli(0.05), reference 600, W 30, ERT 2,000), 30 references: the
    average rule leaves 57 % of them at <= 1.3x the target (measured 0.17x-5.6x); guarantee=0.9
    brings 90 % there with the median reference at 0.39x (0.38x with the plain 0.9-quantile of
    the draws and one simulation seed for every reference). With plausible truths drawn from
    Dirichlet(counts), one count narrower than the Clopper-Pearson bounds on each side, the
    same references gave 80 % (median 0.6x)."""

    def gen(rng: np.random.Generator, size: int) -> np.ndarray:
        return (rng.random(size) < 0.05).astype(float)

    shares, medians = {}, {}
    for guarantee in (None, 0.9):
        ratios = []
        for seed in range(30):
            rng = np.random.default_rng([42, seed])
            det = IncrementalKS(gen(rng, REFERENCE), WINDOW, ert=2_000, guarantee=guarantee)
            xs = gen(rng, 40 * 10_000).reshape(40, 10_000)
            ratios.append(count_false_starts(det, xs) / (40 * (10_000 - WINDOW + 1)) * 2_000)
        shares[guarantee] = float(np.mean(np.array(ratios) <= 1.3))
        medians[guarantee] = float(np.median(ratios))
    assert shares[0.9] >= 0.85 and shares[0.9] >= shares[None] + 0.25, shares
    assert medians[0.9] >= 0.3, medians


def test_plausible_truths_of_a_tied_reference_have_clopper_pearson_marginals() -> None:
    """Under the guarantee's null model the truth's mass at or below the j-th distinct value is
    Beta(N_j, n + 1 - N_j) and below it Beta(N_{j-1} + 1, n - N_{j-1}) (N: cumulative counts):
    aggregated Dirichlet weights, checked against scipy's Clopper-Pearson bounds' Beta laws by
    their quantiles."""
    from scipy import stats

    counts = np.array([7, 1, 40, 2, 550])
    model = NullModel.of_reference(counts, continuous=False).split()
    n, total = int(counts.sum()), float(model.cell_alpha.sum())
    assert total == n + 1
    cum = np.cumsum(counts)
    for j in range(counts.size):
        at_or_below = float(model.cell_alpha[model.cell_slot <= 2 * j + 1].sum())
        below = float(model.cell_alpha[model.cell_slot <= 2 * j].sum())
        # binomtest's exact interval at 90 % two-sided has Beta quantiles of these laws
        ci = stats.binomtest(int(cum[j]), n).proportion_ci(0.9, method="exact")
        assert stats.beta(at_or_below, total - at_or_below).ppf(0.05) == pytest.approx(ci.low)
        prev = int(cum[j - 1]) if j else 0
        ci_prev = stats.binomtest(prev, n).proportion_ci(0.9, method="exact")
        assert stats.beta(below, total - below).ppf(0.95) == pytest.approx(ci_prev.high)


def test_guaranteed_thresholds_are_gaps_the_reference_can_produce() -> None:
    """A two-valued reference of n with k ones gives G = |m (n - k) - n c| (c zeros in the
    window) and 0: the guarantee's thresholds and randomised boundary are among those values."""
    n, k, m = 600, 22, 30
    cal = calibrate_gap([n - k, k], m, 2_000.0, guarantee=0.9)
    reachable = {abs(m * (n - k) - n * c) for c in range(m + 1)} | {0}
    assert cal.gap_high in reachable and cal.gap_mixed in reachable, cal


def test_the_guarantee_holds_at_the_upper_confidence_bound_of_a_flag() -> None:
    """The guarantee's meaning on one reference (a flag, 400 ones in 5,000, W 50, ERT 1,000):
    if the truth is the one-sided 90 % upper confidence bound of the proportion (scipy's
    Clopper-Pearson), the detector's rate with the guaranteed thresholds is at most 1.3x the
    target (measured 1.12x: the draws' order statistic bounds the 0.9-quantile with a margin),
    at the one-sided 95 % bound about 1.3x (measured 1.22x), and at the reference's own
    proportion below the target (0.83x). Rates counted on 2,000,000 null observations of the
    known truth (about 2,000 false alarms)."""
    from scipy import stats

    n, k, m, ert = 5_000, 400, 50, 1_000.0
    cal = calibrate_gap([n - k, k], m, ert, guarantee=0.9)
    bounds = [stats.binomtest(k, n).proportion_ci(c, method="exact").high for c in (0.8, 0.9)]
    base = NullModel.of_reference(np.array([n - k, k]), continuous=False)
    ratios = []
    for p in (k / n, *bounds):
        truth = NullModel(np.array([1 - p, p]), np.array([1, 3]), base.slot_ref, n, False)
        runs = simulate(truth, m, 2_000_000, stride=1, h_min=cal.floor, ratio=0.6,
                        resolve_after=m, seed=5)  # fmt: skip
        starts = runs.starts(cal.gap_high, cal.gap_low, cal.gap_mixed, cal.mix)
        ratios.append(starts / runs.observations * ert)
    assert ratios[0] < 1.0 and 1.0 <= ratios[1] <= 1.3 and 1.05 <= ratios[2] <= 1.6, ratios


def test_the_guarantee_order_is_the_upper_confidence_bound_of_the_quantile() -> None:
    """The k-th smallest of D independent rates covers Beta(k, D + 1 - k) of their law, so it
    bounds the p-quantile with probability P(Binomial(D, p) <= k - 1); the order is the
    smallest k with that probability at least the confidence (checked against scipy), and a
    Monte Carlo of uniform rates covers p about that often."""
    from scipy import stats

    for draws, share, confidence in [
        (64, 0.9, 0.9),
        (64, 0.9, 0.5),
        (40, 0.8, 0.95),
        (7, 0.5, 0.9),
    ]:
        k = guarantee_order(draws, share, confidence)
        assert stats.binom.cdf(k - 1, draws, share) >= confidence
        assert k == 1 or stats.binom.cdf(k - 2, draws, share) < confidence
        assert stats.beta(k, draws + 1 - k).sf(share) == pytest.approx(
            stats.binom.cdf(k - 1, draws, share)
        )
    k = guarantee_order(64, 0.9)
    rates = np.sort(np.random.default_rng(9).random((20_000, 64)), axis=1)
    covered = float(np.mean(rates[:, k - 1] >= 0.9))  # the uniform law's share below it
    assert abs(covered - stats.binom.cdf(k - 1, 64, 0.9)) < 0.01, covered
    assert guarantee_order(10, 0.9) == 10  # even the largest of 10 is not 90 % sure
    with pytest.raises(ValueError):
        guarantee_order(0, 0.9)


def test_guaranteed_calibrations_seed_each_reference_and_repeat_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two references of one configuration are simulated with different seeds (with one seed
    for all, a cell's references share one Monte Carlo error); the same reference gets the same
    seed and thresholds again, and the seed changes with the configuration too."""
    import detectors.calibration as calibration

    seeds: list[int] = []
    real = calibration.simulate

    def spy(*args: object, **kwargs: object) -> calibration.NullRuns:
        seeds.append(int(kwargs["seed"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(calibration, "simulate", spy)
    n, m, ert = 600, 30, 2_000.0
    a = calibrate_gap([n - 30, 30], m, ert, guarantee=0.9)
    seeds_a = seeds[:]
    seeds.clear()
    b = calibrate_gap([n - 31, 31], m, ert, guarantee=0.9)
    seeds_b = seeds[:]
    seeds.clear()
    again = calibrate_gap([n - 30, 30], m, ert, guarantee=0.9)
    assert len(seeds_a) == 2 and set(seeds_a).isdisjoint(seeds_b)  # pilot and main runs
    assert seeds == seeds_a
    assert replace(again, seconds=0.0) == replace(a, seconds=0.0)
    assert a != b
    counts = np.array([n - 30, 30])
    config = (m, ert, 0.6, m, 1, 0.9)
    assert seeds_a[1] == calibration.simulation_seed(0, counts, config)
    assert calibration.simulation_seed(1, counts, config) != seeds_a[1]
    assert calibration.simulation_seed(0, counts, (m, 3_000.0, 0.6, m, 1, 0.9)) != seeds_a[1]
    # the average rule too: its mean over references would otherwise keep one Monte Carlo error
    seeds.clear()
    calibrate_gap([n - 30, 30], m, ert)
    calibrate_gap([n - 31, 31], m, ert)
    assert len(seeds) == 4 and len(set(seeds)) == 4
    assert seeds[1] == calibration.simulation_seed(0, counts, (m, ert, 0.6, m, 1, None))


def test_a_guaranteed_detector_restores_to_the_same_thresholds() -> None:
    rng = np.random.default_rng(11)
    ref = (rng.random(REFERENCE) < 0.05).astype(float)
    det = IncrementalKS(ref, WINDOW, ert=2_000, guarantee=0.9)
    clone = detector_from_state(detector_state(det))
    assert det.calibration is not None and clone.calibration is not None
    assert replace(clone.calibration, seconds=0.0) == replace(det.calibration, seconds=0.0)


def test_shared_guaranteed_calibrations_are_keyed_by_the_signature() -> None:
    """With ``share=True`` the seed is hashed from the signature's canonical counts, so two
    references of one signature get the one cached calibration, and another signature its own."""
    from detectors.signature import tie_signature

    short = {"resolve_ratio": 0.9, "resolve_after": 5}
    rng = np.random.default_rng(0)  # two references of one signature (as in its doctest)
    a, b = (np.unique(rng.poisson(500, 1_000), return_counts=True)[1] for _ in range(2))
    assert tie_signature(a) == tie_signature(b)
    first = calibrate_gap(a, WINDOW, ERT, guarantee=0.9, share=True, **short)
    assert calibrate_gap(b, WINDOW, ERT, guarantee=0.9, share=True, **short) is first
    flag = calibrate_gap([900, 100], WINDOW, ERT, guarantee=0.9, share=True, **short)
    assert flag is not first


def test_a_pilot_level_too_high_is_lowered_until_the_target_is_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When no simulated level alarms as often as the target (an unlucky pilot put the lowest
    level too high), the calibration simulates again from lower levels instead of returning a
    threshold that alarms a fraction of the target (measured on a real reference: 0.19x)."""
    import detectors.calibration as calibration

    real = calibration._lowest_level
    boosts: list[float] = []

    def unlucky(*args: object, boost: float = 1.0) -> int:
        boosts.append(boost)
        level = real(*args, boost=boost)  # type: ignore[arg-type]
        return too_high if boost == 1.0 else level  # above the threshold the target needs

    counts = [30] * 20 + [1] * 400  # many-valued, tied: a lattice of gaps
    ert = 2_000.0
    fine = calibrate_gap(counts, 30, ert)
    too_high = fine.gap_high * 11 // 10
    monkeypatch.setattr(calibration, "_lowest_level", unlucky)
    retried = calibrate_gap(counts, 30, ert)
    assert boosts == [1.0, calibration.LEVEL_BOOST]
    for cal in (fine, retried):
        assert 0.95 < cal.simulated_rate * ert < 1.05, cal
    # without the retry: the peak of the levels simulated from the first level
    monkeypatch.setattr(calibration, "LEVEL_RETRIES", 0)
    boosts.clear()
    stuck = calibrate_gap(counts, 30, ert)
    assert boosts == [1.0] and stuck.simulated_rate * ert < 0.9 and stuck.mix == 0.0


def test_a_flat_fitted_tail_falls_back_to_every_counted_level() -> None:
    """The guarantee's rates of a token-count reference at ert 1e5 (starts of the 62nd of 64
    draws, per level): the four levels with ten or more starts are too close for their
    counting noise to fall (16, 11, 10, 10), and a line through the last two never reaches the
    target -- the threshold went to the largest gap there is (199,800: no alarm, ever). The
    line over every level with a start puts it where the counts reach the target."""
    from detectors.calibration import _tail

    starts = dict(
        zip(
            range(31_800, 39_400, 200),
            [16, 11, 10, 10, 9, 8, 8, 7, 7, 6, 5, 4, 4, 4, 4, 3, 2, 2, 2, 2, 2, 2, 2] + [1] * 15,
            strict=True,
        )
    )
    levels = np.array([*starts, 39_400, 40_400, 41_400], dtype=np.int64)
    resolution = 2e-6

    def rate(high: int, low: int, mixed: int, mix: float) -> float:
        return starts.get(high, 0) * resolution

    target = 6 * resolution
    attainable = np.arange(30_000, 200_001, 200, dtype=np.int64)
    high, _low, mixed, mix, fitted = _tail(rate, levels, target, 0.6, resolution, attainable)
    assert 33_000 <= mixed < high <= 34_400, (high, mixed)
    assert 0.0 < mix < 1.0 and fitted == pytest.approx(target)
