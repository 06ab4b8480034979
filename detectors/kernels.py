"""Compiled kernels of the KS detectors' alarm rule and of its null process.

The alarm rule of :class:`~detectors.IncrementalKS` and :class:`~detectors.WindowedKS` lives
here once, as small compiled functions that the detectors call and that the calibration's
simulator inlines:

* :func:`boundary_uniform` -- the per-observation draw of the randomised boundary, a hash of
  ``(index, seed)`` (splitmix64), so the same observation always decides the same way;
* :func:`fires` -- the alarm rule on an exact gap ``G = max |m R - n C|``;
* :func:`tally` -- one step of the resolve tally of an open episode.

:func:`simulate_segments` runs the detector's null process (sliding window, a test every
``stride`` observations, exact gaps) on many streams and keeps only what any threshold at or
above a level ``h_min`` can see: the runs of tested gaps from a gap ``>= h_min`` until a resolve
tally restarted at every such gap reaches ``resolve_after``. Every episode of a detector whose
alarm floor is ``>= h_min`` starts and ends inside one such run (its tally is never below the
restarted one), so :func:`count_starts` counts exactly, on the same simulated streams, the
episode starts of every threshold at or above ``h_min`` (common random numbers).

The exact gap is kept after every simulated observation by a segment tree over the detector's
slots holding prefix-sum extremes of ``m r_s - n c_s``: ``O(log K)`` per observation
(:data:`TREE`). A reference with at most :data:`FEW_SLOTS` slots (flags, retry counts, up to
255 distinct values) takes the few-slot path instead (:data:`PREFIX`): the window's count per slot,
``O(1)`` per observation, and the gap as ``max_s |m R_s - n C_s|`` over the prefix counts, only
at the tests where it can matter. One observation moves every cut's ``m R_s - n C_s`` by at most
``n``, so after a tested gap ``g < h_min`` outside a kept run the next ``(h_min - 1 - g) // n``
observations cannot reach ``h_min``; their gaps are not computed. Both paths are fed by one
draw routine (:func:`draw_stream`), so they see the same observations and keep the same gaps,
bit for bit.

The observations are drawn in ``O(1)`` each, a stream at a time, in blocks of words:

* the uniform words come from xoshiro256+ (Blackman and Vigna), its four-word state seeded
  from ``seed`` by splitmix64 (:func:`seeded_state`, :func:`next_words`); the top 53 bits of a
  word are a uniform integer ``r`` in ``[0, 2**53)``;
* the cell of ``r`` is found by a guide table (Chen and Asau, :func:`guide_table`) over the
  cumulative cell weights scaled to the integers ``[0, 2**53]``, built once per draw of the
  cell probabilities: the entry of ``r``'s top bits names the first cell that can hold ``r``,
  and a linear scan from it finds the first cell whose cumulative weight is above ``r``
  (:func:`draw_cell`), so cell ``j`` is drawn with probability ``w_j / sum(w)`` up to one
  part in ``2**53``.

The Dirichlet weights of the Bayesian bootstrap (once per ``per_draw`` streams) are Gamma draws
of numba's ``np.random``, seeded with ``seed``. The same seed gives the same output.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "AUTO",
    "FEW_SLOTS",
    "PREFIX",
    "TREE",
    "boundary_uniform",
    "chosen_path",
    "count_group_starts",
    "count_starts",
    "draw_cell",
    "draw_stream",
    "fires",
    "guide_table",
    "next_words",
    "record_streams",
    "seeded_state",
    "simulate_segments",
    "tally",
]

#: Paths of the null simulation: by the slot count (:data:`FEW_SLOTS`), the segment tree, or
#: the few-slot prefix counts.
AUTO, TREE, PREFIX = 0, 1, 2
#: Most slots (``2K + 1`` for ``K`` distinct values) the prefix-count path is chosen for
#: (``bench/few_slots.py --slots``, with the guide-table draws: about 4x faster than the tree at
#: 5-13 slots, 1.6-2x at 421, 1.1-1.3x at 783-1,001, slower at 1,383-2,001).
FEW_SLOTS = 512

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SEED_MUL = np.uint64(0xD1B54A32D192ED03)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SPAN = 9007199254740992.0  # 2**53
_ISPAN = np.int64(1) << 53
_GUIDE_MIN_BITS = 10  # at least 1,024 guide entries
_BLOCK = 1_024  # random words drawn at a time


@njit(cache=True)
def boundary_uniform(index: int, seed: int) -> float:  # pragma: no cover - compiled
    """A uniform draw in ``[0, 1)`` that is a fixed function of ``(index, seed)``."""
    z = np.uint64(index) * _GOLDEN + np.uint64(seed) * _SEED_MUL
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) / 9007199254740992.0  # top 53 bits / 2**53


@njit(cache=True)
def fires(
    gap: int, high: int, mixed: int, mix: float, index: int, seed: int
) -> bool:  # pragma: no cover - compiled
    """The alarm rule: ``gap >= high``, or ``mixed <= gap < high`` with probability ``mix``."""
    if gap >= high:
        return True
    if mix <= 0.0 or gap < mixed:
        return False
    return boundary_uniform(index, seed) < mix


@njit(cache=True)
def tally(below: int, gap: int, low: int) -> int:  # pragma: no cover - compiled
    """One step of an open episode's resolve tally: +1 below ``low``, else -1 (not below 0)."""
    if gap < low:
        return below + 1
    return below - 1 if below > 0 else 0


