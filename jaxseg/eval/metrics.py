"""Per-example evaluation metrics, jit-able: each returns [B] so padding can be weighted out.

Segmentation metrics take ``logits`` [B,...,K] (any spatial rank: [B,H,W,K] or [B,D,H,W,K])
and a ``mask`` of the same shape in {0,1} (soft masks are thresholded at 0.5). A pixel is
predicted positive where ``sigmoid(logits) >= threshold`` (inclusive). "Classes pooled" means
every (pixel, class) pair counts as one binary decision.

Empty-case conventions (all per example):

- ``dice_at``/``iou_at`` (pooled) and each class of ``mean_iou_at``: prediction and mask both
  empty -> 1 (nothing to find, nothing found); exactly one empty -> 0.
- ``sensitivity``: no positive in the mask (TP + FN = 0) -> 1 (nothing to find, nothing missed).
- ``specificity``: no negative in the mask (TN + FP = 0) -> 1 (no false alarm possible).

These per-image conventions flatter an empty ground truth (an empty prediction scores Dice 1),
so ``segmentation_metrics`` also returns ``empty_truth`` and ``predicted_foreground`` (1/0 per
image) and ``eval.summary`` averages the overlap metrics over images with foreground apart from
the empty-ground-truth images.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _binarize(logits: jax.Array, mask: jax.Array, threshold: float) -> tuple[jax.Array, jax.Array]:
    """Boolean prediction and mask: [B,...] each (sigmoid >= threshold; mask > 0.5)."""
    return jax.nn.sigmoid(logits) >= threshold, mask > 0.5


def _pooled(x: jax.Array) -> jax.Array:
    """Flatten everything but the batch axis: [B,...] -> [B,N]."""
    return x.reshape(x.shape[0], -1)


def _per_class(x: jax.Array) -> jax.Array:
    """Flatten the spatial axes, keeping batch and class: [B,...,K] -> [B,N,K]."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _confusion(
    pred: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(TP, FP, FN, TN) counts over axis 1 of boolean [B,N,...] -> each [B,...] (int32)."""
    tp = jnp.sum(pred & mask, axis=1)
    fp = jnp.sum(pred & ~mask, axis=1)
    fn = jnp.sum(~pred & mask, axis=1)
    tn = jnp.sum(~pred & ~mask, axis=1)
    return tp, fp, fn, tn


def _ratio(num: jax.Array, den: jax.Array, empty: float) -> jax.Array:
    """num / den as float32, ``empty`` where den == 0 (same shape)."""
    return jnp.where(den == 0, empty, num / jnp.maximum(den, 1)).astype(jnp.float32)


def dice_at(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Hard Dice per image at a probability threshold, classes pooled: [B,...,K] -> [B].

    Both prediction and mask empty -> 1 (nothing to find, nothing found); exactly one empty -> 0.
    """
    pred = (jax.nn.sigmoid(logits) >= threshold).reshape(logits.shape[0], -1)
    mask = mask.reshape(mask.shape[0], -1) > 0.5
    inter = jnp.sum(pred & mask, axis=1)
    total = jnp.sum(pred, axis=1) + jnp.sum(mask, axis=1)
    return jnp.where(total == 0, 1.0, 2.0 * inter / jnp.maximum(total, 1))


def iou_at(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Jaccard index |P ∩ M| / |P ∪ M| per image, classes pooled: [B,...,K] -> [B].

    Both prediction and mask empty -> 1; exactly one empty -> 0 (as ``dice_at``).
    """
    pred, mask = _binarize(logits, mask, threshold)
    tp, fp, fn, _ = _confusion(_pooled(pred), _pooled(mask))
    return _ratio(tp, tp + fp + fn, 1.0)


def mean_iou_at(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Mean over the K channels of the per-class Jaccard index: [B,...,K] -> [B].

    Each class is scored on its own channel (both empty -> 1, exactly one empty -> 0), then the
    K values are averaged with equal weight. Background is not added as a class: the mIoU over
    the classes of a K-class problem is this with the K foreground channels. For K = 1 it
    equals ``iou_at``.
    """
    pred, mask = _binarize(logits, mask, threshold)
    tp, fp, fn, _ = _confusion(_per_class(pred), _per_class(mask))  # [B,K] each
    return jnp.mean(_ratio(tp, tp + fp + fn, 1.0), axis=-1)


def pixel_error(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Percentage (0–100) of wrong (pixel, class) decisions per image: [B,...,K] -> [B]."""
    pred, mask = _binarize(logits, mask, threshold)
    wrong = jnp.sum(_pooled(pred != mask), axis=1)
    return (100.0 * wrong / _pooled(mask).shape[1]).astype(jnp.float32)


def sensitivity(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Recall TP / (TP + FN) per image, classes pooled: [B,...,K] -> [B].

    An empty mask (TP + FN = 0) -> 1: nothing to find, nothing missed.
    """
    pred, mask = _binarize(logits, mask, threshold)
    tp, _, fn, _ = _confusion(_pooled(pred), _pooled(mask))
    return _ratio(tp, tp + fn, 1.0)


def specificity(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """True-negative rate TN / (TN + FP) per image, classes pooled: [B,...,K] -> [B].

    A mask with no negative (TN + FP = 0) -> 1: no false alarm was possible.
    """
    pred, mask = _binarize(logits, mask, threshold)
    _, fp, _, tn = _confusion(_pooled(pred), _pooled(mask))
    return _ratio(tn, tn + fp, 1.0)


def segmentation_metrics(
    logits: jax.Array, mask: jax.Array, threshold: float = 0.5
) -> dict[str, jax.Array]:
    """All jit-able segmentation metrics at ``threshold``: [B,...,K] -> {name: [B]}.

    Keys: 'dice', 'iou', 'miou', 'pixel_error' (%), 'sensitivity', 'specificity', and the
    indicators 'empty_truth' (1 where the mask has no foreground) and 'predicted_foreground' (1
    where the prediction has any), which ``eval.summary`` uses to separate empty ground truths.
    """
    pred, truth = _binarize(logits, mask, threshold)
    return {
        "dice": dice_at(logits, mask, threshold),
        "iou": iou_at(logits, mask, threshold),
        "miou": mean_iou_at(logits, mask, threshold),
        "pixel_error": pixel_error(logits, mask, threshold),
        "sensitivity": sensitivity(logits, mask, threshold),
        "specificity": specificity(logits, mask, threshold),
        "empty_truth": (~jnp.any(_pooled(truth), axis=1)).astype(jnp.float32),
        "predicted_foreground": jnp.any(_pooled(pred), axis=1).astype(jnp.float32),
    }


def center_error(pred: jax.Array, center: jax.Array) -> jax.Array:
    """Euclidean distance between predicted and true centres in pixels/voxels: [B,R] -> [B]
    ((x, y) in 2D, (x, y, z) in 3D)."""
    return jnp.sqrt(jnp.sum(jnp.square(pred - center), axis=-1))
