"""The compiled update of :class:`~detectors.IncrementalKS`: one event, a batch, or many streams.

Each observation is placed in its slot by binary search, pushed into the window ring (evicting
the oldest, or the expired ones of a time window), and the alarm rule is applied with the exact
integer gap ``G = max_s |m R(s) - n C(s)|`` (see :mod:`detectors.ks`). An exact ``O(K)``
evaluation runs only when the decision could change: one window operation moves ``G`` by at
most ``n``, so after an evaluation the gap is known to lie within ``G +- ops * n``. The alarm
rule is :func:`detectors.kernels.fires` (the randomised boundary) and the resolve tally
:func:`detectors.kernels.tally`.

A detector's whole state lives in three packed buffers that the kernels own and the detector
reads through views (:func:`layout` says where each part lies):

``ints`` (int64)
    A header of :data:`N_INTS` scalars -- the ring's start and size, ``n_seen``, the last exact
    gap ``G`` (-1: unknown), the window operations since it (``ops``), the resolve tally, the
    episode flag, a resume flag (the last observation is applied; only its decision is
    pending), and the parameters: ring capacity, reference size ``n``, smallest tested window,
    ``resolve_after``, whether the detector tests, the boundary seed, the randomised boundary's
    lower gap, whether the window is timed and the number of slots ``2K + 1`` -- then the alarm
    and resolve gaps per tested window size (``(capacity - min_window + 1, 2)``, row
    ``m - min_window`` for a window of ``m``; -1 where not yet computed).
``narrow`` (int16, or int32 when a slot or ``n`` exceeds 32,767: :func:`narrow_dtype`)
    The window's slots in ascending order (the first ``size`` of ``capacity`` entries), the
    ring's slots (``capacity``), then the reference's cumulative counts ``cum`` (``K + 1``
    entries, ``cum[0] = 0``, ``cum[i + 1]`` the reference values up to the ``i``-th distinct
    one): the reference count up to the end of slot ``s`` is ``cum[(s + 1) // 2]``. The window's
    count per slot is not kept: an exact evaluation walks the sorted slots (:func:`exact_gap`,
    ``O(m)`` whatever ``K``).
``floats`` (float64)
    A header of :data:`N_FLOATS` -- the boundary's probability ``mix``, the time window's clock
    and its duration -- then the distinct reference values, the ring's values and, for a timed
    window, the ring's event times.

An update therefore passes three arrays and the observations, and copies nothing in or out.
:func:`step` applies one observation, :func:`run` a batch. Both stop after an episode change
(so that the caller can record it with the full result) and before a decision whose thresholds
are not yet in the table (:data:`STARTED`, :data:`RESOLVED`, :data:`NEED_THRESHOLDS`; else
:data:`DONE`); :func:`run` also returns how many observations it applied, and the caller
resumes with the rest.

:func:`run_streams` does the same for many detectors at once: their buffers concatenated (a
bank, with per-stream offsets), each stream stopping independently.
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
    "Narrow",
    "exact_gap",
    "layout",
    "narrow_dtype",
    "run",
    "run_streams",
    "slots_of",
    "step",
]

# ints header -- mutable state
START, SIZE, N_SEEN, GAP, OPS, BELOW, IN_DRIFT, RESUME = range(8)
# ints header -- parameters
CAP, N_REF, MIN_WINDOW, RESOLVE_AFTER, TESTABLE, SEED, MIXED, TIMED, N_SLOTS = range(8, 17)
N_INTS = 17
# floats header
MIX, NOW, DURATION = range(3)
N_FLOATS = 3

#: Why :func:`run` or :func:`step` stopped.
DONE, STARTED, RESOLVED, NEED_THRESHOLDS = 0, 1, 2, 3

#: The narrow buffer's type (the kernels are compiled for each of its two dtypes).
Narrow = npt.NDArray[np.int16 | np.int32]


def narrow_dtype(n_slots: int, n: int) -> type[np.int16] | type[np.int32]:
    """The dtype of the narrow buffer for ``n_slots`` slots and a reference of ``n``: int16 when
    both fit (every entry is a slot or a cumulative count up to ``n``), else int32."""
    return np.int16 if max(n_slots, n) <= np.iinfo(np.int16).max else np.int32


def _layout(
    n_slots: int, cap: int, timed: bool, min_window: int
) -> tuple[int, int, int, int, int, int, int]:
    # the one definition of the buffers' layout, for Python (as is) and the kernels (compiled)
    table = N_INTS
    ints = table + 2 * (cap - min_window + 1)
    cum = 2 * cap
    narrow = cum + (n_slots + 1) // 2
    values = N_FLOATS + (n_slots - 1) // 2
    times = values + cap
    floats = times + cap if timed else times
    return table, ints, cum, narrow, values, times, floats


_layout_compiled = njit(cache=True)(_layout)


def layout(
    n_slots: int, cap: int, timed: bool, min_window: int
) -> tuple[int, int, int, int, int, int, int]:
    """Where the parts of a detector's buffers lie, for ``n_slots = 2K + 1`` slots.

    Returns ``(table, n_ints, cum, n_narrow, values, times, n_floats)``: in ``ints`` the
    threshold table spans ``[table, n_ints)``; in ``narrow`` the window's sorted slots span
    ``[0, cap)``, the ring's slots ``[cap, cum)`` and the reference's cumulative counts
    ``[cum, n_narrow)``; in ``floats`` the
    reference values span ``[N_FLOATS, values)``, the ring's values ``[values, times)`` and its
    times ``[times, n_floats)``.
    """
    return _layout(n_slots, cap, timed, min_window)


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
    """The slots of many observations (see :func:`_slot`)."""
    out = np.empty(xs.shape[0], dtype=np.int32)
    for i in range(xs.shape[0]):
        out[i] = _slot(ref, xs[i])
    return out


@njit(cache=True)
def _bisect(srt: Narrow, size: int, slot: int, right: bool) -> int:  # pragma: no cover - compiled
    """Where ``slot`` goes in the ascending ``srt[:size]``: before (``right`` false) or after
    the entries equal to it."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) >> 1
        if srt[mid] < slot or (right and srt[mid] == slot):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _insert(srt: Narrow, size: int, slot: int) -> None:  # pragma: no cover - compiled
    """Add ``slot`` to the ascending ``srt[:size]`` (which then holds ``size + 1``)."""
    j = _bisect(srt, size, slot, True)
    for k in range(size, j, -1):
        srt[k] = srt[k - 1]
    srt[j] = slot


