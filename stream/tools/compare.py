"""``driftwatch compare``: batch drift check of a production file against a reference file.

For every feature, the two samples (missing values dropped) go through the two-sample
Kolmogorov-Smirnov test (:func:`scipy.stats.ks_2samp`); the p-values of all checked
features are then adjusted for multiple testing (:func:`detectors.multitest.adjust_pvalues`)
and a feature counts as drifted iff its adjusted p-value is below ``alpha`` and, with a
``min_effect`` gate, its effect size (:func:`normalized_wasserstein` or
:func:`population_stability_index`) reaches ``min_effect``: on large files the KS test flags
shifts too small to matter. When both files carry ``predicted_label`` and ``true_label``
columns, the accuracies are compared as well.

A feature that cannot be compared (a missing column, no non-missing value, non-numeric values)
is reported with its error and the others are still compared; default features missing from
a file are named as skipped.

Exit status: 0 no feature drifted, 1 at least one feature drifted, 2 bad usage or input (or no
feature could be compared).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from scipy import stats

from detectors.multitest import CORRECTION_METHODS, Correction, adjust_pvalues
from stream.exceptions import InputFileError
from stream.tools.compare_categorical import CategoricalColumnResult, compare_categorical
from stream.tools.progress import Progress
from stream.tools.sources import TableData, TabularFile

__all__ = [
    "DEFAULT_FEATURES",
    "EFFECT_METRICS",
    "AccuracyResult",
    "CompareReport",
    "FeatureResult",
    "FileSummary",
    "accuracy_drop_pvalue",
    "add_parser",
    "compare_files",
    "normalized_wasserstein",
    "population_stability_index",
    "run",
]

DEFAULT_FEATURES: tuple[str, ...] = (
    "response_latency_ms",
    "token_count",
    "retry_count",
    "error_rate",
)
"""Features checked when none are named: those of these present in both files."""

Direction = Literal["production_larger", "production_smaller"]
EffectMetric = Literal["wasserstein", "psi"]
EFFECT_METRICS: tuple[EffectMetric, ...] = ("wasserstein", "psi")
"""Effect sizes a ``min_effect`` gate can apply to."""
PSI_BINS = 10
PSI_FLOOR = 1e-4

_EXIT_OK = 0
_EXIT_DRIFT = 1
_EXIT_ERROR = 2

Samples = dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]


@dataclass(frozen=True)
class FeatureResult:
    """Outcome of the KS test for one feature.

    Attributes
    ----------
    feature : str
        Column name.
    ks_stat : float
        Two-sample KS statistic D (largest gap between the two ECDFs).
    p_value : float
        Raw p-value of :func:`scipy.stats.ks_2samp` (``method="auto"``).
    p_adjusted : float
        p-value after the report's multiple-testing correction.
    drifted : bool
        ``p_adjusted < alpha``.
    n_reference, n_production : int
        Non-missing values used on each side.
    reference_nan_dropped, production_nan_dropped : int
        Missing (null/NaN) values dropped on each side.
    statistic_location : float
        Feature value at which D is attained.
    direction : {"production_larger", "production_smaller"} or None
        ``"production_larger"`` when the reference ECDF lies above the production ECDF at
        `statistic_location` (scipy's ``statistic_sign == +1`` with the reference as
        ``data1``), i.e. production values tend to be larger there; otherwise
        ``"production_smaller"``. None when D is 0 (the ECDFs never differ) or the feature
        could not be compared.
    wasserstein : float
        :func:`normalized_wasserstein` of the two samples (NaN if it cannot be computed).
    psi : float
        :func:`population_stability_index` of the two samples (NaN if it cannot be computed).
    error : str or None
        Why the feature could not be compared (then every statistic is NaN and `drifted` is
        False); None when it was.
    """

    feature: str
    ks_stat: float
    p_value: float
    p_adjusted: float
    drifted: bool
    n_reference: int
    n_production: int
    reference_nan_dropped: int
    production_nan_dropped: int
    statistic_location: float
    direction: Direction | None
    wasserstein: float = math.nan
    psi: float = math.nan
    error: str | None = None

    @classmethod
    def failed(cls, feature: str, error: str) -> FeatureResult:
        """The result for a feature that could not be compared."""
        nan = math.nan
        return cls(feature, nan, nan, nan, False, 0, 0, 0, 0, nan, None, error=error)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of all fields (non-finite floats become None)."""
        return {
            "feature": self.feature,
            "ks_stat": _json_float(self.ks_stat),
            "p_value": _json_float(self.p_value),
            "p_adjusted": _json_float(self.p_adjusted),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_production": self.n_production,
            "reference_nan_dropped": self.reference_nan_dropped,
            "production_nan_dropped": self.production_nan_dropped,
            "statistic_location": _json_float(self.statistic_location),
            "direction": self.direction,
            "wasserstein": _json_float(self.wasserstein),
            "psi": _json_float(self.psi),
            "error": self.error,
        }


