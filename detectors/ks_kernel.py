"""The compiled update of :class:`~detectors.IncrementalKS`: one batch, one or many streams.

:func:`run` applies a batch of observations to one detector's packed state, in order, exactly as
one update after another would: each observation is placed in its slot by binary search, pushed
into the window ring (evicting the oldest, or the expired ones of a time window), and the alarm
rule is applied with the exact integer gap ``G = max_s |m R(s) - n C(s)|`` (see
:mod:`detectors.ks`). An exact ``O(K)`` evaluation runs only when the decision could change:
one window operation moves ``G`` by at most ``n``, so after an evaluation the gap is known to lie
within ``G +- ops * n``. The alarm rule is :func:`detectors.kernels.fires` (the randomised
boundary) and the resolve tally :func:`detectors.kernels.tally`.

The state is packed into plain arrays so that many detectors can share one call:

``ints`` (int64, :data:`N_INTS`)
    Scalars: the ring's start and size, ``n_seen``, the last exact gap ``G`` (-1: unknown), the
    window operations since it (``ops``), the resolve tally, the episode flag, a resume flag
    (the first observation is already applied; only its decision is pending), and the
    parameters: ring capacity, reference size ``n``, smallest tested window, ``resolve_after``,
    whether the detector tests, the boundary seed, the randomised boundary's lower gap and
    whether the window is timed.
``floats`` (float64, :data:`N_FLOATS`)
    The boundary's probability ``mix``, the time window's clock and its duration.
``table`` (int64, ``(capacity + 1, 2)``)
    Alarm and resolve gaps per window size; -1 where not yet computed.

:func:`run` stops after every episode change (so that the caller can record it with the full
result) and before a decision whose thresholds are not yet in ``table``; it returns how many
observations it applied and why it stopped (:data:`DONE`, :data:`STARTED`, :data:`RESOLVED`,
:data:`NEED_THRESHOLDS`). The caller resumes with the rest of the batch.

:func:`run_streams` does the same for many detectors at once, over the concatenation of their
arrays (a bank: per-stream offsets into shared buffers), stopping each stream independently; it
is the entry point for a worker that keeps the state of all the streams of one feature packed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from detectors.kernels import fires, tally

__all__ = [
    "DONE",
    "NEED_THRESHOLDS",
    "N_FLOATS",
    "N_INTS",
    "RESOLVED",
    "STARTED",
    "exact_gap",
    "run",
    "run_streams",
    "slots_of",
]

# ints layout -- mutable state
START, SIZE, N_SEEN, GAP, OPS, BELOW, IN_DRIFT, RESUME = range(8)
# ints layout -- parameters
CAP, N_REF, MIN_WINDOW, RESOLVE_AFTER, TESTABLE, SEED, MIXED, TIMED = range(8, 16)
N_INTS = 16
# floats layout
MIX, NOW, DURATION = range(3)
N_FLOATS = 3

#: Why :func:`run` stopped.
DONE, STARTED, RESOLVED, NEED_THRESHOLDS = 0, 1, 2, 3


@njit(cache=True)
def _slot(ref: npt.NDArray[np.float64], x: float) -> int:  # pragma: no cover - compiled
    """The slot of ``x``: ``2 i`` for the gap below ``ref[i]``, ``2 i + 1`` for ``{ref[i]}``."""
    lo, hi = 0, ref.shape[0]
    while lo < hi:  # bisect_left
        mid = (lo + hi) >> 1
        if ref[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    if lo < ref.shape[0] and ref[lo] == x:
        return 2 * lo + 1
    return 2 * lo


@njit(cache=True)
def slots_of(
    ref: npt.NDArray[np.float64], xs: npt.NDArray[np.float64]
) -> npt.NDArray[np.int32]:  # pragma: no cover - compiled
    """The slots of many observations (see :func:`run`)."""
    out = np.empty(xs.shape[0], dtype=np.int32)
    for i in range(xs.shape[0]):
        out[i] = _slot(ref, xs[i])
    return out


@njit(cache=True)
def exact_gap(
    ref_end: npt.NDArray[np.int64], counts: npt.NDArray[np.int32], n: int, m: int
) -> int:  # pragma: no cover - compiled
    """Exact ``max_s |m R(s) - n C(s)|`` over the slots, in one pass."""
    c = 0
    best = 0
    for s in range(counts.shape[0]):
        c += counts[s]
        g = m * ref_end[s] - n * c
        if g < 0:
            g = -g
        if g > best:
            best = g
    return best


@njit(cache=True)
def run(
    ints: npt.NDArray[np.int64],
    floats: npt.NDArray[np.float64],
    table: npt.NDArray[np.int64],
    ref: npt.NDArray[np.float64],
    ref_end: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int32],
    ring_values: npt.NDArray[np.float64],
    ring_tags: npt.NDArray[np.int32],
    ring_times: npt.NDArray[np.float64],
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64],
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Apply ``xs`` (with event times ``ts`` for a timed window) to one detector's state.

    Returns ``(applied, reason)``: the observations applied (the last one's decision included,
    except for :data:`NEED_THRESHOLDS`, where it is pending and ``ints[RESUME]`` is set) and why
    it stopped.
    """
    cap = ints[CAP]
    n = ints[N_REF]
    min_window = ints[MIN_WINDOW]
    resolve_after = ints[RESOLVE_AFTER]
    testable = ints[TESTABLE] != 0
    seed = ints[SEED]
    mixed = ints[MIXED]
    timed = ints[TIMED] != 0
    mix = floats[MIX]
    duration = floats[DURATION]
    start, size, n_seen = ints[START], ints[SIZE], ints[N_SEEN]
    G, ops, below, in_drift = ints[GAP], ints[OPS], ints[BELOW], ints[IN_DRIFT] != 0
    resume = ints[RESUME] != 0
    now = floats[NOW]
    reason = DONE
    i = 0
    b = xs.shape[0]
    while i < b:
        if resume:
            resume = False
        else:
            x = xs[i]
            slot = _slot(ref, x)
            stamp = 0.0
            if timed:
                if ts[i] > now:
                    now = ts[i]
                stamp = now
                horizon = now - duration
                while size > 0 and ring_times[start] <= horizon:
                    counts[ring_tags[start]] -= 1
                    ops += 1
                    start += 1
                    if start == cap:
                        start = 0
                    size -= 1
            if size == cap:
                pos = start
                counts[ring_tags[pos]] -= 1
                start += 1
                if start == cap:
                    start = 0
            else:
                pos = start + size
                if pos >= cap:
                    pos -= cap
                size += 1
            ring_values[pos] = x
            ring_tags[pos] = slot
            if timed:
                ring_times[pos] = stamp
            counts[slot] += 1
            ops += 1
            n_seen += 1
        i += 1
        m = size
        if m < min_window or not testable:
            G = -1
            continue
        high = table[m, 0]
        low = table[m, 1]
        if high < 0:
            i -= 1
            resume = True
            reason = NEED_THRESHOLDS
            break
        slack = ops * n
        if not in_drift:
            floor = mixed if mix > 0.0 else high
            if G < 0 or G + slack >= floor:
                G = exact_gap(ref_end, counts, n, m)
                ops = 0
                if fires(G, high, mixed, mix, n_seen, seed):
                    in_drift = True
                    below = 0
                    reason = STARTED
                    break
            continue
        if G >= 0 and G + slack < low:
            below += 1
        elif G >= 0 and G - slack >= low:
            below = below - 1 if below > 0 else 0
        else:
            G = exact_gap(ref_end, counts, n, m)
            ops = 0
            below = tally(below, G, low)
        if below >= resolve_after:
            in_drift = False
            below = 0
            reason = RESOLVED
            break
    ints[START], ints[SIZE], ints[N_SEEN] = start, size, n_seen
    ints[GAP], ints[OPS], ints[BELOW], ints[IN_DRIFT] = G, ops, below, 1 if in_drift else 0
    ints[RESUME] = 1 if resume else 0
    floats[NOW] = now
    return i, reason


