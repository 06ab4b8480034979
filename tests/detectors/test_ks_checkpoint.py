from __future__ import annotations

import pickle

import numpy as np

from detectors import IncrementalKS
from detectors.ks_bank import KSBank, checkpoint, rewind
from tests.support.plain import same_plain


def _detector(seed: int) -> IncrementalKS:
    rng = np.random.default_rng(seed)
    det = IncrementalKS(rng.normal(size=400), window_size=60, alpha=1e-3)
    det.update_many(rng.normal(size=100))
    return det


def test_a_rewound_detector_is_its_checkpoint_and_continues_like_an_untouched_copy() -> None:
    rng = np.random.default_rng(1)
    det = _detector(0)
    untouched = pickle.loads(pickle.dumps(det))
    before = det.state()
    saved = checkpoint(det)
    det.update_many(rng.normal(2.0, 1.0, size=150))  # a drift: its transitions, a new window
    assert det.transitions and det.in_drift
    det.set_reference(rng.normal(size=50))  # new buffers of another size
    rewind(det, saved)
    assert same_plain(det.state(), before)
    assert det.transitions == untouched.transitions
    # the same checkpoint serves twice; both continue exactly as the copy never touched
    det.update_many(rng.normal(size=30))
    rewind(det, saved)
    seen = []
    for x in rng.normal(1.5, 1.0, size=300):
        det.update(float(x))
        untouched.update(float(x))
        assert det.transitions == untouched.transitions
        seen += det.transitions
    assert seen  # the continuation drifts: the rewound detector alarms where the copy does
    assert same_plain(det.state(), untouched.state())


def test_a_rewound_detector_in_a_bank_is_repacked_and_updates_exactly() -> None:
    rng = np.random.default_rng(2)
    dets = [_detector(s) for s in range(3)]
    alone = [pickle.loads(pickle.dumps(d)) for d in dets]
    bank = KSBank(dets)
    saved = checkpoint(dets[1])
    first = rng.normal(size=30)
    bank.update(first, [10, 10, 10])
    rewind(dets[1], saved)
    # streams 0 and 2 took the first batch; stream 1 was rewound to before it
    alone[0].update_many(first[:10])
    alone[2].update_many(first[20:])
    xs = rng.normal(3.0, 1.0, size=300)
    got = bank.update(xs, [100, 100, 100])
    for j, d in enumerate(alone):
        d.update_many(xs[100 * j : 100 * (j + 1)])
        assert got[j] == d.transitions
        assert same_plain(dets[j].state(), d.state())
    assert all(got)
