"""``driftwatch compare``: batch drift check of a production file against a reference file.

For every feature, the two samples (missing values dropped) go through the two-sample
Kolmogorov-Smirnov test (:func:`scipy.stats.ks_2samp`); the p-values of all checked
features are then adjusted for multiple testing (:func:`detectors.multitest.adjust_pvalues`)
and a feature counts as drifted iff its adjusted p-value is below ``alpha``. When both files
carry ``predicted_label`` and ``true_label`` columns, the accuracies are compared as well.

Exit status: 0 no feature drifted, 1 at least one feature drifted, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
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
from stream.tools.sources import TableData, TabularFile

__all__ = [
    "DEFAULT_FEATURES",
    "AccuracyResult",
    "CompareReport",
    "FeatureResult",
    "FileSummary",
    "accuracy_drop_pvalue",
    "add_parser",
    "compare_files",
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
    direction : {"production_larger", "production_smaller"}
        ``"production_larger"`` when the reference ECDF lies above the production ECDF at
        `statistic_location` (scipy's ``statistic_sign == +1`` with the reference as
        ``data1``), i.e. production values tend to be larger there; otherwise
        ``"production_smaller"``.
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
    direction: Direction

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
        One result per checked feature, in the order they were requested.
    accuracy : AccuracyResult or None
        Present when both files have ``predicted_label`` and ``true_label`` columns.
    """

    ts: datetime
    reference: FileSummary
    production: FileSummary
    alpha: float
    correction: Correction
    features: tuple[FeatureResult, ...]
    accuracy: AccuracyResult | None = None

    @property
    def drifted(self) -> tuple[FeatureResult, ...]:
        """Results of the drifted features only."""
        return tuple(result for result in self.features if result.drifted)

    @property
    def has_drift(self) -> bool:
        """Whether any feature drifted."""
        return any(result.drifted for result in self.features)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report as a dict; see :meth:`to_json` for the layout."""
        return {
            "ts": self.ts.isoformat(),
            "drifted": [result.to_dict() for result in self.drifted],
            "checked": len(self.features),
            "alpha": self.alpha,
            "correction": self.correction,
            "reference": self.reference.to_dict(),
            "production": self.production.to_dict(),
            "features": [result.to_dict() for result in self.features],
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Render the report as JSON.

        The layout extends the classic per-feature KS report::

            {"ts": "2024-05-01T12:00:00.000000+00:00",
             "drifted": [{"feature", "ks_stat", "p_value", "p_adjusted", "drifted",
                          "n_reference", "n_production", "reference_nan_dropped",
                          "production_nan_dropped", "statistic_location", "direction"}],
             "checked": 4,
             "alpha": 0.05, "correction": "holm",
             "reference": {"path": "...", "rows": 1000},
             "production": {"path": "...", "rows": 1000},
             "features": [same objects as "drifted", for every checked feature],
             "accuracy": null or {"reference_accuracy", "production_accuracy",
                                  "n_reference", "n_production", "drop_p_value",
                                  "dropped"}}

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
        headers += ["n_ref", "n_prod", "NaN ref", "NaN prod", "D at", "direction", "status"]
        rows = []
        for r in self.features:
            row = [
                "*" if r.drifted else "",
                r.feature,
                f"{r.ks_stat:.4f}",
                _format_p(r.p_value),
            ]
            if show_adjusted:
                row.append(_format_p(r.p_adjusted))
            row += [
                f"{r.n_reference:,}",
                f"{r.n_production:,}",
                f"{r.reference_nan_dropped:,}",
                f"{r.production_nan_dropped:,}",
                f"{r.statistic_location:.6g}",
                r.direction.replace("_", " "),
                "DRIFT" if r.drifted else "ok",
            ]
            rows.append(row)
        left_aligned = {1, len(headers) - 2, len(headers) - 1}
        n_drift = len(self.drifted)
        lines = [
            f"reference:  {self.reference.path} ({self.reference.rows:,} rows)",
            f"production: {self.production.path} ({self.production.rows:,} rows)",
            f"{n_drift} of {len(self.features)} feature{'s' if len(self.features) != 1 else ''}"
            f" drifted (KS test, alpha {self.alpha:g}, correction {self.correction})",
            "",
            *_align([headers, *rows], left_aligned),
        ]
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


def compare_files(
    reference_path: str | os.PathLike[str],
    production_path: str | os.PathLike[str],
    *,
    features: Sequence[str] | None = None,
    alpha: float = 0.05,
    correction: Correction = "none",
) -> CompareReport:
    """Test every feature of a production file for drift against a reference file.

    Parameters
    ----------
    reference_path, production_path : str or os.PathLike
        Parquet, CSV or JSON Lines files (see :mod:`stream.tools.sources`).
    features : sequence of str, optional
        Numeric columns to check; each must exist in both files. By default, those of
        :data:`DEFAULT_FEATURES` present in both files.
    alpha : float, default 0.05
        Significance level, ``0 < alpha < 1``.
    correction : {"none", "bonferroni", "holm", "bh"}, default "none"
        Multiple-testing correction across the checked features.

    Returns
    -------
    CompareReport
        Per-feature KS results and, when both files carry label columns, the accuracies.

    Raises
    ------
    InputFileError
        If a file cannot be read, lacks a feature, holds non-numeric values in one, has no
        non-missing value for a feature, or (with default features) the files share none
        of the default features.
    ValueError
        If `alpha`, `correction` or `features` is invalid.

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
    """
    report, _ = _compare(reference_path, production_path, features, alpha, correction)
    return report


def _compare(
    reference_path: str | os.PathLike[str],
    production_path: str | os.PathLike[str],
    features: Sequence[str] | None,
    alpha: float,
    correction: Correction,
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
    ts = datetime.now(UTC)
    reference = TabularFile(reference_path)
    production = TabularFile(production_path)
    names = _resolve_features(features, reference, production)
    reference_data = reference.read(names, labels=True)
    production_data = production.read(names, labels=True)

    samples: Samples = {}
    raw: list[tuple[str, Any, int, int]] = []
    for name in names:
        ref_values, ref_dropped = _drop_nan(reference_data, name)
        prod_values, prod_dropped = _drop_nan(production_data, name)
        samples[name] = (ref_values, prod_values)
        raw.append((name, stats.ks_2samp(ref_values, prod_values), ref_dropped, prod_dropped))

    adjusted = adjust_pvalues([float(result.pvalue) for _, result, _, _ in raw], correction)
    results = tuple(
        FeatureResult(
            feature=name,
            ks_stat=float(result.statistic),
            p_value=float(result.pvalue),
            p_adjusted=float(p_adj),
            drifted=bool(p_adj < alpha),
            n_reference=int(samples[name][0].size),
            n_production=int(samples[name][1].size),
            reference_nan_dropped=ref_dropped,
            production_nan_dropped=prod_dropped,
            statistic_location=float(result.statistic_location),
            direction="production_larger" if result.statistic_sign > 0 else "production_smaller",
        )
        for (name, result, ref_dropped, prod_dropped), p_adj in zip(raw, adjusted, strict=True)
    )
    report = CompareReport(
        ts=ts,
        reference=FileSummary(reference.path, reference_data.num_rows),
        production=FileSummary(production.path, production_data.num_rows),
        alpha=float(alpha),
        correction=correction,
        features=results,
        accuracy=_accuracy(reference_data, production_data, alpha),
    )
    return report, samples


def _resolve_features(
    features: Sequence[str] | None, reference: TabularFile, production: TabularFile
) -> list[str]:
    if features is not None:
        names = list(dict.fromkeys(features))
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise ValueError(f"features must be non-empty column names; got {features!r}")
        return names
    in_reference = [name for name in DEFAULT_FEATURES if name in reference.column_names]
    in_production = [name for name in DEFAULT_FEATURES if name in production.column_names]
    names = [name for name in in_reference if name in in_production]
    if names:
        return names
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
its adjusted p-value is below --alpha. If both files have predicted_label and true_label
columns, their accuracies are compared too (one-sided two-proportion z-test for a drop;
reported, but it does not change the exit status).

Files may be Parquet (.parquet, .pq), CSV (.csv) or JSON Lines (.jsonl, .ndjson); CSV and
JSON Lines may be compressed (.gz, .bz2, .zst)."""

_EPILOG = f"""\
default features: those of {", ".join(DEFAULT_FEATURES[:2])},
  {", ".join(DEFAULT_FEATURES[2:])} present in both files

exit status: 0 no drift, 1 drift in at least one feature, 2 usage or input error

examples:
  driftwatch compare ref.parquet today.csv
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

    shown = report.drifted or report.features
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