@dataclass(frozen=True)
class AccuracyResult:
    """Accuracy of ``predicted_label`` against ``true_label`` in both files.

    Only rows with both labels present count. The drop test is a one-sided pooled
    two-proportion z-test of H0: production accuracy >= reference accuracy, see
    :func:`accuracy_drop_pvalue`. It is a normal approximation, sound when each side has
    at least a handful of correct and of wrong predictions. It is reported next to the
    features and is not part of their multiple-testing family or of the exit status.

    Attributes
    ----------
    reference_accuracy, production_accuracy : float or None
        Fraction of labelled rows where the labels agree; None with no labelled rows.
    n_reference, n_production : int
        Labelled rows on each side.
    drop_p_value : float or None
        p-value of the drop test; None unless both sides have labelled rows.
    dropped : bool
        ``drop_p_value < alpha``.
    """

    reference_accuracy: float | None
    production_accuracy: float | None
    n_reference: int
    n_production: int
    drop_p_value: float | None
    dropped: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping of all fields."""
        return {
            "reference_accuracy": _json_float(self.reference_accuracy),
            "production_accuracy": _json_float(self.production_accuracy),
            "n_reference": self.n_reference,
            "n_production": self.n_production,
            "drop_p_value": _json_float(self.drop_p_value),
            "dropped": self.dropped,
        }


@dataclass(frozen=True)
class FileSummary:
    """An input file and its number of data rows."""

    path: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping ``{"path", "rows"}``."""
        return {"path": self.path, "rows": self.rows}


