"""Categorical columns in ``driftwatch compare``: Pearson's chi-square per column.

The reference's categories are pooled with the streaming detector's rule
(:class:`detectors.categorical.CategoryCells`: categories seen fewer than ``min_count`` times,
those beyond ``max_categories`` and categories the reference never saw share one ``<other>``
cell; array values follow :func:`detectors.categorical.category_of`), and the 2 x K table of
reference and production counts is tested with :func:`detectors.categorical.chi2_statistics`,
which equals ``scipy.stats.chi2_contingency(table, correction=False)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from detectors.categorical import CategoryCells, category_of, chi2_statistics
from stream.exceptions import InputFileError
from stream.tools.sources import TabularFile, read_text_columns

__all__ = ["CategoricalColumnResult", "chi2_column", "compare_categorical"]

#: Pooling of rare categories, as the streaming categorical detector does by default.
MIN_COUNT = 5
MAX_CATEGORIES = 32


@dataclass(frozen=True)
class CategoricalColumnResult:
    """Outcome of the chi-square test for one categorical column.

    Attributes
    ----------
    feature : str
        Column name.
    chi2 : float
        Pearson's statistic on the 2 x K table (no continuity correction).
    dof : int
        Degrees of freedom: non-empty cells minus one.
    p_value, p_adjusted : float
        Upper tail of the chi-square distribution, and after the report's correction.
    drifted : bool
        ``p_adjusted < alpha``.
    n_reference, n_production : int
        Non-missing values on each side.
    categories : int
        Cells of the table (the reference's kept categories and ``<other>``).
    error : str or None
        Why the column could not be compared.
    """

    feature: str
    chi2: float
    dof: int
    p_value: float
    p_adjusted: float
    drifted: bool
    n_reference: int
    n_production: int
    categories: int
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (non-finite floats become None)."""

        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "feature": self.feature,
            "chi2": num(self.chi2),
            "dof": self.dof,
            "p_value": num(self.p_value),
            "p_adjusted": num(self.p_adjusted),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_production": self.n_production,
            "categories": self.categories,
            "error": self.error,
        }


def chi2_column(
    reference: Sequence[object], production: Sequence[object]
) -> tuple[float, int, float, int]:
    """``(chi2, dof, p_value, cells)`` of production against reference categories.

    Examples
    --------
    >>> x2, dof, p, cells = chi2_column(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> round(x2, 3), dof, cells
    (19.78, 1, 3)
    """
    ref = [category_of(x) for x in reference]
    prod = [category_of(x) for x in production]
    if not ref or not prod:
        raise ValueError("both samples need at least one value")
    cells = CategoryCells.pool(ref, MIN_COUNT, MAX_CATEGORIES)
    prod_counts = np.bincount(cells.cells_of(prod), minlength=len(cells.categories))
    x2, dof = chi2_statistics(cells.counts, prod_counts[np.newaxis, :].astype(np.int64))
    statistic, freedom = float(x2[0]), int(dof[0])
    p = float(stats.chi2.sf(statistic, freedom)) if freedom > 0 else 1.0
    return statistic, freedom, p, len(cells.categories)


def compare_categorical(
    reference: TabularFile, production: TabularFile, names: Sequence[str]
) -> list[CategoricalColumnResult]:
    """Chi-square per column (``p_adjusted`` and ``drifted`` are filled in by the caller)."""
    out = []
    nan = math.nan
    for name in names:
        try:
            ref = _values(reference, name)
            prod = _values(production, name)
            x2, dof, p, cells = chi2_column(ref, prod)
        except (InputFileError, ValueError) as exc:
            out.append(CategoricalColumnResult(name, nan, 0, nan, nan, False, 0, 0, 0, str(exc)))
            continue
        out.append(CategoricalColumnResult(name, x2, dof, p, p, False, len(ref), len(prod), cells))
    return out


def _values(source: TabularFile, name: str) -> list[object]:
    column = read_text_columns(source, [name])[name]
    values = [v for v in column if v is not None]
    if not values:
        raise InputFileError(source.path, f"column {name!r} has no non-missing values")
    return values
