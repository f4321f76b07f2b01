"""Derive the contract arrays (normalised image, center, box, has_object) from raw images and masks.

Coordinates follow the pixel-centre convention: pixel (row r, col c) sits at (x, y) = (c, r); a
voxel (slice d, row r, col c) of a volume [N,D,H,W,...] sits at (x, y, z) = (c, r, d). A mask
voxel is foreground when its value is >= 0.5; multi-channel masks [N,*S,K] are unioned over K.
For an empty mask `has_object` is False and its center/box are zeros that must be ignored.
"""

from __future__ import annotations

import numpy as np


def _foreground(mask: np.ndarray, rank: int | None = None) -> np.ndarray:
    """Boolean foreground [N,*S] from a mask [N,*S] or [N,*S,K] (union over K).

    ``rank`` = len(S) (2 or 3). None infers it from the mask: [N,H,W], [N,H,W,K] or
    [N,D,H,W,K] (a 3D mask without its channel axis needs ``rank=3``).
    """
    mask = np.asarray(mask)
    if rank is None:
        rank = {3: 2, 4: 2, 5: 3}.get(mask.ndim, 0)
    if rank in (2, 3) and mask.ndim == rank + 2:
        return (mask >= 0.5).any(axis=-1)
    if rank in (2, 3) and mask.ndim == rank + 1:
        return mask >= 0.5
    raise ValueError(
        f"mask must have shape [N,H,W], [N,H,W,K] or [N,D,H,W,K] ([N,D,H,W] with rank=3), got "
        f"shape {mask.shape}; add or drop axes"
    )


def centers_from_masks(mask: np.ndarray, rank: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Foreground centroid per example.

    Args:
      mask: [N,H,W], [N,H,W,K] or [N,D,H,W,K] (see ``rank``), values in {0,1}.
      rank: number of spatial axes, 2 or 3; None infers it from the mask's shape.

    Returns:
      center: float32 [N,R] = (x, y) in 2D, (x, y, z) in 3D: the mean voxel index along W, H
        (and D) of the foreground (0 if empty).
      has_object: bool [N], False where the mask has no foreground voxel.
    """
    fg = _foreground(mask, rank)
    axes = tuple(range(1, fg.ndim))
    count = fg.sum(axis=axes, dtype=np.int64)
    has_object = count > 0
    denom = np.maximum(count, 1)
    center = []
    for axis in reversed(axes):  # x (W) first, then y (H), then z (D)
        profile = fg.sum(axis=tuple(a for a in axes if a != axis), dtype=np.int64)  # [N,size]
        center.append(profile @ np.arange(fg.shape[axis], dtype=np.int64) / denom)
    return np.stack(center, axis=1).astype(np.float32), has_object


def boxes_from_masks(mask: np.ndarray, rank: int | None = None) -> np.ndarray:
    """Inclusive foreground voxel extents per example.

    Args:
      mask: [N,H,W], [N,H,W,K] or [N,D,H,W,K] (see ``rank``), values in {0,1}.
      rank: number of spatial axes, 2 or 3; None infers it from the mask's shape.

    Returns:
      box: float32 [N,2R] = (x0, y0, x1, y1) in 2D, (x0, y0, z0, x1, y1, z1) in 3D: the min then
        max voxel index along W, H (and D); zeros if empty.
    """
    fg = _foreground(mask, rank)
    axes = tuple(range(1, fg.ndim))
    lows, highs = [], []
    for axis in reversed(axes):
        seen = fg.any(axis=tuple(a for a in axes if a != axis))  # [N,size]
        lows.append(seen.argmax(axis=1))
        highs.append(fg.shape[axis] - 1 - seen[:, ::-1].argmax(axis=1))
    box = np.stack(lows + highs, axis=1)
    box[~fg.any(axis=axes)] = 0
    return box.astype(np.float32)


def normalize_images(images: np.ndarray) -> np.ndarray:
    """Per-image standardisation so every image has zero mean and unit std.

    Args:
      images: [N,H,W,C] or [N,D,H,W,C] numeric. Statistics are taken over all axes but N
        jointly; a constant image (std 0) is only centred (divided by 1) rather than producing NaN.

    Returns:
      float32 of the input's shape.
    """
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(
            f"images must have shape [N,H,W,C] or [N,D,H,W,C], got shape {images.shape}"
        )
    x = images.astype(np.float32)
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    std = x.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (x - mean.astype(np.float32)) / std.astype(np.float32)


def contract_arrays(
    images: np.ndarray,
    masks: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None = None,
    spacing: np.ndarray | None = None,
    normalize: bool = True,
) -> dict[str, np.ndarray]:
    """Assemble the dataset dict (keys image, mask, center, box, has_object, label, group, and
    spacing when given).

    Args:
      images: [N,H,W,C] or [N,D,H,W,C] numeric; normalised per image here unless ``normalize``
        is False (e.g. CT in Hounsfield units, left for a ``ct_window`` preprocessing step).
      masks: [N,*S,K] in {0,1}, S as the images'.
      labels: [N] integer class ids.
      groups: [N] integer group ids, or None for one group per example (arange(N)).
      spacing: voxel size per spatial axis in array order (D,H,W / H,W), [R] for every example
        or [N,R]; None leaves the key out.
    """
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(
            f"images must have shape [N,H,W,C] or [N,D,H,W,C], got shape {images.shape}"
        )
    rank = images.ndim - 2
    center, has_object = centers_from_masks(masks, rank)
    n = len(center)
    arrays = {
        "image": normalize_images(images) if normalize else images.astype(np.float32),
        "mask": np.asarray(masks, dtype=np.float32),
        "center": center,
        "box": boxes_from_masks(masks, rank),
        "has_object": has_object,
        "label": np.asarray(labels, dtype=np.int32),
        "group": np.arange(n, dtype=np.int32) if groups is None else np.asarray(groups, np.int32),
    }
    if spacing is not None:
        spacing = np.asarray(spacing, np.float32)
        arrays["spacing"] = np.broadcast_to(spacing, (n, spacing.shape[-1])).copy()
    return arrays
