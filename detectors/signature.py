"""Tie signatures: which tied references can share one calibrated threshold.

A tied reference's threshold depends on its tie structure: where along the reference's
distribution function its atoms sit and how heavy they are. References whose structures agree
closely calibrate to nearly the same thresholds, so a fleet of streams with the same kind of
feature needs one calibration per *signature*, not one per stream.

:func:`tie_signature` quantises a reference's atom multiplicities into a signature and returns
the canonical reference of that signature -- the atom counts that are calibrated for every
reference sharing it. The canonical reference is a function of the signature alone, so a
stream's thresholds do not depend on which stream of its class happened to calibrate first
(the same input gives the same thresholds after a restart, a rebalance or in a replay).

Two kinds of tie structure
--------------------------
* **Few-valued** (at most :data:`FEW_VALUES` distinct values, or an atom heavier than
  :data:`MANY_MAX_SHARE` of the reference; flags, retry counts, small integers): the exact
  count profile is the signature. Rounding it does not keep the rate: the attainable gaps
  ``|m R - n C|`` of a lattice statistic move with each cumulative count ``R``, so a
  threshold and randomised boundary solved on a rounded profile fall elsewhere on the real
  one's lattice. Measured (retry counts, n 600, W 30, ERT 1,000, 24 references): 0.88 of the
  target on each reference's own counts, 0.85 / 0.70 / 0.63 with cumulative counts rounded
  to 0.5 / 1 / 2 % of ``n``.
* **Many-valued** (more distinct values, every atom light; integer token counts, rounded
  rates): the threshold depends on how fine the lattice is along the distribution, not on
  individual counts. The reference is cut into :data:`BANDS` bands of equal probability; in
  each, the size-biased mean atom size -- the mean size of the atom a random reference value
  falls in, ``sum(c**2) / sum(c)`` -- is rounded on a geometric grid of ratio
  :data:`SIZE_RATIO`; the canonical reference fills each band with atoms of that size. The
  mean is size-biased because the statistic's maximum falls anywhere along the distribution
  in proportion to probability, not to the number of atoms: a bell of small atoms in the
  tails and large ones in the middle is as coarse as its middle, where most of its values
  are. (The plain mean per atom made canonical references finer than real token counts, so
  their shared thresholds alarmed 0.65-0.91x the target at ert 1e5; BENCHMARKS.md.)

Whether sharing preserves the false-alarm rate is measured, not assumed: bench/protection.py
counts the false alarms of streams running on shared thresholds (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "BANDS",
    "FEW_VALUES",
    "MANY_MAX_SHARE",
    "SIZE_RATIO",
    "TieSignature",
    "tie_signature",
]

#: References with at most this many distinct values are few-valued.
FEW_VALUES = 32

#: A reference with an atom heavier than this share of it is few-valued whatever its size.
MANY_MAX_SHARE = 0.05

#: Equal-probability bands of the many-valued signature.
BANDS = 2

#: Geometric grid of the many-valued signature's mean atom sizes.
SIZE_RATIO = 2.0**0.25


@dataclass(frozen=True, slots=True)
class TieSignature:
    """A quantised tie structure and the canonical reference calibrated for it.

    Attributes
    ----------
    kind : {"few", "many"}
        Which quantisation made it.
    key : tuple of int
        The quantised structure (with ``n``): equal keys share one calibration.
    counts : tuple of int
        The canonical reference's atom multiplicities (they sum to ``n``).
    """

    kind: Literal["few", "many"]
    key: tuple[int, ...]
    counts: tuple[int, ...]


def _few(counts: npt.NDArray[np.int64], n: int) -> TieSignature:
    exact = tuple(counts.tolist())
    return TieSignature("few", (n, *exact), exact)


def _size_level(size: float) -> int:
    return round(math.log(size) / math.log(SIZE_RATIO))


def _many(counts: npt.NDArray[np.int64], n: int) -> TieSignature:
    ends = np.cumsum(counts)
    mids = (ends - counts / 2.0) / n
    band = np.minimum((mids * BANDS).astype(np.int64), BANDS - 1)
    atoms = np.bincount(band, minlength=BANDS)
    mass = np.bincount(band, weights=counts, minlength=BANDS)
    squares = np.bincount(band, weights=counts.astype(np.float64) ** 2, minlength=BANDS)
    levels = [_size_level(squares[b] / mass[b]) if atoms[b] else 0 for b in range(BANDS)]
    canonical: list[int] = []
    done = 0
    for b, level in enumerate(levels):
        band_mass = round((b + 1) * n / BANDS) - done
        done += band_mass
        size = max(1.0, SIZE_RATIO**level)
        pieces = max(1, min(band_mass, round(band_mass / size)))
        base, extra = divmod(band_mass, pieces)
        canonical += [base + 1] * extra + [base] * (pieces - extra)
    return TieSignature("many", (n, *levels), tuple(canonical))


def tie_signature(atom_counts: npt.ArrayLike) -> TieSignature:
    """The quantised tie signature of a reference with these atom multiplicities.

    Parameters
    ----------
    atom_counts : array-like of int
        Multiplicities of the reference's sorted distinct values (all positive).

    Returns
    -------
    TieSignature

    Examples
    --------
    >>> tie_signature([853, 101, 46]).kind
    'few'
    >>> rng = np.random.default_rng(0)
    >>> a, b = (np.unique(rng.poisson(500, 1_000), return_counts=True)[1] for _ in range(2))
    >>> tie_signature(a).kind, tie_signature(a) == tie_signature(b)
    ('many', True)
    """
    counts = np.asarray(atom_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 1).any():
        raise ValueError("atom_counts must be a non-empty 1-D array of positive counts")
    n = int(counts.sum())
    if counts.shape[0] <= FEW_VALUES or counts.max() > MANY_MAX_SHARE * n:
        return _few(counts, n)
    return _many(counts, n)
