"""Derive the contract arrays (normalised image, center, box, has_object) from raw images and masks.

Coordinates follow the pixel-centre convention: pixel (row r, col c) sits at (x, y) = (c, r).
A mask pixel is foreground when its value is >= 0.5; multi-channel masks [N,H,W,K] are unioned
over K. For an empty mask `has_object` is False and its center/box are zeros that must be ignored.
"""

from __future__ import annotations

import numpy as np


def _foreground(mask: np.ndarray) -> np.ndarray:
    """Boolean foreground [N,H,W] from a mask [N,H,W] or [N,H,W,K] (union over K)."""
    mask = np.asarray(mask)
    if mask.ndim == 4:
        return (mask >= 0.5).any(axis=3)
    if mask.ndim == 3:
        return mask >= 0.5
    raise ValueError(
        f"mask must have shape [N,H,W] or [N,H,W,K], got shape {mask.shape}; add or drop axes"
    )


def centers_from_masks(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground centroid per example.

    Args:
      mask: [N,H,W] or [N,H,W,K], values in {0,1}.

    Returns:
      center: float32 [N,2] = (x, y) mean column and mean row of foreground pixels (0 if empty).
      has_object: bool [N], False where the mask has no foreground pixel.
    """
    fg = _foreground(mask)
    count = fg.sum(axis=(1, 2), dtype=np.int64)
    has_object = count > 0
    rows = fg.sum(axis=2, dtype=np.int64)  # [N,H] foreground pixels per row
    cols = fg.sum(axis=1, dtype=np.int64)  # [N,W] foreground pixels per column
    sum_y = rows @ np.arange(fg.shape[1], dtype=np.int64)
    sum_x = cols @ np.arange(fg.shape[2], dtype=np.int64)
    denom = np.maximum(count, 1)
    center = np.stack([sum_x / denom, sum_y / denom], axis=1)
    return center.astype(np.float32), has_object


def boxes_from_masks(mask: np.ndarray) -> np.ndarray:
    """Inclusive foreground pixel extents per example.

    Args:
      mask: [N,H,W] or [N,H,W,K], values in {0,1}.

    Returns:
      box: float32 [N,4] = (x0, y0, x1, y1) = (min col, min row, max col, max row); zeros if empty.
    """
    fg = _foreground(mask)
    H, W = fg.shape[1:]
    row_any = fg.any(axis=2)  # [N,H]
    col_any = fg.any(axis=1)  # [N,W]
    has_object = row_any.any(axis=1)
    y0 = row_any.argmax(axis=1)
    y1 = H - 1 - row_any[:, ::-1].argmax(axis=1)
    x0 = col_any.argmax(axis=1)
    x1 = W - 1 - col_any[:, ::-1].argmax(axis=1)
    box = np.stack([x0, y0, x1, y1], axis=1)
    box[~has_object] = 0
    return box.astype(np.float32)


def normalize_images(images: np.ndarray) -> np.ndarray:
    """Per-image standardisation so every image has zero mean and unit std.

    Args:
      images: [N,H,W,C] numeric. Statistics are taken over H, W and C jointly; a constant image
        (std 0) is only centred (divided by 1) rather than producing NaN.

    Returns:
      float32 [N,H,W,C].
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must have shape [N,H,W,C], got shape {images.shape}")
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True, dtype=np.float64)
    std = x.std(axis=(1, 2, 3), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (x - mean.astype(np.float32)) / std.astype(np.float32)


def contract_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Assemble the dataset dict (keys image, mask, center, box, has_object, label, group).

    Args:
      images: [N,H,W,C] numeric; normalised per image here.
      masks: [N,H,W,K] in {0,1}.
      labels: [N] integer class ids.
      groups: [N] integer group ids, or None for one group per example (arange(N)).
    """
    center, has_object = centers_from_masks(masks)
    n = len(center)
    return {
        "image": normalize_images(images),
        "mask": np.asarray(masks, dtype=np.float32),
        "center": center,
        "box": boxes_from_masks(masks),
        "has_object": has_object,
        "label": np.asarray(labels, dtype=np.int32),
        "group": np.arange(n, dtype=np.int32) if groups is None else np.asarray(groups, np.int32),
    }
