"""Tests for stream.tools.plots.plot_ecdfs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from stream.tools.plots import EcdfPanel, plot_ecdfs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def make_panel(
    feature: str = "latency", shift: float = 0.4, n: int = 600, seed: int = 0
) -> EcdfPanel:
    rng = np.random.default_rng(seed)
    reference = rng.normal(100.0, 10.0, n)
    current = rng.normal(100.0 + 10.0 * shift, 10.0, n)
    current[:5] = np.nan
    result = stats.ks_2samp(reference, current[~np.isnan(current)])
    return EcdfPanel(
        feature=feature,
        reference=reference,
        current=current,
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        location=float(result.statistic_location),
    )


def test_single_panel_png(tmp_path: Path) -> None:
    out = tmp_path / "one.png"
    plot_ecdfs([make_panel()], out)
    width, height = png_size(out)
    assert width >= 400 and height >= 300
    assert out.stat().st_size > 15_000


def test_grid_of_panels(tmp_path: Path) -> None:
    out = tmp_path / "three.png"
    panels = [make_panel(f"f{i}", shift=0.1 * i, seed=i) for i in range(3)]
    plot_ecdfs(panels, out, title="drift in 3 features")
    width, height = png_size(out)
    one = tmp_path / "one.png"
    plot_ecdfs(panels[:1], one)
    one_width, one_height = png_size(one)
    assert width >= 2 * one_width - 10  # two columns
    assert height >= 2 * one_height - 10  # two rows
    assert out.stat().st_size > one.stat().st_size


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_vector_formats(tmp_path: Path, suffix: str, magic: bytes) -> None:
    out = tmp_path / f"plot{suffix}"
    plot_ecdfs([make_panel()], out)
    assert out.read_bytes().startswith(magic)


def test_large_samples_and_optional_fields(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    panel = EcdfPanel(
        feature="token_count",
        reference=rng.poisson(300, 500_000).astype(float),
        current=rng.poisson(305, 400_000).astype(float),
        statistic=0.05,
        p_value=1e-30,
        location=None,
        p_adjusted=4e-30,
        reference_label="reference window",
        current_label="last 5 minutes",
    )
    out = tmp_path / "big.png"
    plot_ecdfs([panel], out)
    assert png_size(out)[0] >= 400


def test_panel_is_frozen() -> None:
    panel = make_panel()
    with pytest.raises(dataclasses.FrozenInstanceError):
        panel.feature = "other"  # type: ignore[misc]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plot_ecdfs([], tmp_path / "none.png")
    with pytest.raises(ValueError, match=r"\.png"):
        plot_ecdfs([make_panel()], tmp_path / "plot.gif")
    empty = dataclasses.replace(make_panel(), current=np.array([np.nan, np.nan]))
    with pytest.raises(ValueError, match="current sample has no non-NaN values"):
        plot_ecdfs([empty], tmp_path / "empty.png")
    with pytest.raises(OSError):
        plot_ecdfs([make_panel()], tmp_path / "missing" / "plot.png")


def test_no_pyplot_global_state(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from stream.tools.plots import EcdfPanel, plot_ecdfs\n"
        "a = np.arange(50.0)\n"
        "plot_ecdfs([EcdfPanel('x', a, a + 5, 0.1, 0.9, 10.0)], sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    out = tmp_path / "sub.png"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    assert png_size(out)[0] >= 400


@pytest.mark.parametrize("accuracy", [True, False])
def test_the_legend_never_covers_the_gap_marker(accuracy: bool) -> None:
    """The 0/1 error indicators of an accuracy stream have their gap at 0, near the top: the
    upper-left legend used to hide it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from stream.tools.plots import _draw_panel

    if accuracy:
        reference = np.r_[np.zeros(950), np.ones(50)]
        current = np.r_[np.zeros(80), np.ones(20)]
        result = stats.ks_2samp(reference, current)
        panel = EcdfPanel(
            "accuracy",
            reference,
            current,
            float(result.statistic),
            float(result.pvalue),
            float(result.statistic_location),
        )
    else:
        panel = make_panel()
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    _draw_panel(ax, panel)
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert panel.location is not None
    ref_sorted = np.sort(panel.reference[np.isfinite(panel.reference)])
    cur_sorted = np.sort(panel.current[np.isfinite(panel.current)])
    ends = [
        np.searchsorted(s, panel.location, side="right") / s.size for s in (ref_sorted, cur_sorted)
    ]
    for y in np.linspace(min(ends), max(ends), 9):
        x_px, y_px = ax.transData.transform((panel.location, y))
        assert not legend.contains(x_px, y_px), (panel.feature, y)
