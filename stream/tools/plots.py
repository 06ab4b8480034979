"""Empirical-CDF plots that show where a Kolmogorov-Smirnov test found its gap.

Figures are drawn on a standalone :class:`matplotlib.figure.Figure` rendered by the Agg
backend, so nothing touches pyplot's global state and no display is needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["PLOT_SUFFIXES", "EcdfPanel", "plot_ecdfs"]

PLOT_SUFFIXES: tuple[str, ...] = (".png", ".svg", ".pdf")
"""File extensions :func:`plot_ecdfs` can write (the format follows the extension)."""

_MAX_STEP_POINTS = 4000
_PANEL_SIZE_INCHES = (6.4, 4.4)
_DPI = 100
_REFERENCE_COLOR = "#1f77b4"
_CURRENT_COLOR = "#d62728"
_GAP_COLOR = "#222222"


@dataclass(frozen=True, eq=False)
class EcdfPanel:
    """One feature's reference and current samples and the KS test result on them.

    Attributes
    ----------
    feature : str
        Feature name, used as the panel title.
    reference : numpy.ndarray
        Reference sample. NaN values are ignored.
    current : numpy.ndarray
        Current (production or windowed) sample. NaN values are ignored.
    statistic : float
        KS statistic D, the largest vertical gap between the two ECDFs.
    p_value : float
        p-value of the test.
    location : float or None
        Value at which the gap D is attained (scipy's ``statistic_location``); the gap is
        drawn there. None draws no gap marker.
    p_adjusted : float or None, default None
        Multiple-testing adjusted p-value, shown next to `p_value` when given.
    reference_label, current_label : str
        Legend names of the two samples.
    """

    feature: str
    reference: npt.NDArray[np.float64]
    current: npt.NDArray[np.float64]
    statistic: float
    p_value: float
    location: float | None
    p_adjusted: float | None = None
    reference_label: str = "reference"
    current_label: str = "current"


def plot_ecdfs(
    panels: Sequence[EcdfPanel],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
) -> None:
    """Draw reference-vs-current ECDFs, one panel per feature, and save the figure.

    Each panel shows both empirical CDFs as step functions, a vertical segment at the KS
    statistic location spanning the two ECDF values there, and a box with the feature,
    D, the p-value(s) and both sample sizes.

    Parameters
    ----------
    panels : sequence of EcdfPanel
        At least one panel; they are laid out in two columns (one if there is just one).
    path : str or os.PathLike
        Output file; the extension picks the format (``.png``, ``.svg`` or ``.pdf``).
    title : str, optional
        Figure title above all panels.

    Raises
    ------
    ValueError
        If `panels` is empty, a panel has no non-NaN values on either side, or the
        extension of `path` is not supported.
    OSError
        If the file cannot be written.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import ks_2samp
    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, 500), rng.normal(0.5, 1, 500)
    >>> res = ks_2samp(ref, cur)
    >>> panel = EcdfPanel("latency", ref, cur, res.statistic, res.pvalue,
    ...                   res.statistic_location)
    >>> out = getfixture("tmp_path") / "latency.png"
    >>> plot_ecdfs([panel], out, title="drift in 1 feature")
    >>> out.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    if not panels:
        raise ValueError("panels must hold at least one EcdfPanel; got none")
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(
            f"path must end in one of {', '.join(PLOT_SUFFIXES)}; got {os.fspath(path)!r}"
        )
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    width, height = _PANEL_SIZE_INCHES
    fig = Figure(figsize=(width * ncols, height * nrows + (0.4 if title else 0.0)), dpi=_DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        _draw_panel(ax, panel)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, format=suffix.lstrip("."), dpi=_DPI)


def _draw_panel(ax: Axes, panel: EcdfPanel) -> None:
    reference = _sorted_finite(panel.reference, panel.feature, panel.reference_label)
    current = _sorted_finite(panel.current, panel.feature, panel.current_label)
    x_ref, y_ref = _step_points(reference)
    x_cur, y_cur = _step_points(current)
    ax.step(x_ref, y_ref, where="post", color=_REFERENCE_COLOR, lw=1.6, label=panel.reference_label)
    ax.step(x_cur, y_cur, where="post", color=_CURRENT_COLOR, lw=1.6, label=panel.current_label)

    legend_at: Literal["upper left", "center right"] = "upper left"
    if panel.location is not None and math.isfinite(panel.location):
        f_ref = _ecdf_at(reference, panel.location)
        f_cur = _ecdf_at(current, panel.location)
        ax.vlines(
            panel.location,
            min(f_ref, f_cur),
            max(f_ref, f_cur),
            colors=_GAP_COLOR,
            linestyles="--",
            lw=2.0,
            label=f"KS gap D={panel.statistic:.3f}",
        )
        ax.plot([panel.location] * 2, [f_ref, f_cur], "o", color=_GAP_COLOR, ms=4)
        # a gap in the upper left (e.g. the 0/1 error indicators of an accuracy stream, whose
        # gap is at 0 near the top) would sit under the legend: move the legend to the right
        lo, hi = ax.get_xlim()
        if (panel.location - lo) / (hi - lo) < 0.5 and max(f_ref, f_cur) > 0.5:
            legend_at = "center right"

    p_text = f"p = {_format_p(panel.p_value)}"
    if panel.p_adjusted is not None:
        p_text += f", adjusted {_format_p(panel.p_adjusted)}"
    ax.text(
        0.98,
        0.04,
        f"{panel.feature}\nD = {panel.statistic:.4f}\n{p_text}\n"
        f"n_ref = {reference.size:,}, n_cur = {current.size:,}",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
    )
    ax.set_title(panel.feature)
    ax.set_xlabel(panel.feature)
    ax.set_ylabel("cumulative fraction")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_at, fontsize=9)


def _sorted_finite(values: npt.ArrayLike, feature: str, side: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    array = np.sort(array[~np.isnan(array)])
    if array.size == 0:
        raise ValueError(f"panel {feature!r}: the {side} sample has no non-NaN values")
    return array


def _step_points(
    sorted_values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ECDF step vertices, thinned to at most ``_MAX_STEP_POINTS`` for large samples."""
    n = sorted_values.size
    if n <= _MAX_STEP_POINTS:
        index = np.arange(n)
    else:
        index = np.unique(np.linspace(0, n - 1, _MAX_STEP_POINTS).round().astype(np.int64))
    x = sorted_values[index]
    y = (index + 1) / n
    # Start the curve at height 0 just left of the smallest value.
    return np.concatenate(([x[0]], x)), np.concatenate(([0.0], y))


def _ecdf_at(sorted_values: npt.NDArray[np.float64], x: float) -> float:
    return float(np.searchsorted(sorted_values, x, side="right") / sorted_values.size)


def _format_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"