@njit(cache=True)
def run_streams(
    ints: npt.NDArray[np.int64],
    floats: npt.NDArray[np.float64],
    table: npt.NDArray[np.int64],
    table_off: npt.NDArray[np.int64],
    ref: npt.NDArray[np.float64],
    ref_off: npt.NDArray[np.int64],
    slot_ref_end: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int32],
    slot_off: npt.NDArray[np.int64],
    ring_values: npt.NDArray[np.float64],
    ring_tags: npt.NDArray[np.int32],
    ring_times: npt.NDArray[np.float64],
    ring_off: npt.NDArray[np.int64],
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64],
    batch_off: npt.NDArray[np.int64],
    done: npt.NDArray[np.int64],
    reasons: npt.NDArray[np.int64],
) -> int:  # pragma: no cover - compiled
    """:func:`run` for many detectors in one call, over their concatenated arrays.

    Stream ``j`` owns ``ints[j]``, ``floats[j]``, ``table[table_off[j]:table_off[j + 1]]``,
    ``ref[ref_off[j]:ref_off[j + 1]]``, ``slot_ref_end`` and ``counts`` at
    ``slot_off[j]:slot_off[j + 1]``, the rings at ``ring_off[j]:ring_off[j + 1]``, and its
    observations ``xs[batch_off[j] + done[j]:batch_off[j + 1]]`` (grouped by stream, in order).
    ``done[j]`` is advanced by what was applied and ``reasons[j]`` set to why stream ``j``
    stopped; the streams whose reason is not :data:`DONE` need the caller (to record a
    transition or fill thresholds) and then another call. Returns how many streams stopped
    early.
    """
    stopped = 0
    for j in range(ints.shape[0]):
        lo = batch_off[j] + done[j]
        hi = batch_off[j + 1]
        if lo >= hi and ints[j, RESUME] == 0:
            reasons[j] = DONE
            continue
        r0, r1 = ring_off[j], ring_off[j + 1]
        s0, s1 = slot_off[j], slot_off[j + 1]
        applied, reason = run(
            ints[j],
            floats[j],
            table[table_off[j] : table_off[j + 1]],
            ref[ref_off[j] : ref_off[j + 1]],
            slot_ref_end[s0:s1],
            counts[s0:s1],
            ring_values[r0:r1],
            ring_tags[r0:r1],
            ring_times[r0:r1] if ints[j, TIMED] != 0 else ring_times[0:0],
            xs[lo:hi],
            ts[lo:hi] if ts.shape[0] > 0 else ts,
        )
        done[j] += applied
        reasons[j] = reason
        if reason != DONE:
            stopped += 1
    return stopped