@njit(cache=True)
def _remove(srt: Narrow, size: int, slot: int) -> None:  # pragma: no cover - compiled
    """Drop one ``slot`` (present) from the ascending ``srt[:size]``."""
    i = _bisect(srt, size, slot, False)
    for k in range(i, size - 1):
        srt[k] = srt[k + 1]


@njit(cache=True)
def _replace(srt: Narrow, size: int, old: int, new: int) -> None:  # pragma: no cover - compiled
    """Replace one ``old`` (present) by ``new`` in the ascending ``srt[:size]``: the entries
    between the two places move by one."""
    if new > old:
        i = _bisect(srt, size, old, True) - 1  # the last ``old``
        j = _bisect(srt, size, new, False)  # the first entry >= new
        for k in range(i, j - 1):
            srt[k] = srt[k + 1]
        srt[j - 1] = new
    elif new < old:
        i = _bisect(srt, size, old, False)  # the first ``old``
        j = _bisect(srt, size, new, True)  # the first entry > new
        for k in range(i, j, -1):
            srt[k] = srt[k - 1]
        srt[j] = new


@njit(cache=True)
def exact_gap(cum: Narrow, srt: Narrow, size: int, n: int) -> int:  # pragma: no cover - compiled
    """Exact ``max_s |m R(s) - n C(s)|`` for the window's ``size = m`` slots ``srt`` (ascending).

    ``R(s) = cum[(s + 1) // 2]`` (a gap slot ``2 i`` ends where the point ``2 i - 1`` before it
    does). ``C`` is constant between occupied slots and ``R`` does not decrease, so over each
    such run ``|m R - n C|`` is largest at one of its ends: the last slot before an occupied
    one and the occupied slot itself. One pass over the ``m`` sorted slots, ``O(m)``.
    """
    c = 0
    best = np.int64(0)
    k = 0
    while k < size:
        s = srt[k]
        g = size * np.int64(cum[s >> 1]) - n * c  # the slot before s: R(s - 1) = cum[s // 2]
        if g < 0:
            g = -g
        if g > best:
            best = g
        while k < size and srt[k] == s:
            c += 1
            k += 1
        g = size * np.int64(cum[(s + 1) >> 1]) - n * c
        if g < 0:
            g = -g
        if g > best:
            best = g
    return int(best)


