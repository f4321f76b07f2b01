"""Per-example losses by name. Each maps (prediction, target) -> [B] so the caller can weight
padding examples out; segmentation losses take logits [B,H,W,K] and masks [B,H,W,K] in {0,1}."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

SMOOTH = 1.0  # added to Dice's numerator and denominator: an empty mask predicted empty scores 1


def mse(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Mean squared error over all but the batch axis: [B,...] -> [B]."""
    return jnp.mean(jnp.square(pred - target).reshape(pred.shape[0], -1), axis=1)


def soft_dice(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Soft Dice coefficient per image from sigmoid probabilities, classes pooled: -> [B]."""
    prob = jax.nn.sigmoid(logits).reshape(logits.shape[0], -1)
    mask = mask.reshape(mask.shape[0], -1)
    inter = jnp.sum(prob * mask, axis=1)
    return (2 * inter + SMOOTH) / (jnp.sum(prob, axis=1) + jnp.sum(mask, axis=1) + SMOOTH)


def dice_loss(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """1 - soft Dice: [B]."""
    return 1.0 - soft_dice(logits, mask)


def neg_log_dice(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """-log soft Dice (method 1's segmentation loss): [B]."""
    return -jnp.log(soft_dice(logits, mask))


def bce(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Binary cross-entropy from logits, mean over pixels and classes: [B]."""
    loss = optax.sigmoid_binary_cross_entropy(logits, mask)
    return jnp.mean(loss.reshape(loss.shape[0], -1), axis=1)


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": mse,
    "dice": dice_loss,
    "neg_log_dice": neg_log_dice,
    "bce": bce,
}


def get(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The loss called ``name``; an unknown name is an error listing the known ones."""
    if name not in LOSSES:
        raise ValueError(f"loss {name!r} is unknown; use one of {sorted(LOSSES)}")
    return LOSSES[name]