@dataclass(frozen=True)
class CompareReport:
    """Result of :func:`compare_files`.

    Attributes
    ----------
    ts : datetime.datetime
        When the comparison ran (timezone-aware, UTC).
    reference, production : FileSummary
        The two inputs.
    alpha : float
        Significance level applied to the adjusted p-values.
    correction : {"none", "bonferroni", "holm", "bh"}
        Multiple-testing correction over the checked features.
    features : tuple of FeatureResult
        One result per checked feature, in the order they were requested (those that could
        not be compared carry their ``error``).
    accuracy : AccuracyResult or None
        Present when both files have ``predicted_label`` and ``true_label`` columns.
    min_effect : float
        Effect size a feature must reach, besides its p-value, to count as drifted (0: no
        gate).
    effect : {"wasserstein", "psi"}
        The effect size `min_effect` applies to.
    skipped : tuple of (str, str)
        Default features that were not checked, with the reason (the file that lacks them).
    categorical : tuple of CategoricalColumnResult
        Chi-square results of the categorical columns (corrected as a family of their own).
    """

    ts: datetime
    reference: FileSummary
    production: FileSummary
    alpha: float
    correction: Correction
    features: tuple[FeatureResult, ...]
    accuracy: AccuracyResult | None = None
    min_effect: float = 0.0
    effect: EffectMetric = "wasserstein"
    skipped: tuple[tuple[str, str], ...] = ()
    categorical: tuple[CategoricalColumnResult, ...] = ()

    @property
    def failed(self) -> tuple[FeatureResult, ...]:
        """Results of the features that could not be compared."""
        return tuple(result for result in self.features if result.error is not None)

    @property
    def drifted(self) -> tuple[FeatureResult, ...]:
        """Results of the drifted features only."""
        return tuple(result for result in self.features if result.drifted)

    @property
    def has_drift(self) -> bool:
        """Whether any feature (numeric or categorical) drifted."""
        return any(r.drifted for r in self.features) or any(r.drifted for r in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report as a dict; see :meth:`to_json` for the layout."""
        return {
            "ts": self.ts.isoformat(),
            "drifted": [result.to_dict() for result in self.drifted],
            "checked": len(self.features) - len(self.failed),
            "alpha": self.alpha,
            "correction": self.correction,
            "min_effect": self.min_effect,
            "effect": self.effect,
            "skipped": [{"feature": name, "reason": reason} for name, reason in self.skipped],
            "reference": self.reference.to_dict(),
            "production": self.production.to_dict(),
            "features": [result.to_dict() for result in self.features],
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "categorical": [result.to_dict() for result in self.categorical],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Render the report as JSON.

        The layout extends the classic per-feature KS report::

            {"ts": "2024-05-01T12:00:00.000000+00:00",
             "drifted": [{"feature", "ks_stat", "p_value", "p_adjusted", "drifted",
                          "n_reference", "n_production", "reference_nan_dropped",
                          "production_nan_dropped", "statistic_location", "direction",
                          "wasserstein", "psi", "error"}],
             "checked": 4,
             "alpha": 0.05, "correction": "holm",
             "min_effect": 0.1, "effect": "wasserstein",
             "skipped": [{"feature", "reason"}],
             "reference": {"path": "...", "rows": 1000},
             "production": {"path": "...", "rows": 1000},
             "features": [same objects as "drifted", for every requested feature;
                          "error" says why one could not be compared],
             "accuracy": null or {"reference_accuracy", "production_accuracy",
                                  "n_reference", "n_production", "drop_p_value",
                                  "dropped"},
             "categorical": [{"feature", "chi2", "dof", "p_value", "p_adjusted", "drifted",
                              "n_reference", "n_production", "categories", "error"}]}

        Non-finite numbers are written as ``null``.

        Parameters
        ----------
        indent : int or None, default 2
            Passed to :func:`json.dumps`; None writes a single line.

        Returns
        -------
        str
            The JSON document.
        """
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def _status(self, result: FeatureResult) -> str:
        if result.drifted:
            return "DRIFT"
        significant = result.p_adjusted < self.alpha
        return "below min effect" if significant else "ok"

    def to_table(self) -> str:
        """Render the report as aligned text, one line per feature, drifted ones marked.

        Returns
        -------
        str
            Header lines, the feature table and, if present, the accuracy line.
        """
        show_adjusted = self.correction != "none"
        headers = ["", "feature", "D", "p-value"]
        if show_adjusted:
            headers.append(f"p-{self.correction}")
        headers += ["W/sd", "PSI", "n_ref", "n_prod", "NaN ref", "NaN prod", "D at"]
        headers += ["direction", "status"]
        rows = []
        for r in self.features:
            if r.error is not None:
                rows.append(["!", r.feature] + ["-"] * (len(headers) - 3) + ["ERROR"])
                continue
            row = [
                "*" if r.drifted else "",
                r.feature,
                f"{r.ks_stat:.4f}",
                _format_p(r.p_value),
            ]
            if show_adjusted:
                row.append(_format_p(r.p_adjusted))
            row += [
                f"{r.wasserstein:.3g}",
                f"{r.psi:.3g}",
                f"{r.n_reference:,}",
                f"{r.n_production:,}",
                f"{r.reference_nan_dropped:,}",
                f"{r.production_nan_dropped:,}",
                f"{r.statistic_location:.6g}",
                "-" if r.direction is None else r.direction.replace("_", " "),
                self._status(r),
            ]
            rows.append(row)
        left_aligned = {1, len(headers) - 2, len(headers) - 1}
        n_drift = len(self.drifted)
        n_checked = len(self.features) - len(self.failed)
        gate = f", min effect {self.effect} {self.min_effect:g}" if self.min_effect > 0 else ""
        lines = [
            f"reference:  {self.reference.path} ({self.reference.rows:,} rows)",
            f"production: {self.production.path} ({self.production.rows:,} rows)",
            f"{n_drift} of {n_checked} feature{'s' if n_checked != 1 else ''}"
            f" drifted (KS test, alpha {self.alpha:g}, correction {self.correction}{gate})",
            "",
            *_align([headers, *rows], left_aligned),
        ]
        if self.failed or self.skipped:
            lines.append("")
        lines += [f"error: {r.feature}: {r.error}" for r in self.failed]
        lines += [f"skipped: {name}: {reason}" for name, reason in self.skipped]
        if self.categorical:
            lines += ["", *_categorical_lines(self.categorical)]
        if self.accuracy is not None:
            lines += ["", _accuracy_line(self.accuracy)]
        return "\n".join(lines)


def accuracy_drop_pvalue(
    correct_reference: int, n_reference: int, correct_production: int, n_production: int
) -> float:
    """One-sided p-value that production accuracy is lower than reference accuracy.

    Pooled two-proportion z-test: with ``p1 = correct_reference / n_reference``,
    ``p2 = correct_production / n_production`` and pooled ``p = (correct_reference +
    correct_production) / (n_reference + n_production)``, the statistic is
    ``z = (p1 - p2) / sqrt(p (1 - p) (1 / n_reference + 1 / n_production))`` and the
    p-value is ``P(Z >= z)`` for standard normal ``Z``.

    Parameters
    ----------
    correct_reference, n_reference : int
        Correct predictions and labelled rows in the reference (``n_reference >= 1``).
    correct_production, n_production : int
        The same for production (``n_production >= 1``).

    Returns
    -------
    float
        The p-value. When every prediction on both sides is right (or every one is
        wrong) the accuracies are equal and there is nothing to test: 1.0.

    Raises
    ------
    ValueError
        If a count is negative, exceeds its total, or a total is zero.

    Examples
    --------
    >>> round(accuracy_drop_pvalue(900, 1000, 850, 1000), 6)
    0.000362
    >>> accuracy_drop_pvalue(50, 50, 40, 40)
    1.0
    """
    for name, correct, total in (
        ("reference", correct_reference, n_reference),
        ("production", correct_production, n_production),
    ):
        if total < 1 or not 0 <= correct <= total:
            raise ValueError(
                f"{name} counts must satisfy 0 <= correct <= n and n >= 1; "
                f"got correct={correct}, n={total}"
            )
    p1 = correct_reference / n_reference
    p2 = correct_production / n_production
    pooled = (correct_reference + correct_production) / (n_reference + n_production)
    variance = pooled * (1.0 - pooled) * (1.0 / n_reference + 1.0 / n_production)
    if variance <= 0.0:
        return 1.0
    return float(stats.norm.sf((p1 - p2) / math.sqrt(variance)))


def normalized_wasserstein(reference: npt.ArrayLike, production: npt.ArrayLike) -> float:
    """First Wasserstein distance between two samples, in reference standard deviations.

    ``W1 = integral |F_ref(x) - F_prod(x)| dx`` over the two empirical CDFs, divided by the
    reference's (population) standard deviation, so that 0.1 means "the distributions are a
    tenth of a reference spread apart", whatever the feature's unit.

    Parameters
    ----------
    reference, production : array_like
        Non-empty 1-D samples, missing values already dropped.

    Returns
    -------
    float
        The normalised distance; 0 for equal samples. A constant reference (standard
        deviation 0) gives 0 if production is the same constant, else infinity. NaN when a
        sample holds an infinite value.

    Examples
    --------
    >>> normalized_wasserstein([0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0])  # shifted by 1
    0.894427190999916
    """
    u = np.sort(np.asarray(reference, dtype=np.float64))
    v = np.sort(np.asarray(production, dtype=np.float64))
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        return math.nan
    points = np.sort(np.concatenate([u, v]))
    widths = np.diff(points)
    cdf_u = np.searchsorted(u, points[:-1], side="right") / u.size
    cdf_v = np.searchsorted(v, points[:-1], side="right") / v.size
    distance = float(np.sum(np.abs(cdf_u - cdf_v) * widths))
    scale = float(np.std(u))
    if scale > 0.0:
        return distance / scale
    return 0.0 if distance == 0.0 else math.inf


def population_stability_index(
    reference: npt.ArrayLike,
    production: npt.ArrayLike,
    *,
    bins: int = PSI_BINS,
    floor: float = PSI_FLOOR,
) -> float:
    """Population stability index of production against reference, on reference quantile bins.

    The bin edges ``e_1 < ... < e_k`` are the reference's ``1/bins, ..., (bins-1)/bins``
    quantiles (repeated edges merged), the bins ``(-inf, e_1], (e_1, e_2], ..., (e_k, inf)``
    (closed on the right, as :func:`pandas.qcut`), so each bin holds about ``1/bins`` of a
    continuous reference, and a value repeated in the reference (a count that is mostly 0)
    gets a bin of its own. With ``p_i`` and ``q_i`` the reference and production shares of
    bin ``i``, each floored at `floor` so that an empty bin stays finite,
    ``PSI = sum_i (q_i - p_i) * ln(q_i / p_i)``. A common reading: below 0.1 stable, 0.1 to
    0.25 a moderate shift, above 0.25 a large one.

    Parameters
    ----------
    reference, production : array_like
        Non-empty 1-D samples, missing values already dropped.
    bins : int, default 10
        Number of quantile bins (at least 2).
    floor : float, default 1e-4
        Smallest share a bin is given.

    Returns
    -------
    float
        The index (0 for samples with the same bin shares); NaN when a sample holds an
        infinite value.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(0, 1, 5000)
    >>> round(population_stability_index(ref, rng.normal(0, 1, 5000)), 3)  # same law
    0.005
    >>> round(population_stability_index(ref, rng.normal(0.5, 1, 5000)), 2)  # shifted
    0.25
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2; got {bins!r}")
    u = np.asarray(reference, dtype=np.float64)
    v = np.asarray(production, dtype=np.float64)
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        return math.nan
    edges = np.unique(np.quantile(u, np.arange(1, bins) / bins))
    shares = [
        np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1) / x.size
        for x in (u, v)
    ]
    p, q = (np.maximum(share, floor) for share in shares)
    return float(np.sum((q - p) * np.log(q / p)))


def compare_files(
    reference_path: str | os.PathLike[str],
    production_path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: Correction = "none",
    min_effect: float = 0.0,
    effect: EffectMetric = "wasserstein",
) -> CompareReport:
    """Test every feature of a production file for drift against a reference file.

    Parameters
    ----------
    reference_path, production_path : str or os.PathLike
        Parquet, CSV or JSON Lines files (see :mod:`stream.tools.sources`).
    features : sequence of str, optional
        Numeric columns to check. By default, those of :data:`DEFAULT_FEATURES` present in
        both files (the others are listed in the report's ``skipped``).
    alpha : float, default 0.05
        Significance level, ``0 < alpha < 1``.
    correction : {"none", "bonferroni", "holm", "bh"}, default "none"
        Multiple-testing correction across the features that could be compared.
    min_effect : float, default 0.0
        A feature counts as drifted only if its `effect` size also reaches this (0: no
        gate). An effect that cannot be computed (infinite values) does not pass a gate.
    effect : {"wasserstein", "psi"}, default "wasserstein"
        The effect size `min_effect` applies to: :func:`normalized_wasserstein` or
        :func:`population_stability_index`. Both are always reported.

    Returns
    -------
    CompareReport
        Per-feature KS results and effect sizes (or the reason a feature could not be
        compared) and, when both files carry label columns, the accuracies.

    Raises
    ------
    InputFileError
        If a file cannot be opened, no requested feature could be compared (a missing
        column, non-numeric values or no non-missing value, for every one of them), or
        (with default features) the files share none of the default features.
    ValueError
        If `alpha`, `correction`, `features`, `min_effect` or `effect` is invalid.

    Examples
    --------
    >>> import numpy as np, pyarrow as pa, pyarrow.parquet
    >>> rng = np.random.default_rng(7)
    >>> tmp = getfixture("tmp_path")
    >>> pa.parquet.write_table(pa.table({"token_count": rng.poisson(300, 800)}),
    ...                        tmp / "ref.parquet")
    >>> pa.parquet.write_table(pa.table({"token_count": rng.poisson(330, 800)}),
    ...                        tmp / "prod.parquet")
    >>> report = compare_files(tmp / "ref.parquet", tmp / "prod.parquet")
    >>> [(r.feature, r.drifted, r.direction) for r in report.features]
    [('token_count', True, 'production_larger')]
    >>> gated = compare_files(tmp / "ref.parquet", tmp / "prod.parquet", min_effect=2.0)
    >>> [(r.feature, r.drifted, round(r.wasserstein, 2)) for r in gated.features]
    [('token_count', False, 1.7)]
    """
    report, _ = _compare(
        reference_path, production_path, features, alpha, correction, min_effect, effect
    )
    return report


def _compare(
    reference_path: str | os.PathLike[str],
    production_path: str | os.PathLike[str],
    features: Sequence[str] | None,
    alpha: float,
    correction: Correction,
    min_effect: float = 0.0,
    effect: EffectMetric = "wasserstein",
    progress: Progress | None = None,
    categorical: Sequence[str] = (),
) -> tuple[CompareReport, Samples]:
    try:
        alpha_ok = 0.0 < float(alpha) < 1.0
    except (TypeError, ValueError):
        alpha_ok = False
    if not alpha_ok:
        raise ValueError(f"alpha must be a number with 0 < alpha < 1; got {alpha!r}")
    if correction not in CORRECTION_METHODS:
        allowed = ", ".join(repr(name) for name in CORRECTION_METHODS)
        raise ValueError(f"correction must be one of {allowed}; got {correction!r}")
    if isinstance(features, str):
        raise ValueError(f"features must be a sequence of column names; got {features!r}")
    if not (isinstance(min_effect, int | float) and 0.0 <= min_effect < math.inf):
        raise ValueError(f"min_effect must be a finite number >= 0; got {min_effect!r}")
    if effect not in EFFECT_METRICS:
        allowed = ", ".join(repr(name) for name in EFFECT_METRICS)
        raise ValueError(f"effect must be one of {allowed}; got {effect!r}")
    ts = datetime.now(UTC)
    progress = progress or Progress("compare", quiet=True)
    reference = TabularFile(reference_path)
    production = TabularFile(production_path)
    names, skipped = _resolve_features(features, reference, production)
    failures: dict[str, InputFileError] = {}
    progress.status(f"reading {reference.path}")
    reference_data = _read_features(reference, names, failures)
    progress.status(f"reading {production.path}")
    production_data = _read_features(production, names, failures)

    samples: Samples = {}
    dropped: dict[str, tuple[int, int]] = {}
    for name in names:
        if name in failures:
            continue
        try:
            ref_values, ref_dropped = _drop_nan(reference_data, name)
            prod_values, prod_dropped = _drop_nan(production_data, name)
        except InputFileError as exc:
            failures[name] = exc
            continue
        samples[name] = (ref_values, prod_values)
        dropped[name] = (ref_dropped, prod_dropped)
    if not samples:
        first = failures[names[0]]
        if len(names) == 1:
            raise first
        reasons = "; ".join(f"{name}: {failures[name]}" for name in names)
        raise InputFileError(first.path, f"no feature could be compared ({reasons})")

    progress.total = len(samples)
    tests = {}
    for done, name in enumerate(samples):
        progress.update(done, f"testing {name}")
        tests[name] = stats.ks_2samp(*samples[name])
    progress.close(len(samples))
    adjusted = dict(
        zip(
            tests,
            adjust_pvalues([float(t.pvalue) for t in tests.values()], correction),
            strict=True,
        )
    )
    results = tuple(
        FeatureResult.failed(name, str(failures[name]))
        if name in failures
        else _feature_result(
            name,
            tests[name],
            adjusted[name],
            samples[name],
            dropped[name],
            alpha,
            min_effect,
            effect,
        )
        for name in names
    )
    progress.status("testing categorical columns")
    chi2_results = compare_categorical(reference, production, list(dict.fromkeys(categorical)))
    tested = [r for r in chi2_results if r.error is None]
    chi2_adjusted = iter(adjust_pvalues([r.p_value for r in tested], correction))
    chi2_results = [
        r
        if r.error is not None
        else dataclasses.replace(r, p_adjusted=(q := float(next(chi2_adjusted))), drifted=q < alpha)
        for r in chi2_results
    ]
    report = CompareReport(
        ts=ts,
        reference=FileSummary(reference.path, reference_data.num_rows),
        production=FileSummary(production.path, production_data.num_rows),
        alpha=float(alpha),
        correction=correction,
        features=results,
        accuracy=_accuracy(reference_data, production_data, alpha),
        min_effect=float(min_effect),
        effect=effect,
        skipped=skipped,
        categorical=tuple(chi2_results),
    )
    return report, samples


def _feature_result(
    name: str,
    test: Any,
    p_adjusted: float,
    sample: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    dropped: tuple[int, int],
    alpha: float,
    min_effect: float,
    effect: EffectMetric,
) -> FeatureResult:
    statistic = float(test.statistic)
    sizes = {
        "wasserstein": normalized_wasserstein(*sample),
        "psi": population_stability_index(*sample),
    }
    large_enough = min_effect == 0.0 or bool(sizes[effect] >= min_effect)
    direction: Direction | None = None
    if statistic > 0.0:
        direction = "production_larger" if test.statistic_sign > 0 else "production_smaller"
    return FeatureResult(
        feature=name,
        ks_stat=statistic,
        p_value=float(test.pvalue),
        p_adjusted=float(p_adjusted),
        drifted=bool(p_adjusted < alpha) and large_enough,
        n_reference=int(sample[0].size),
        n_production=int(sample[1].size),
        reference_nan_dropped=dropped[0],
        production_nan_dropped=dropped[1],
        statistic_location=float(test.statistic_location),
        direction=direction,
        wasserstein=sizes["wasserstein"],
        psi=sizes["psi"],
    )


def _read_features(
    source: TabularFile, names: list[str], failures: dict[str, InputFileError]
) -> TableData:
    """Read the features (and labels) of one file; a feature that fails goes to `failures`."""
    for name in names:
        if name not in failures and name not in source.column_names:
            failures[name] = InputFileError(source.path, f"missing column {name!r}")
    wanted = [name for name in names if name not in failures]
    try:
        return source.read(wanted, labels=True)
    except InputFileError:
        # Find the column(s) at fault, one at a time, and read the others.
        for name in wanted:
            try:
                source.read([name])
            except InputFileError as exc:
                failures[name] = exc
        return source.read([name for name in wanted if name not in failures], labels=True)


def _resolve_features(
    features: Sequence[str] | None, reference: TabularFile, production: TabularFile
) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    if features is not None:
        names = list(dict.fromkeys(features))
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise ValueError(f"features must be non-empty column names; got {features!r}")
        return names, ()
    in_reference = [name for name in DEFAULT_FEATURES if name in reference.column_names]
    in_production = [name for name in DEFAULT_FEATURES if name in production.column_names]
    names = [name for name in in_reference if name in in_production]
    if names:
        skipped = tuple(
            (name, "missing from " + " and ".join(source.path for source in lacking))
            for name in DEFAULT_FEATURES
            if (lacking := [f for f in (reference, production) if name not in f.column_names])
        )
        return names, skipped
    defaults = ", ".join(DEFAULT_FEATURES)
    for source, present in ((reference, in_reference), (production, in_production)):
        if not present:
            raise InputFileError(
                source.path,
                f"has none of the default features ({defaults}); name the columns to "
                "compare with --features",
            )
    raise InputFileError(
        production.path,
        f"shares none of the default features with {reference.path} (reference has "
        f"{', '.join(in_reference)}; production has {', '.join(in_production)}); name the "
        "columns to compare with --features",
    )


def _drop_nan(data: TableData, name: str) -> tuple[npt.NDArray[np.float64], int]:
    column = data.columns[name]
    keep = ~np.isnan(column)
    values = column[keep]
    if values.size == 0:
        raise InputFileError(
            data.path, f"column {name!r} has no non-missing values ({data.num_rows:,} rows)"
        )
    return values, int(column.size - values.size)


def _accuracy(reference: TableData, production: TableData, alpha: float) -> AccuracyResult | None:
    if reference.labels is None or production.labels is None:
        return None
    ref_predicted, ref_true = reference.labels
    prod_predicted, prod_true = production.labels
    n_ref, n_prod = int(ref_true.size), int(prod_true.size)
    ref_correct = int(np.count_nonzero(ref_predicted == ref_true))
    prod_correct = int(np.count_nonzero(prod_predicted == prod_true))
    p_value = (
        accuracy_drop_pvalue(ref_correct, n_ref, prod_correct, n_prod) if n_ref and n_prod else None
    )
    return AccuracyResult(
        reference_accuracy=ref_correct / n_ref if n_ref else None,
        production_accuracy=prod_correct / n_prod if n_prod else None,
        n_reference=n_ref,
        n_production=n_prod,
        drop_p_value=p_value,
        dropped=p_value is not None and p_value < alpha,
    )


# -- command line -------------------------------------------------------------------------

_DESCRIPTION = """\
Check a production file for drift against a reference file.

Each feature is tested with the two-sample Kolmogorov-Smirnov test on its non-missing
values; p-values are adjusted with --correction and a feature is reported as drifted when
its adjusted p-value is below --alpha and its effect size reaches --min-effect. Two effect
sizes are reported for every feature: the Wasserstein distance in reference standard
deviations (W/sd) and the population stability index (PSI, reference decile bins). A feature
that cannot be compared is reported as an error without stopping the others; default
features missing from a file are named. If both files have predicted_label and true_label
columns, their accuracies are compared too (one-sided two-proportion z-test for a drop;
reported, but it does not change the exit status).

Files may be Parquet (.parquet, .pq), CSV (.csv) or JSON Lines (.jsonl, .ndjson); CSV and
JSON Lines may be compressed (.gz, .bz2, .zst)."""

_EPILOG = f"""\
default features: those of {", ".join(DEFAULT_FEATURES[:2])},
  {", ".join(DEFAULT_FEATURES[2:])} present in both files

exit status: 0 no drift, 1 drift in at least one feature, 2 usage or input error
  (or no feature could be compared)

examples:
  driftwatch compare ref.parquet today.csv
  driftwatch compare ref.parquet today.csv --min-effect 0.1
  driftwatch compare ref.parquet today.jsonl --features token_count,retry_count \\
      --correction holm --format json --plot drift.png"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``compare`` subcommand.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The object returned by :meth:`argparse.ArgumentParser.add_subparsers`.
    """
    parser = subparsers.add_parser(
        "compare",
        help="KS-test every feature of a production file against a reference file",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reference", metavar="REFERENCE", help="reference (baseline) data file")
    parser.add_argument("production", metavar="PRODUCTION", help="production data file to check")
    parser.add_argument(
        "--features",
        metavar="F1,F2",
        type=_feature_list,
        action="extend",
        default=None,
        help="columns to check, comma-separated; may be repeated (default: the default "
        "features present in both files)",
    )
    parser.add_argument(
        "--alpha",
        type=_alpha,
        default=0.05,
        help="significance level for the adjusted p-values, 0 < alpha < 1 (default: 0.05)",
    )
    parser.add_argument(
        "--correction",
        choices=CORRECTION_METHODS,
        default="none",
        help="multiple-testing correction across features: none, bonferroni, holm "
        "(family-wise error) or bh (Benjamini-Hochberg false discovery rate) "
        "(default: none)",
    )
    parser.add_argument(
        "--min-effect",
        type=_min_effect,
        default=0.0,
        metavar="SIZE",
        help="also require this effect size for a drift, so that tiny shifts in large files "
        "are not flagged: normalised Wasserstein distance (in reference standard deviations, "
        "e.g. 0.1) or PSI (e.g. 0.1), see --effect (default: 0, no gate)",
    )
    parser.add_argument(
        "--effect",
        choices=EFFECT_METRICS,
        default="wasserstein",
        help="the effect size --min-effect applies to (both are reported; default: wasserstein)",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="report format on standard output (default: table)",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        type=_plot_path,
        default=None,
        help="also draw reference vs production ECDFs with the KS gap marked: one panel "
        "per drifted feature, or per checked feature if none drifted (.png, .svg or .pdf)",
    )
    parser.add_argument(
        "--categorical-features",
        metavar="C1,C2",
        type=_feature_list,
        action="extend",
        default=None,
        help="categorical columns to check with Pearson's chi-square (rare and unseen "
        "categories pooled into <other>); may be repeated",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``driftwatch compare`` for parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        Arguments from the parser built by :func:`add_parser`.

    Returns
    -------
    int
        0 when no feature drifted, 1 when at least one did, 2 when the plot cannot be
        written. Input problems raise :class:`stream.exceptions.InputFileError`, which
        the command line turns into exit status 2.
    """
    report, samples = _compare(
        args.reference,
        args.production,
        args.features,
        args.alpha,
        cast(Correction, args.correction),
        args.min_effect,
        cast(EffectMetric, args.effect),
        Progress("compare", unit="features", quiet=args.quiet),
        args.categorical_features or (),
    )
    try:
        print(report.to_json() if args.format == "json" else report.to_table(), flush=True)
    except BrokenPipeError:
        # The reader went away (e.g. piped into head); the exit status still counts.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if args.plot is not None:
        try:
            _plot(report, samples, args.plot)
        except OSError as exc:
            print(
                f"driftwatch compare: error: cannot write plot {args.plot}: {exc}",
                file=sys.stderr,
            )
            return _EXIT_ERROR
    return _EXIT_DRIFT if report.has_drift else _EXIT_OK


def _plot(report: CompareReport, samples: Samples, path: str) -> None:
    from stream.tools.plots import EcdfPanel, plot_ecdfs

    shown = report.drifted or tuple(r for r in report.features if r.error is None)
    panels = [
        EcdfPanel(
            feature=result.feature,
            reference=samples[result.feature][0],
            current=samples[result.feature][1],
            statistic=result.ks_stat,
            p_value=result.p_value,
            location=result.statistic_location,
            p_adjusted=None if report.correction == "none" else result.p_adjusted,
            reference_label="reference",
            current_label="production",
        )
        for result in shown
    ]
    settings = f"alpha {report.alpha:g}, correction {report.correction}"
    if report.drifted:
        title = f"drift in {len(report.drifted)} of {len(report.features)} features ({settings})"
    else:
        title = f"no drift in {len(report.features)} checked features ({settings})"
    plot_ecdfs(panels, path, title=title)


def _feature_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected column names, got {text!r}")
    return names


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must satisfy 0 < alpha < 1, got {text}")
    return value


def _min_effect(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _plot_path(text: str) -> str:
    from stream.tools.plots import PLOT_SUFFIXES

    path = Path(text)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r} must end in {', '.join(PLOT_SUFFIXES)}")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} does not exist")
    return text


def _align(rows: list[list[str]], left_aligned: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i in left_aligned else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _categorical_lines(results: Sequence[CategoricalColumnResult]) -> list[str]:
    rows = [["", "categorical", "chi2", "dof", "p-value", "p-adj", "cells", "n_ref", "n_prod"]]
    for r in results:
        if r.error is not None:
            rows.append(["!", r.feature, *["-"] * 7])
            continue
        rows.append(
            [
                "*" if r.drifted else "",
                r.feature,
                f"{r.chi2:.4g}",
                str(r.dof),
                _format_p(r.p_value),
                _format_p(r.p_adjusted),
                str(r.categories),
                f"{r.n_reference:,}",
                f"{r.n_production:,}",
            ]
        )
    lines = _align(rows, {1})
    lines += [f"error: {r.feature}: {r.error}" for r in results if r.error is not None]
    return lines


def _accuracy_line(accuracy: AccuracyResult) -> str:
    def side(value: float | None, n: int) -> str:
        return f"{value:.4f} (n={n:,})" if value is not None else f"n/a (n={n:,})"

    line = (
        f"accuracy: reference {side(accuracy.reference_accuracy, accuracy.n_reference)}, "
        f"production {side(accuracy.production_accuracy, accuracy.n_production)}"
    )
    if accuracy.drop_p_value is None:
        return line + "; drop test not possible without labelled rows on both sides"
    verdict = "significant DROP" if accuracy.dropped else "no significant drop"
    return line + f"; drop p-value {_format_p(accuracy.drop_p_value)}: {verdict}"


def _format_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
