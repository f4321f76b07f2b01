"""Pairs for siamese pretexts (method 4): draw (a, b, same) pairs from a per-item label (class,
or body side) with a chosen fraction of same-label pairs, and cut per-side crops around the
object in each half of an image (left/right kidney) so the pair task needs shape, not position.
"""

from __future__ import annotations

import numpy as np


def sample_pairs(
    labels: np.ndarray, num_pairs: int, same_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, same) index arrays [num_pairs] into ``labels`` [N].

    Anchors a cycle through a permutation of all items; for each, a partner b ≠ a is drawn
    uniformly from the items with the same label (same = 1) with probability ``same_fraction``,
    else from those with another label (same = 0). Deterministic in ``seed``.
    """
    labels = np.asarray(labels)
    if not 0.0 <= same_fraction <= 1.0:
        raise ValueError(f"same_fraction={same_fraction} must be in [0, 1]")
    values, counts = np.unique(labels, return_counts=True)
    if same_fraction > 0 and counts.max() < 2:
        raise ValueError(f"same pairs need a label shared by 2 items; labels {values.tolist()}")
    if same_fraction < 1 and len(values) < 2:
        raise ValueError(f"different pairs need 2 labels; every item has label {values[0]}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    anchors = np.concatenate([rng.permutation(n) for _ in range(-(-num_pairs // n))])[:num_pairs]
    same = rng.random(num_pairs) < same_fraction
    # anchors whose label has no other member must take a different partner (and vice versa)
    alone = counts[np.searchsorted(values, labels[anchors])] < 2
    same = np.where(alone, False, same) if len(values) > 1 else np.ones(num_pairs, bool)
    partners = np.empty(num_pairs, dtype=int)
    for i, (a, s) in enumerate(zip(anchors, same, strict=True)):
        pool = np.flatnonzero((labels == labels[a]) if s else (labels != labels[a]))
        pool = pool[pool != a]
        partners[i] = pool[rng.integers(len(pool))]
    return anchors, partners, same.astype(np.float32)


def side_crops(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops around the object in the left and right half (along W) of each image.

    ``image`` [N,*S,C], ``mask`` [N,*S,K] -> (crops [2N,*size,C], side [2N] (0 = left half of
    the array, 1 = right), item [2N] = source image index). ``size`` defaults to S // 2 per
    axis; each crop is centred on the foreground centroid of its half (the half's centre when
    the half is empty) and shifted to lie inside the image.
    """
    spatial = image.shape[1:-1]
    size = tuple(size) if size is not None else tuple(s // 2 for s in spatial)
    if len(size) != len(spatial) or any(c > s for c, s in zip(size, spatial, strict=True)):
        raise ValueError(f"crop size {size} does not fit images of spatial shape {spatial}")
    W = spatial[-1]
    fg = mask.max(axis=-1) > 0.5  # [N,*S]
    crops, sides, items = [], [], []
    for side, cols in ((0, slice(0, W // 2)), (1, slice(W // 2, W))):
        half = np.zeros_like(fg)
        half[..., cols] = True
        for n in range(len(image)):
            where = np.argwhere(fg[n] & half[n])
            if len(where) == 0:
                where = np.argwhere(half[n])
            centre = np.round(where.mean(axis=0)).astype(int)
            start = [
                int(np.clip(c - k // 2, 0, s - k))
                for c, k, s in zip(centre, size, spatial, strict=True)
            ]
            index = tuple(slice(a, a + k) for a, k in zip(start, size, strict=True))
            crops.append(image[n][index])
            sides.append(side)
            items.append(n)
    order = np.argsort(np.asarray(items) * 2 + np.asarray(sides), kind="stable")
    return (
        np.stack(crops)[order],
        np.asarray(sides, np.int32)[order],
        np.asarray(items)[order],
    )
