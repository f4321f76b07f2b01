"""Post-processing of predicted probabilities [*S, K] (host-side numpy/scipy): thresholds,
connected components and fold ensembles."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def binarize(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Masks uint8 [*S, K]: 1 where probs [*S, K] >= threshold (inclusive, as the training
    metrics in ``jaxseg.eval.metrics`` count a positive)."""
    return (np.asarray(probs) >= threshold).astype(np.uint8)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """``mask`` [*S, K] (same dtype) keeping per channel only its largest connected component,
    removing spurious islands. Components connect through faces, edges and corners (full
    connectivity); ties go to the first by label (scan) order; an empty channel stays empty."""
    mask = np.asarray(mask)
    structure = ndimage.generate_binary_structure(mask.ndim - 1, mask.ndim - 1)
    out = np.zeros_like(mask)
    for k in range(mask.shape[-1]):
        labels, count = ndimage.label(mask[..., k] > 0, structure=structure)
        if count:
            largest = 1 + np.argmax(np.bincount(labels.ravel())[1:])
            out[..., k] = np.where(labels == largest, mask[..., k], 0)
    return out


def mean_probabilities(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean float32 [*S, K] of fold predictions [*S, K] of one image (a fold ensemble)."""
    if not probs:
        raise ValueError("mean_probabilities needs at least one prediction")
    arrays = [np.asarray(p, dtype=np.float32) for p in probs]
    for a in arrays[1:]:
        if a.shape != arrays[0].shape:
            raise ValueError(f"fold predictions have shapes {arrays[0].shape} and {a.shape}")
    return np.mean(arrays, axis=0, dtype=np.float32)
