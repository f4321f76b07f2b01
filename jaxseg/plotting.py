"""Figure plumbing and generic plots shared by every figure module (data, eval, explain, studies).

Figures are ``matplotlib.figure.Figure`` objects with an explicit Agg canvas (no pyplot), so
nothing global in matplotlib changes. The lowest layer: it imports nothing from jaxseg.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
TILE_IN = 1.6  # inches per image tile


def new_figure(width: float, height: float) -> Figure:
    """An Agg-backed figure of ``width`` × ``height`` inches, constrained layout."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, out_path: str) -> str:
    """Write ``fig`` as PNG to ``out_path`` (creating parent dirs); returns the path."""
    os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
    fig.savefig(out_path, dpi=DPI, format="png")
    return out_path


def blank(ax: Axes) -> None:
    """No ticks and no frame, but keep the axis labels usable."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def grey(images: np.ndarray) -> np.ndarray:
    """Display images [N,H,W] in [0, 1] of images [N,H,W,C]: mean over channels, min-max per
    image (a constant image maps to 0)."""
    g = np.asarray(images, np.float32).mean(axis=-1)
    lo, hi = g.min(axis=(1, 2), keepdims=True), g.max(axis=(1, 2), keepdims=True)
    return (g - lo) / np.where(hi > lo, hi - lo, 1)


def heatmap(matrix: np.ndarray, labels: Sequence[str], out_path: str, title: str) -> str:
    """A square matrix [R,R] (e.g. weight distances between runs) with ``labels`` on both axes,
    each cell annotated with its value (non-finite cells blank, annotated '–')."""
    m = np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"matrix must be square [R,R] with R ≥ 1, got shape {m.shape}")
    if len(labels) != m.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {m.shape[0]}×{m.shape[0]} matrix")
    r = m.shape[0]
    side = max(3.5, 0.6 * r + 2.0)
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    finite = np.isfinite(m)
    lo, hi = (m[finite].min(), m[finite].max()) if finite.any() else (0.0, 1.0)
    image = ax.imshow(np.ma.masked_invalid(m), cmap="viridis", vmin=lo, vmax=hi)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(r), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(r), labels, fontsize=8)
    for (i, j), v in np.ndenumerate(m):
        dark = np.isfinite(v) and (v - lo) / ((hi - lo) or 1) < 0.5  # viridis is dark low
        ax.text(j, i, f"{v:.3g}" if np.isfinite(v) else "–", ha="center", va="center",
                fontsize=7, color="white" if dark else "black")  # fmt: skip
    ax.set_title(title, fontsize=9)
    return save_png(fig, out_path)
