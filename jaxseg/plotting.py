"""Figure plumbing shared by every figure module: Agg canvases (no pyplot, no global state)."""

from __future__ import annotations

import os

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
