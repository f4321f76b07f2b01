"""PNG figures of feature maps and of images (e.g. activation-maximisation results).

Figures are built on ``matplotlib.figure.Figure`` with an explicit Agg canvas (no pyplot), so
nothing global in matplotlib changes. Images are channels-last float arrays [N,H,W,C]; they are
shown in grey (mean over channels) with per-image min-max scaling. Every tile is ``TILE_IN``
inches square at ``DPI``, so a figure of r×c tiles is (c·TILE_IN·DPI)×(r·TILE_IN·DPI) pixels.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from jaxseg.plotting import TILE_IN, blank, grey, new_figure, save_png

CMAP = "magma"


def top_channels(acts: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``min(k, c)`` channels of acts [N,h,w,c] with the largest mean activation
    over all images and positions, in descending order of that mean."""
    means = np.asarray(acts, np.float64).mean(axis=(0, 1, 2))
    return np.argsort(-means, kind="stable")[:k]


def channel_maps(acts: np.ndarray, mode: str = "mean", k: int = 4) -> np.ndarray:
    """Maps [N,m,h,w] of acts [N,h,w,c]: 'mean' → the channel mean (m=1); 'topk' → the
    ``top_channels`` (the same for every image, so they compare; m=min(k, c))."""
    acts = np.asarray(acts, np.float32)
    if mode == "mean":
        return acts.mean(axis=-1)[:, None]
    if mode == "topk":
        return np.moveaxis(acts[..., top_channels(acts, k)], -1, 1)
    raise ValueError(f"unknown mode {mode!r}; expected 'mean' or 'topk'")


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centres, edge-clamped) resize of maps [N,m,h,w] to [N,m,H,W]."""
    shape = (*maps.shape[:2], *size)
    return np.asarray(jax.image.resize(np.asarray(maps, np.float32), shape, "linear"))


def rescale(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """``x`` mapped from [lo, hi] to [0, 1]; where hi == lo, to 0."""
    span = np.asarray(hi) - lo
    return (x - lo) / np.where(span > 0, span, 1)


def _layer_paths(runs: dict[str, dict[str, np.ndarray]], n: int) -> list[str]:
    """The layer paths shared by every run (first run's order); raises on differing path
    sets or on activations whose batch size is not ``n``."""
    if not runs:
        raise ValueError("no runs given")
    (first, layers), *rest = runs.items()
    for label, other in rest:
        missing, extra = sorted(set(layers) - set(other)), sorted(set(other) - set(layers))
        if missing or extra:
            raise ValueError(
                f"run {label!r} layers differ from run {first!r}: missing {missing}, extra {extra}"
            )
    for label, acts in runs.items():
        for path, a in acts.items():
            if np.ndim(a) != 4 or np.shape(a)[0] != n:
                raise ValueError(
                    f"run {label!r} layer {path!r}: activations {np.shape(a)}, "
                    f"expected [{n},h,w,c] for {n} images"
                )
    return list(layers)


def activation_grid(
    images: np.ndarray,
    runs: dict[str, dict[str, np.ndarray]],
    out_path: str,
    mode: str = "mean",
    k: int = 4,
    alpha: float = 0.5,
) -> str:
    """One PNG of feature maps overlaid on their inputs; returns ``out_path``.

    images [N,H,W,C]; runs {run label: {layer path: acts [N,h,w,c]}} with the same paths in
    every run. Rows are images; the first column is the input, then for each run and each
    layer the ``channel_maps`` (``mode``, ``k``) upsampled to H×W and drawn in ``CMAP`` at
    ``alpha`` over the input. Maps are min-max normalised per layer jointly over all runs,
    images and shown channels, so colours compare across runs side by side.
    """
    images = np.asarray(images)
    N, H, W = images.shape[:3]
    paths = _layer_paths(runs, N)
    columns = []  # (title, maps [N,H,W] in [0, 1])
    for path in paths:
        raw = {label: channel_maps(acts[path], mode, k) for label, acts in runs.items()}
        lo = min(m.min() for m in raw.values())
        hi = max(m.max() for m in raw.values())
        for label, small in raw.items():
            maps = rescale(upsample(small, (H, W)), lo, hi)  # bilinear stays within [lo, hi]
            chans = top_channels(runs[label][path], k) if mode == "topk" else [None]
            for j, ch in enumerate(chans):
                suffix = "" if ch is None else f" ch {ch}"
                columns.append((f"{label}\n{path}{suffix}", maps[:, j]))
    background = grey(images)
    fig = new_figure((1 + len(columns)) * TILE_IN, N * TILE_IN)
    axes = fig.subplots(N, 1 + len(columns), squeeze=False)
    for i in range(N):
        axes[i, 0].imshow(background[i], cmap="gray", vmin=0, vmax=1)
        for col, (_, maps) in enumerate(columns, start=1):
            axes[i, col].imshow(background[i], cmap="gray", vmin=0, vmax=1)
            axes[i, col].imshow(maps[i], cmap=CMAP, vmin=0, vmax=1, alpha=alpha)
    for ax, title in zip(axes[0], ["input"] + [t for t, _ in columns], strict=True):
        ax.set_title(title, fontsize=7)
    for ax in axes.flat:
        blank(ax)
    return save_png(fig, out_path)


def image_grid(
    images: np.ndarray, titles: list[str], out_path: str, columns: int = 8, title: str = ""
) -> str:
    """One PNG tiling images [n,H,W,C] (grey, min-max per image) ``columns`` to a row, with
    ``titles[i]`` under tile i and ``title`` above all; returns ``out_path``."""
    images = np.asarray(images)
    n = images.shape[0]
    if n == 0 or columns < 1:
        raise ValueError(f"need at least one image and column, got {n} images, {columns} columns")
    if len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images")
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    fig = new_figure(cols * TILE_IN, rows * TILE_IN)
    if title:
        fig.suptitle(title, fontsize=9)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, img, label in zip(axes, grey(images), titles, strict=False):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_xlabel(label, fontsize=7)
    for i, ax in enumerate(axes):
        blank(ax)
        ax.set_visible(i < n)
    return save_png(fig, out_path)
