"""Rolling macro precision, recall and F1 against river's ``utils.Rolling`` metrics."""

from __future__ import annotations

import numpy as np
import pytest
from river import metrics, utils

from detectors.classification import RollingClassification

WINDOW = 50


def _stream(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Labels from a drifting set of classes, so classes enter and leave the window."""
    rng = np.random.default_rng(seed)
    y_true, y_pred = [], []
    for i in range(n):
        classes = [f"c{j}" for j in range(i // 100, i // 100 + 4)]
        t = str(rng.choice(classes))
        p = t if rng.random() < 0.7 else str(rng.choice([*classes, "other"]))
        y_true.append(t)
        y_pred.append(p)
    return y_true, y_pred


def _oracles() -> tuple[utils.Rolling, utils.Rolling, utils.Rolling]:
    return (
        utils.Rolling(metrics.MacroPrecision, window_size=WINDOW),
        utils.Rolling(metrics.MacroRecall, window_size=WINDOW),
        utils.Rolling(metrics.MacroF1, window_size=WINDOW),
    )


def test_equals_river_at_every_step() -> None:
    y_true, y_pred = _stream(600, seed=7)
    ours = RollingClassification(WINDOW)
    p, r, f = _oracles()
    for t, y in zip(y_true, y_pred, strict=True):
        ours.update(t, y)
        for m in (p, r, f):
            m.update(t, y)
        got = ours.scores()
        assert got.precision == pytest.approx(p.get(), abs=1e-12)
        assert got.recall == pytest.approx(r.get(), abs=1e-12)
        assert got.f1 == pytest.approx(f.get(), abs=1e-12)


@pytest.mark.parametrize("chunk", [1, 7, 50, 51, 173])
def test_batches_equal_single_updates_and_river(chunk: int) -> None:
    y_true, y_pred = _stream(600, seed=11)
    ours = RollingClassification(WINDOW)
    p, r, f = _oracles()
    for start in range(0, 600, chunk):
        ours.update_many(y_true[start : start + chunk], y_pred[start : start + chunk])
        for t, y in zip(y_true[start : start + chunk], y_pred[start : start + chunk], strict=True):
            for m in (p, r, f):
                m.update(t, y)
        got = ours.scores()
        assert got == pytest.approx((p.get(), r.get(), f.get()), abs=1e-12)
    assert ours.n_seen == 600


def test_the_code_book_stays_bounded_by_the_window() -> None:
    ours = RollingClassification(10)
    for i in range(1000):
        ours.update(f"t{i}", f"p{i}")  # every label new
    assert len(ours.state()["labels"]) <= 20
    assert ours.scores() == (0.0, 0.0, 0.0)


def test_state_round_trips_and_continues_identically() -> None:
    y_true, y_pred = _stream(600, seed=3)
    a = RollingClassification(WINDOW)
    a.update_many(y_true[:333], y_pred[:333])
    b = RollingClassification.from_state(a.state())
    a.update_many(y_true[333:], y_pred[333:])
    b.update_many(y_true[333:], y_pred[333:])
    assert a.scores() == b.scores() and a.n_seen == b.n_seen == 600
    fresh = RollingClassification.from_state(RollingClassification(WINDOW).state())
    assert fresh.n_seen == 0 and all(np.isnan(fresh.scores()))


def test_bad_state_and_arguments_are_refused() -> None:
    good = RollingClassification(4)
    good.update_many(["a", "b"], ["a", "a"])
    state = good.state()
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        RollingClassification(0)
    with pytest.raises(ValueError, match="y_pred has 1"):
        good.update_many(["a", "b"], ["a"])
    bad = dict(state, true=np.array([0, 5, -1, -1], dtype=np.int64))
    with pytest.raises(ValueError, match="integer codes"):
        RollingClassification.from_state(bad)
    for ring in (np.array([0.0, 1.0]), np.array([0, 1, -1], dtype=np.int8), [0, 1]):
        with pytest.raises(ValueError, match="2 or 4 integer codes"):
            RollingClassification.from_state(dict(state, true=ring))
    bad = dict(state, seen=3)  # three pairs claimed, two held
    with pytest.raises(ValueError, match="true must be 3 or 4 integer codes"):
        RollingClassification.from_state(bad)
    padded = {n: np.concatenate([state[n], [-1, -1]]).astype(np.int64) for n in ("true", "pred")}
    with pytest.raises(ValueError, match="last 3 pairs"):
        RollingClassification.from_state(dict(bad, **padded))
    with pytest.raises(ValueError, match="must hold"):
        RollingClassification.from_state({"window": 4})


@pytest.mark.parametrize(("window", "n_classes"), [(200, 300), (20_000, 40_000)])
def test_many_classes_widen_the_rings_and_equal_river(window: int, n_classes: int) -> None:
    # the rings start as int8 and widen (int16, then int32) as codes past 127 / 32,767 arrive
    rng = np.random.default_rng(5)
    y_true = [f"c{i}" for i in rng.permutation(n_classes)]
    y_pred = [t if rng.random() < 0.5 else f"c{rng.integers(n_classes)}" for t in y_true]
    ours = RollingClassification(window)
    assert ours._rings.dtype == np.int8
    oracles = [utils.Rolling(m, window_size=window) for m in _rivers()]
    half = n_classes // 2
    ours.update_many(y_true[:half], y_pred[:half])
    restored = RollingClassification.from_state(ours.state())
    for start in range(half, n_classes, 97):
        ours.update_many(y_true[start : start + 97], y_pred[start : start + 97])
        restored.update_many(y_true[start : start + 97], y_pred[start : start + 97])
    for t, y in zip(y_true, y_pred, strict=True):
        for m in oracles:
            m.update(t, y)
    wide = np.int16 if window < 16_000 else np.int32
    assert ours._rings.dtype == restored._rings.dtype == wide
    assert ours.scores() == pytest.approx([m.get() for m in oracles], abs=1e-12)
    assert restored.scores() == ours.scores()
    assert ours.state()["true"].dtype == wide


def test_state_holds_the_filled_part_in_the_rings_dtype_and_reads_the_wide_form() -> None:
    y_true, y_pred = _stream(600, seed=7)
    for n in (0, 1, WINDOW - 1, WINDOW, WINDOW + 37):
        ours = RollingClassification(WINDOW)
        ours.update_many(y_true[:n], y_pred[:n])
        state = ours.state()
        filled = min(n, WINDOW)
        assert state["true"].shape == state["pred"].shape == (filled,)
        assert state["true"].dtype == state["pred"].dtype == np.int8
        # the form of earlier versions: whole rings of int64 codes, -1 where empty
        wide = {
            name: np.concatenate([state[name], np.full(WINDOW - filled, -1)]).astype(np.int64)
            for name in ("true", "pred")
        }
        for data in (state, dict(state, **wide)):
            back = RollingClassification.from_state(data)
            assert back.n_seen == n and back._rings.dtype == np.int8
            assert np.array_equal(back._rings, ours._rings)
            assert back.scores() == ours.scores() or n == 0
            back.update_many(y_true[n:], y_pred[n:])
            twin = ours.copy()
            twin.update_many(y_true[n:], y_pred[n:])
            assert back.scores() == twin.scores()


def _rivers() -> tuple[type, type, type]:
    return metrics.MacroPrecision, metrics.MacroRecall, metrics.MacroF1


def _coded_by_arrival(book: dict[str, int], labels: list[str]) -> tuple[list[int], dict[str, int]]:
    """Oracle of the code book: a label's code is the number of labels seen before it."""
    book = dict(book)
    return [book.setdefault(y, len(book)) for y in labels], book


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_encoding_codes_labels_in_order_of_arrival(seed: int) -> None:
    # random chunk sizes (1 included), new labels anywhere in a chunk, and in both rows: the
    # codes in the rings and the code book are those of coding the labels one by one in
    # arrival order (true label before predicted label of a chunk); no compaction here
    rng = np.random.default_rng(seed)
    ours = RollingClassification(10_000)
    book: dict[str, int] = {}
    n = 0
    while n < 3_000:
        size = int(rng.choice([1, 2, 3, 17, 64]))
        pool = 5 + n // 100  # classes keep arriving
        y_true = [f"l{rng.integers(pool)}" for _ in range(size)]
        y_pred = [f"l{rng.integers(pool + 3)}" for _ in range(size)]
        want_t, book = _coded_by_arrival(book, y_true)
        want_p, book = _coded_by_arrival(book, y_pred)
        ours.update_many(y_true, y_pred)
        state = ours.state()
        at = (n + np.arange(size)) % 10_000
        assert state["true"][at].tolist() == want_t
        assert state["pred"][at].tolist() == want_p
        assert state["labels"] == list(book)
        n += size
    assert ours.n_seen == n


def test_a_copy_is_independent_and_continues_identically() -> None:
    y_true, y_pred = _stream(600, seed=13)
    a = RollingClassification(WINDOW)
    a.update_many(y_true[:250], y_pred[:250])
    before = a.state()
    b, c = a.copy(), RollingClassification.from_state(before)
    for lo, hi in ((250, 400), (400, 600)):  # new classes arrive, old ones are compacted away
        b.update_many(y_true[lo:hi], y_pred[lo:hi])
        c.update_many(y_true[lo:hi], y_pred[lo:hi])
        sb, sc = b.state(), c.state()
        assert sb["labels"] == sc["labels"] and sb["seen"] == sc["seen"] == hi
        assert np.array_equal(sb["true"], sc["true"]) and np.array_equal(sb["pred"], sc["pred"])
    after = a.state()  # the copy moved on, the original did not
    assert after["labels"] == before["labels"] and after["seen"] == 250
    assert np.array_equal(after["true"], before["true"])
    assert np.array_equal(after["pred"], before["pred"])
    a.update_many(y_true[250:], y_pred[250:])
    p, r, f = _oracles()
    for t, y in zip(y_true, y_pred, strict=True):
        for m in (p, r, f):
            m.update(t, y)
    assert a.scores() == b.scores() == pytest.approx((p.get(), r.get(), f.get()), abs=1e-12)