@njit(cache=True)
def _apply(
    ints: npt.NDArray[np.int64],
    floats: npt.NDArray[np.float64],
    narrow: Narrow,
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64],
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The update loop of :func:`run` and :func:`step`: the scalars in locals, stored at the end."""
    cap = ints[CAP]
    n = ints[N_REF]
    min_window = ints[MIN_WINDOW]
    resolve_after = ints[RESOLVE_AFTER]
    testable = ints[TESTABLE] != 0
    seed = ints[SEED]
    mixed = ints[MIXED]
    timed = ints[TIMED] != 0
    n_slots = ints[N_SLOTS]
    table_at, n_ints, cum_at, n_narrow, values_at, times_at, n_floats = _layout_compiled(
        n_slots, cap, timed, min_window
    )
    table = ints[table_at:n_ints]
    srt = narrow[:cap]
    ring_tags = narrow[cap:cum_at]
    cum = narrow[cum_at:n_narrow]
    ref = floats[N_FLOATS:values_at]
    ring_values = floats[values_at:times_at]
    ring_times = floats[times_at:n_floats]
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
                    _remove(srt, size, ring_tags[start])
                    ops += 1
                    start += 1
                    if start == cap:
                        start = 0
                    size -= 1
            if size == cap:
                pos = start
                _replace(srt, size, ring_tags[pos], slot)
                start += 1
                if start == cap:
                    start = 0
            else:
                pos = start + size
                if pos >= cap:
                    pos -= cap
                _insert(srt, size, slot)
                size += 1
            ring_values[pos] = x
            ring_tags[pos] = slot
            if timed:
                ring_times[pos] = stamp
            ops += 1
            n_seen += 1
        i += 1
        m = size
        if m < min_window or not testable:
            G = -1
            continue
        row = 2 * (m - min_window)
        high = table[row]
        low = table[row + 1]
        if high < 0:
            i -= 1
            resume = True
            reason = NEED_THRESHOLDS
            break
        slack = ops * n
        if not in_drift:
            floor = mixed if mix > 0.0 else high
            if G < 0 or G + slack >= floor:
                G = exact_gap(cum, srt, size, n)
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
            G = exact_gap(cum, srt, size, n)
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
def step(
    ints: npt.NDArray[np.int64],
    narrow: Narrow,
    floats: npt.NDArray[np.float64],
    x: float,
    t: float,
) -> int:  # pragma: no cover - compiled
    """Apply one observation ``x`` (event time ``t``; ignored by a count window).

    Returns why it stopped. After :data:`NEED_THRESHOLDS` the observation is applied and its
    decision pending (``ints[RESUME]`` set): the next call decides it and ignores ``x``.
    """
    xs = np.empty(1, dtype=np.float64)
    xs[0] = x
    ts = np.empty(1 if ints[TIMED] != 0 else 0, dtype=np.float64)
    if ts.shape[0]:
        ts[0] = t
    return _apply(ints, floats, narrow, xs, ts)[1]


@njit(cache=True)
def run(
    ints: npt.NDArray[np.int64],
    narrow: Narrow,
    floats: npt.NDArray[np.float64],
    xs: npt.NDArray[np.float64],
    ts: npt.NDArray[np.float64],
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Apply ``xs`` (with event times ``ts`` for a timed window, else an empty array) in order.

    Returns ``(applied, reason)``: the observations applied (the last one's decision included,
    except for :data:`NEED_THRESHOLDS`, where it is pending and ``ints[RESUME]`` is set: the
    caller passes it again, first of the rest) and why it stopped.
    """
    return _apply(ints, floats, narrow, xs, ts)


@njit(cache=True)
def run_streams(
    ints: npt.NDArray[np.int64],
    narrow: Narrow,
    floats: npt.NDArray[np.float64],
    ints_off: npt.NDArray[np.int64],
    narrow_off: npt.NDArray[np.int64],
    floats_off: npt.NDArray[np.int64],
    xs: npt.NDArray[np.float64],
    batch_off: npt.NDArray[np.int64],
    done: npt.NDArray[np.int64],
    reasons: npt.NDArray[np.int64],
) -> int:  # pragma: no cover - compiled
    """:func:`run` for many count-window detectors in one call, over their concatenated buffers.

    Stream ``j`` owns ``ints[ints_off[j]:ints_off[j + 1]]`` (and likewise ``narrow`` and
    ``floats``) and its observations ``xs[batch_off[j] + done[j]:batch_off[j + 1]]`` (grouped
    by stream, in order). ``done[j]`` is advanced by what was applied and ``reasons[j]`` set to
    why stream ``j`` stopped; the streams whose reason is not :data:`DONE` need the caller (to
    record a transition or fill thresholds) and then another call. Returns how many streams
    stopped early.
    """
    stopped = 0
    no_times = xs[0:0]
    for j in range(ints_off.shape[0] - 1):
        lo = batch_off[j] + done[j]
        hi = batch_off[j + 1]
        if lo >= hi:
            reasons[j] = DONE
            continue
        applied, reason = run(
            ints[ints_off[j] : ints_off[j + 1]],
            narrow[narrow_off[j] : narrow_off[j + 1]],
            floats[floats_off[j] : floats_off[j + 1]],
            xs[lo:hi],
            no_times,
        )
        done[j] += applied
        reasons[j] = reason
        if reason != DONE:
            stopped += 1
    return stopped