@njit(cache=True)
def _tree_update(
    tsum: npt.NDArray[np.int64],
    tmax: npt.NDArray[np.int64],
    tmin: npt.NDArray[np.int64],
    leaf: int,
    delta: int,
    size: int,
) -> None:  # pragma: no cover - compiled
    i = size + leaf
    tsum[i] += delta
    tmax[i] = tsum[i]
    tmin[i] = tsum[i]
    i >>= 1
    while i >= 1:
        a = 2 * i
        b = a + 1
        tsum[i] = tsum[a] + tsum[b]
        tmax[i] = max(tmax[a], tsum[a] + tmax[b])
        tmin[i] = min(tmin[a], tsum[a] + tmin[b])
        i >>= 1


@njit(cache=True)
def _record_stream(
    stream: npt.NDArray[np.int64],
    base: npt.NDArray[np.int64],
    size: int,
    n: int,
    m: int,
    stride: int,
    h_min: int,
    low_min: int,
    resolve_after: int,
    offset: int,
    gaps: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    kept: int,
    runs: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Slide a window over one stream of slots from empty; append its kept runs."""
    tsum = base.copy()
    tmax = base.copy()
    tmin = base.copy()
    for i in range(size - 1, 0, -1):
        a = 2 * i
        tsum[i] = tsum[a] + tsum[a + 1]
        tmax[i] = max(tmax[a], tsum[a] + tmax[a + 1])
        tmin[i] = min(tmin[a], tsum[a] + tmin[a + 1])
    ring = np.empty(m, dtype=np.int64)
    recording = False
    restarted = 0
    for t in range(1, stream.shape[0] + 1):
        slot = stream[t - 1]
        pos = (t - 1) % m
        if t > m:
            _tree_update(tsum, tmax, tmin, ring[pos], n, size)
        ring[pos] = slot
        _tree_update(tsum, tmax, tmin, slot, -n, size)
        if t < m or t % stride != 0:
            continue
        g = max(tmax[1], -tmin[1])
        if g >= h_min:
            if not recording:
                recording = True
                bounds[runs] = kept
                runs += 1
            restarted = 0
        elif recording:
            restarted = tally(restarted, g, low_min)
        if recording:
            gaps[kept] = g
            index[kept] = offset + t
            kept += 1
            if restarted >= resolve_after:
                recording = False
    return kept, runs


@njit(cache=True)
def _record_prefix(
    stream: npt.NDArray[np.int64],
    cut_ref: npt.NDArray[np.int64],
    n: int,
    m: int,
    stride: int,
    h_min: int,
    low_min: int,
    resolve_after: int,
    offset: int,
    gaps: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    kept: int,
    runs: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """:func:`_record_stream` by the window's count per slot (``cut_ref``: ``m R_s``)."""
    slots = cut_ref.shape[0]
    count = np.zeros(slots, dtype=np.int64)
    recording = False
    restarted = 0
    test = -(-m // stride) * stride  # the next tested observation
    due = 0  # outside a kept run, the first observation whose gap can reach h_min
    for t in range(1, stream.shape[0] + 1):
        count[stream[t - 1]] += 1
        if t > m:
            count[stream[t - 1 - m]] -= 1
        if t != test:
            continue
        test += stride
        if t < due and not recording:
            continue
        c = 0
        g = 0
        for s in range(slots):
            c += count[s]
            g = max(g, abs(cut_ref[s] - n * c))
        if g >= h_min:
            if not recording:
                recording = True
                bounds[runs] = kept
                runs += 1
            restarted = 0
        elif recording:
            restarted = tally(restarted, g, low_min)
        if recording:
            gaps[kept] = g
            index[kept] = offset + t
            kept += 1
            if restarted >= resolve_after:
                recording = False
        if not recording:  # then g < h_min
            due = t + (h_min - 1 - g) // n + 1
    return kept, runs


@njit(cache=True)
def _record(
    prefix: bool,
    stream: npt.NDArray[np.int64],
    base: npt.NDArray[np.int64],
    size: int,
    cut_ref: npt.NDArray[np.int64],
    n: int,
    m: int,
    stride: int,
    h_min: int,
    low_min: int,
    resolve_after: int,
    offset: int,
    gaps: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    kept: int,
    runs: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """One stream's kept runs by the few-slot path (``prefix``) or the segment tree."""
    if prefix:
        return _record_prefix(
            stream,
            cut_ref,
            n,
            m,
            stride,
            h_min,
            low_min,
            resolve_after,
            offset,
            gaps,
            index,
            bounds,
            kept,
            runs,
        )
    return _record_stream(
        stream,
        base,
        size,
        n,
        m,
        stride,
        h_min,
        low_min,
        resolve_after,
        offset,
        gaps,
        index,
        bounds,
        kept,
        runs,
    )


@njit(cache=True)
def chosen_path(slots: int, path: int) -> int:  # pragma: no cover - compiled
    """The path (:data:`TREE` or :data:`PREFIX`) of ``path`` for ``slots`` slots."""
    if path != AUTO:
        return path
    return PREFIX if slots <= FEW_SLOTS else TREE


@njit(cache=True)
def _cut_ref(
    slot_ref: npt.NDArray[np.int64], m: int
) -> npt.NDArray[np.int64]:  # pragma: no cover - compiled
    return m * np.cumsum(slot_ref)


@njit(cache=True)
def _splitmix64(z: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover - compiled
    """One step of splitmix64: the next state and its output."""
    z = z + _GOLDEN
    x = (z ^ (z >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return z, x ^ (x >> np.uint64(31))


@njit(cache=True)
def seeded_state(seed: int) -> npt.NDArray[np.uint64]:  # pragma: no cover - compiled
    """The four words of xoshiro256+ state for ``seed``: splitmix64 outputs from the seed."""
    state = np.empty(4, dtype=np.uint64)
    z = np.uint64(seed) * _SEED_MUL
    for i in range(4):
        z, word = _splitmix64(z)
        state[i] = word
    return state


@njit(cache=True)
def next_words(state: npt.NDArray[np.uint64], out: npt.NDArray[np.uint64]) -> None:
    """Fill ``out`` with the next outputs of xoshiro256+ on ``state`` (advanced in place).

    The top 53 bits of a word, ``word >> 11``, are a uniform integer in ``[0, 2**53)`` (the low
    bits of xoshiro256+ are weaker and are never used).
    """  # pragma: no cover - compiled
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    for i in range(out.shape[0]):
        out[i] = s0 + s3
        t = s1 << np.uint64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3


@njit(cache=True)
def guide_table(
    weights: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:  # pragma: no cover - compiled
    """An O(1) draw of a cell with probability ``weights[j] / weights.sum()`` (Chen and Asau).

    A uniform integer ``r`` in ``[0, 2**53)`` falls in the first cell with ``cut[j] > r``.
    ``guide[r >> shift]`` is the first cell whose cut is above the start of ``r``'s interval of
    the guide, so a linear scan from it (:func:`draw_cell`) finds that cell, most often at once
    (on average at most ``cells / len(guide)`` more steps). Cell ``j`` is drawn with probability
    ``(cut[j] - cut[j - 1]) / 2**53``, ``weights[j] / weights.sum()`` to within a few parts in
    ``2**53``.

    Parameters
    ----------
    weights : float array
        Non-negative cell weights, not all zero.

    Returns
    -------
    cut : int array
        Cumulative weight through each cell on the integers ``[0, 2**53]``, rounded, the last
        cell of positive weight (and any after it) at ``2**53``; a cell of zero weight adds
        nothing and is never drawn.
    guide : int array
        ``2**b`` entries (at least 1,024 and two per cell): the first cell with
        ``cut > k << shift`` for entry ``k``.
    shift : int
        ``53 - b``.
    """
    cells = weights.shape[0]
    cut = np.empty(cells, dtype=np.int64)
    total = 0.0
    for j in range(cells):
        total += weights[j]
    scale = _SPAN / total
    acc = 0.0
    for j in range(cells):
        acc += weights[j]
        cut[j] = min(np.int64(acc * scale + 0.5), _ISPAN)
    for j in range(cells - 1, -1, -1):  # the last cell of positive weight ends at 2**53
        if weights[j] > 0.0:
            for i in range(j, cells):
                cut[i] = _ISPAN
            break
    bits = _GUIDE_MIN_BITS
    while (1 << bits) < 2 * cells:
        bits += 1
    shift = 53 - bits
    guide = np.empty(1 << bits, dtype=np.int64)
    j = 0
    for k in range(1 << bits):
        start = np.int64(k) << shift
        while cut[j] <= start:
            j += 1
        guide[k] = j
    return cut, guide, shift


@njit(cache=True)
def draw_cell(
    cut: npt.NDArray[np.int64], guide: npt.NDArray[np.int64], shift: int, r: int
) -> int:  # pragma: no cover - compiled
    """The cell of the uniform integer ``r`` in ``[0, 2**53)`` (see :func:`guide_table`)."""
    j = guide[r >> shift]
    while cut[j] <= r:
        j += 1
    return j


@njit(cache=True)
def draw_stream(
    state: npt.NDArray[np.uint64],
    cut: npt.NDArray[np.int64],
    guide: npt.NDArray[np.int64],
    shift: int,
    cell_slot: npt.NDArray[np.int64],
    stream: npt.NDArray[np.int64],
    words: npt.NDArray[np.uint64],
) -> None:  # pragma: no cover - compiled
    """Fill ``stream`` with the slots of independent cell draws, a block of words at a time.

    Parameters
    ----------
    state : uint64 array
        The xoshiro256+ state (:func:`seeded_state`), advanced by one word per observation.
    cut, guide, shift
        The cells' guide table (:func:`guide_table`).
    cell_slot : int array
        The detector's slot of each cell.
    stream : int array
        Filled with the slot of each observation.
    words : uint64 array
        Scratch for a block of words (its length is the block).
    """
    steps = stream.shape[0]
    block = words.shape[0]
    for first in range(0, steps, block):
        count = min(block, steps - first)
        next_words(state, words[:count])
        for i in range(count):
            r = int(np.int64(words[i] >> np.uint64(11)))
            stream[first + i] = cell_slot[draw_cell(cut, guide, shift, r)]


@njit(cache=True)
def _leaves(slot_ref: npt.NDArray[np.int64], m: int) -> tuple[npt.NDArray[np.int64], int]:
    size = 1
    while size < slot_ref.shape[0]:
        size *= 2
    base = np.zeros(2 * size, dtype=np.int64)
    for s in range(slot_ref.shape[0]):
        base[size + s] = m * slot_ref[s]
    return base, size


@njit(cache=True, nogil=True)
def simulate_segments(
    cell_alpha: npt.NDArray[np.float64],
    cell_slot: npt.NDArray[np.int64],
    slot_ref: npt.NDArray[np.int64],
    n: int,
    m: int,
    streams: int,
    steps: int,
    stride: int,
    h_min: int,
    low_min: int,
    resolve_after: int,
    bootstrap: bool,
    seed: int,
    capacity: int,
    per_draw: int,
    path: int = AUTO,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], int, int
]:  # pragma: no cover - compiled
    """Simulate null streams of the detector; keep the tested gaps any threshold >= h_min sees.

    Parameters
    ----------
    cell_alpha : float array
        Per cell (where observations can fall): Dirichlet concentration of the Bayesian
        bootstrap (``bootstrap``), else the cell's probability.
    cell_slot : int array
        The detector's slot of each cell.
    slot_ref : int array
        Reference values in each slot (``2K + 1`` slots).
    n, m : int
        Reference and window sizes.
    streams, steps : int
        Null streams and observations per stream (the window fills in the first ``m``).
    stride : int
        Observations between tests (a test at every ``n_seen`` that is a multiple).
    h_min, low_min, resolve_after : int
        The lowest alarm floor to cover, its resolve level and the resolve tally length.
    bootstrap : bool
        Draw the cell probabilities from Dirichlet(``cell_alpha``): anew for every
        ``per_draw`` streams (one plausible true distribution per group of streams).
    seed : int
        Seed of the simulation.
    capacity : int
        Most gaps kept; the simulation stops before the stream that could exceed it.
    per_draw : int
        Streams per draw of the cell probabilities.
    path : int
        :data:`AUTO` (:func:`chosen_path` by the slot count), :data:`TREE` or :data:`PREFIX`;
        every path returns the same arrays.

    Returns
    -------
    gaps, index : int arrays
        Kept tested gaps and their observation index (``stream * steps + n_seen``).
    bounds : int array
        Start of each kept run in ``gaps`` (with a final end marker).
    streams_done, observations : int
        Streams simulated in full, and the observations they hold once the window is full.
    """
    np.random.seed(seed)
    cells = cell_alpha.shape[0]
    prefix = chosen_path(slot_ref.shape[0], path) == PREFIX
    base, size = _leaves(slot_ref, m)
    cut_ref = _cut_ref(slot_ref, m)
    gaps = np.empty(capacity, dtype=np.int64)
    index = np.empty(capacity, dtype=np.int64)
    bounds = np.empty(capacity + 1, dtype=np.int64)
    kept = 0
    runs = 0
    weights = cell_alpha.copy()
    cut, guide, shift = guide_table(cell_alpha)
    state = seeded_state(seed)
    words = np.empty(_BLOCK, dtype=np.uint64)
    stream = np.empty(steps, dtype=np.int64)
    done = 0
    for b in range(streams):
        if kept + steps > capacity:
            break
        if bootstrap and b % per_draw == 0:
            for j in range(cells):
                weights[j] = np.random.gamma(cell_alpha[j])
            cut, guide, shift = guide_table(weights)
        draw_stream(state, cut, guide, shift, cell_slot, stream, words)
        kept, runs = _record(
            prefix,
            stream,
            base,
            size,
            cut_ref,
            n,
            m,
            stride,
            h_min,
            low_min,
            resolve_after,
            b * steps,
            gaps,
            index,
            bounds,
            kept,
            runs,
        )
        done += 1
    bounds[runs] = kept
    return gaps[:kept], index[:kept], bounds[: runs + 1], done, done * (steps - m + 1)


@njit(cache=True, nogil=True)
def record_streams(
    streams: npt.NDArray[np.int64],
    slot_ref: npt.NDArray[np.int64],
    n: int,
    m: int,
    stride: int,
    h_min: int,
    low_min: int,
    resolve_after: int,
    path: int = AUTO,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """:func:`simulate_segments` on given streams of slots (one row each): ``gaps, index, bounds``.

    Each row is one detector fed from an empty window; ``index`` is ``row * steps + n_seen``.
    ``path`` as in :func:`simulate_segments`.
    """  # pragma: no cover - compiled
    rows, steps = streams.shape
    prefix = chosen_path(slot_ref.shape[0], path) == PREFIX
    base, size = _leaves(slot_ref, m)
    cut_ref = _cut_ref(slot_ref, m)
    capacity = rows * steps
    gaps = np.empty(capacity, dtype=np.int64)
    index = np.empty(capacity, dtype=np.int64)
    bounds = np.empty(capacity + 1, dtype=np.int64)
    kept = 0
    runs = 0
    for b in range(rows):
        kept, runs = _record(
            prefix,
            streams[b],
            base,
            size,
            cut_ref,
            n,
            m,
            stride,
            h_min,
            low_min,
            resolve_after,
            b * steps,
            gaps,
            index,
            bounds,
            kept,
            runs,
        )
    bounds[runs] = kept
    return gaps[:kept], index[:kept], bounds[: runs + 1]


@njit(cache=True, nogil=True)
def count_group_starts(
    gaps: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    high: int,
    low: int,
    mixed: int,
    mix: float,
    resolve_after: int,
    seed: int,
    group_span: int,
    groups: int,
) -> npt.NDArray[np.int64]:  # pragma: no cover - compiled
    """Episode starts of the detector's rule over the kept runs, per group of observations.

    A run belongs to group ``index // group_span`` of its first gap (runs never straddle a
    stream, and a group is a whole number of streams).
    """
    starts = np.zeros(groups, dtype=np.int64)
    for r in range(bounds.shape[0] - 1):
        in_drift = False
        below = 0
        first = bounds[r]
        if first == bounds[r + 1]:
            continue
        group = min(index[first] // group_span, groups - 1)
        for k in range(first, bounds[r + 1]):
            g = gaps[k]
            if not in_drift:
                if fires(g, high, mixed, mix, index[k], seed):
                    in_drift = True
                    below = 0
                    starts[group] += 1
            else:
                below = tally(below, g, low)
                if below >= resolve_after:
                    in_drift = False
                    below = 0
    return starts


@njit(cache=True, nogil=True)
def count_starts(
    gaps: npt.NDArray[np.int64],
    index: npt.NDArray[np.int64],
    bounds: npt.NDArray[np.int64],
    high: int,
    low: int,
    mixed: int,
    mix: float,
    resolve_after: int,
    seed: int,
) -> int:  # pragma: no cover - compiled
    """Episode starts of the detector's rule over the kept runs of :func:`simulate_segments`."""
    return count_group_starts(
        gaps, index, bounds, high, low, mixed, mix, resolve_after, seed, 1 << 62, 1
    )[0]
