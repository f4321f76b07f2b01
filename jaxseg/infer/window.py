"""Whole-image predictions from a model that sees fixed-size windows (host-side numpy).

``predict`` maps a float32 batch [B, *window, C] to probabilities [B, *window, K] (a numpy or
jax array; the caller jits it). ``sliding_window`` tiles the image with overlapping windows,
batches the tiles (batches of min(``batch_size``, tiles), the last one padded, so a jitted
``predict`` compiles once per batch shape and a one-window image costs one window) and returns
the weighted average of the overlapping outputs. An image that fits in the window is predicted
whole: one window, zero-padded.

Padding: an axis that is too short is zero-padded *centred* (the odd voxel goes at the end), as
nnU-Net and MONAI do, so the object keeps context on both sides; the output is cropped back.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]
WEIGHTINGS = ("gaussian", "constant")
MIN_WEIGHT = 1e-6  # floor of the Gaussian map: border voxels still count, sums never underflow


def tile_starts(size: int, window: int, overlap: float) -> list[int]:
    """Window origins along one axis covering [0, size): step max(1, round(window·(1−overlap))),
    the last tile flush with the end; [0] when size <= window."""
    if window < 1:
        raise ValueError(f"window {window} must be positive")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap {overlap} must be in [0, 1)")
    if size <= window:
        return [0]
    step = max(1, round(window * (1 - overlap)))
    return [*range(0, size - window, step), size - window]


def gaussian_weights(window: tuple[int, ...], sigma_scale: float = 0.125) -> np.ndarray:
    """Importance map [*window] float32: a Gaussian centred on the window, sigma =
    sigma_scale·window per axis, max 1 and at least MIN_WEIGHT, so tile centres dominate the
    average where tiles overlap while a voxel covered only by tile borders is still predicted."""
    profiles = [
        np.exp(-0.5 * ((np.arange(w) - (w - 1) / 2) / (sigma_scale * w)) ** 2) for w in window
    ]
    weights = functools.reduce(np.multiply.outer, profiles)
    weights = weights / weights.max()
    return np.maximum(weights, MIN_WEIGHT).astype(np.float32)


def _spatial_rank(image: np.ndarray) -> int:
    """Number of spatial axes of an [*S, C] image; raises unless it is 2 or 3."""
    rank = image.ndim - 1
    if rank not in (2, 3):
        raise ValueError(f"image shape {image.shape} must be [H, W, C] or [D, H, W, C]")
    return rank


def _pad_centred(image: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Zero-pad the spatial axes of [*S, C] up to ``shape`` (centred, odd voxel at the end);
    returns the padded image and the slices that crop a [*shape, K] output back to [*S, K]."""
    before = [(p - s) // 2 for s, p in zip(image.shape[:-1], shape, strict=True)]
    widths = [(b, p - s - b) for s, p, b in zip(image.shape[:-1], shape, before, strict=True)]
    crop = tuple(slice(b, b + s) for b, s in zip(before, image.shape[:-1], strict=True))
    return np.pad(image, [*widths, (0, 0)]), crop


def _run(predict: Predict, batch: np.ndarray) -> np.ndarray:
    """``predict`` on [B, *T, C] as float32 numpy [B, *T, K]; raises on another leading shape."""
    out = np.asarray(predict(batch), dtype=np.float32)
    if out.ndim != batch.ndim or out.shape[:-1] != batch.shape[:-1]:
        raise ValueError(f"predict returned shape {out.shape} for a batch of shape {batch.shape}")
    return out


def sliding_window(
    predict: Predict,
    image: np.ndarray,
    window: Sequence[int],
    overlap: float = 0.5,
    batch_size: int = 8,
    weighting: str = "gaussian",
) -> np.ndarray:
    """Probabilities [*S, K] float32 of an image [*S, C] (2 or 3 spatial axes) as the weighted
    average of ``predict`` over overlapping windows (see the module docstring for the padding).

    ``weighting='gaussian'`` trusts tile centres more than tile borders (``gaussian_weights``);
    ``'constant'`` averages the overlapping tiles equally.
    """
    image = np.asarray(image, dtype=np.float32)
    rank = _spatial_rank(image)
    window = tuple(int(w) for w in window)
    if len(window) != rank:
        raise ValueError(f"window {window} has {len(window)} axes, the image {rank} spatial axes")
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be positive")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting {weighting!r} must be one of {WEIGHTINGS}")
    starts = list(
        itertools.product(
            *(tile_starts(s, w, overlap) for s, w in zip(image.shape[:-1], window, strict=True))
        )
    )
    padded, crop = _pad_centred(
        image, [max(s, w) for s, w in zip(image.shape[:-1], window, strict=True)]
    )
    weights = gaussian_weights(window) if weighting == "gaussian" else np.ones(window, np.float32)
    weights = weights[..., None]
    batch_size = min(batch_size, len(starts))
    total = weight_sum = None
    for first in range(0, len(starts), batch_size):
        origins = starts[first : first + batch_size]
        tiles = [padded[_tile(o, window)] for o in origins]
        tiles += [np.zeros_like(tiles[0])] * (batch_size - len(tiles))
        outputs = _run(predict, np.stack(tiles))
        if total is None:
            total = np.zeros((*padded.shape[:-1], outputs.shape[-1]), dtype=np.float32)
            weight_sum = np.zeros((*padded.shape[:-1], 1), dtype=np.float32)
        for origin, out in zip(origins, outputs[: len(origins)], strict=True):
            total[_tile(origin, window)] += weights * out
            weight_sum[_tile(origin, window)] += weights
    return total[crop] / weight_sum[crop]


def _tile(origin: Sequence[int], window: Sequence[int]) -> tuple[slice, ...]:
    """Index of the window at ``origin`` in an [*S, C] array (all channels)."""
    return tuple(slice(o, o + w) for o, w in zip(origin, window, strict=True))
