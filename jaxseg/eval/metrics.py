"""Per-example evaluation metrics, jit-able: each returns [B] so padding can be weighted out."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def dice_at(logits: jax.Array, mask: jax.Array, threshold: float = 0.5) -> jax.Array:
    """Hard Dice per image at a probability threshold, classes pooled: [B,H,W,K] -> [B].

    Both prediction and mask empty -> 1 (nothing to find, nothing found); exactly one empty -> 0.
    """
    pred = (jax.nn.sigmoid(logits) >= threshold).reshape(logits.shape[0], -1)
    mask = mask.reshape(mask.shape[0], -1) > 0.5
    inter = jnp.sum(pred & mask, axis=1)
    total = jnp.sum(pred, axis=1) + jnp.sum(mask, axis=1)
    return jnp.where(total == 0, 1.0, 2.0 * inter / jnp.maximum(total, 1))


def center_error(pred: jax.Array, center: jax.Array) -> jax.Array:
    """Euclidean distance between predicted and true (x, y) centres in pixels: [B,2] -> [B]."""
    return jnp.sqrt(jnp.sum(jnp.square(pred - center), axis=-1))
