"""Multiple-testing corrections for families of p-values.

Checking many features at once inflates the chance that at least one of them looks drifted
by accident. The functions here turn raw p-values into adjusted p-values so that the usual
decision rule, *drifted iff adjusted p < alpha*, keeps its error rate for the whole family:

``"none"``
    No adjustment: each test at level ``alpha`` on its own.
``"bonferroni"``
    Family-wise error rate (FWER) control, valid under any dependence: ``min(1, m * p)``.
``"holm"``
    Holm's step-down procedure. Also FWER control under any dependence, never less powerful
    than Bonferroni.
``"bh"``
    Benjamini-Hochberg step-up procedure. Controls the false discovery rate (FDR) for
    independent or positively dependent tests; more powerful than the FWER methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

__all__ = ["CORRECTION_METHODS", "Correction", "adjust_pvalues"]

Correction = Literal["none", "bonferroni", "holm", "bh"]
"""Names accepted by :func:`adjust_pvalues`."""

CORRECTION_METHODS: tuple[Correction, ...] = get_args(Correction)
"""All accepted correction names, in order of increasing power."""


def adjust_pvalues(
    pvalues: npt.ArrayLike | Sequence[float], method: Correction | str
) -> npt.NDArray[np.float64]:
    """Adjust p-values for multiple comparisons.

    Parameters
    ----------
    pvalues : array_like of float
        Raw p-values, each in ``[0, 1]``. Any shape; the whole array is one family of
        ``m = pvalues.size`` tests.
    method : {"none", "bonferroni", "holm", "bh"}
        Correction to apply. With the p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:

        * ``"none"``: ``p_(i)`` unchanged.
        * ``"bonferroni"``: ``min(1, m * p_(i))``.
        * ``"holm"``: ``max_{j <= i} min(1, (m - j + 1) * p_(j))`` (step-down, cumulative
          maximum from the smallest p-value).
        * ``"bh"``: ``min_{j >= i} min(1, m / j * p_(j))`` (Benjamini-Hochberg step-up,
          cumulative minimum from the largest p-value).

    Returns
    -------
    numpy.ndarray of float64
        Adjusted p-values, same shape and order as `pvalues`, each in ``[p_i, 1]``. Reject
        (flag as drifted) exactly those tests whose adjusted p-value is below ``alpha``.

    Raises
    ------
    ValueError
        If `method` is not one of the names above, or if any p-value is NaN or outside
        ``[0, 1]``.

    See Also
    --------
    scipy.stats.false_discovery_control : Benjamini-Hochberg and Benjamini-Yekutieli.

    Notes
    -----
    Ties get identical adjusted values for ``"holm"`` and ``"bh"`` regardless of the order
    in which they appear. An empty input returns an empty array.

    References
    ----------
    .. [1] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scandinavian Journal of Statistics 6(2), 65-70, 1979.
    .. [2] Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate: a practical
       and powerful approach to multiple testing", Journal of the Royal Statistical
       Society B 57(1), 289-300, 1995.

    Examples
    --------
    >>> from detectors.multitest import adjust_pvalues
    >>> p = [0.01, 0.04, 0.03, 0.005]
    >>> adjust_pvalues(p, "bonferroni")
    array([0.04, 0.16, 0.12, 0.02])
    >>> adjust_pvalues(p, "holm")
    array([0.03, 0.06, 0.06, 0.02])
    >>> adjust_pvalues(p, "bh")
    array([0.02, 0.04, 0.04, 0.02])
    >>> adjust_pvalues(p, "holm") < 0.05
    array([ True, False, False,  True])
    """
    if method not in CORRECTION_METHODS:
        allowed = ", ".join(repr(name) for name in CORRECTION_METHODS)
        raise ValueError(f"method must be one of {allowed}; got {method!r}")
    p = np.array(pvalues, dtype=np.float64)
    flat = p.ravel()
    bad = np.flatnonzero(np.isnan(flat) | (flat < 0.0) | (flat > 1.0))
    if bad.size:
        first = int(bad[0])
        raise ValueError(
            f"pvalues must all lie in [0, 1] and not be NaN; got {flat[first]!r} at "
            f"position {first} ({bad.size} invalid value(s) in total)"
        )
    m = flat.size
    if method == "none" or m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)

    order = np.argsort(flat, kind="stable")
    ranked = flat[order]
    rank = np.arange(1, m + 1, dtype=np.float64)
    if method == "holm":
        stepped = np.maximum.accumulate(np.minimum((m - rank + 1.0) * ranked, 1.0))
    else:  # "bh"; m / rank first so the largest p-value is multiplied by exactly 1
        stepped = np.minimum.accumulate(np.minimum(ranked * (m / rank), 1.0)[::-1])[::-1]
    adjusted = np.empty_like(flat)
    adjusted[order] = stepped
    return adjusted.reshape(p.shape)
