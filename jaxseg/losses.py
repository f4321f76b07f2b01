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


def weighted_bce(logits: jax.Array, mask: jax.Array, pos_weight: float = 1.0) -> jax.Array:
    """Binary cross-entropy with foreground pixels weighted by ``pos_weight``: [B].

    ``pos_weight`` > 1 counters a small foreground (method 4's "weighted BCE"); the mean is
    over pixels and classes, so ``pos_weight`` = 1 is ``bce``.
    """
    log_p, log_not_p = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    loss = -(pos_weight * mask * log_p + (1.0 - mask) * log_not_p)
    return jnp.mean(loss.reshape(loss.shape[0], -1), axis=1)


def linear_weights(
    start: tuple[float, float], end: tuple[float, float], progress: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Weights moving linearly from ``start`` (progress 0) to ``end`` (progress 1, clipped)."""
    t = jnp.clip(progress, 0.0, 1.0)
    return tuple(a + (b - a) * t for a, b in zip(start, end, strict=True))


def bce_dice(
    logits: jax.Array,
    mask: jax.Array,
    progress: jax.Array,
    start: tuple[float, float] = (0.6, 0.4),
    end: tuple[float, float] = (0.4, 0.6),
    pos_weight: float = 1.0,
) -> jax.Array:
    """w_bce · weighted BCE + w_dice · (1 - soft Dice), (w_bce, w_dice) shifting linearly from
    ``start`` to ``end`` as training ``progress`` goes 0 → 1 (method 4: 0.6/0.4 at the start,
    BCE's weight falling as Dice's rises by the same amount): [B]."""
    w_bce, w_dice = linear_weights(start, end, progress)
    return w_bce * weighted_bce(logits, mask, pos_weight) + w_dice * dice_loss(logits, mask)


def with_background(mask: jax.Array) -> jax.Array:
    """K foreground channels -> K+1 one-hot channels, background (no class set) first."""
    background = 1.0 - jnp.clip(jnp.sum(mask, axis=-1, keepdims=True), 0.0, 1.0)
    return jnp.concatenate([background, mask], axis=-1)


def softmax_ce(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax cross-entropy per pixel, mean over pixels: logits [B,...,K+1] (background first),
    mask [B,...,K] one-hot foreground classes (none set = background): [B]."""
    loss = optax.softmax_cross_entropy(logits, with_background(mask))
    return jnp.mean(loss.reshape(loss.shape[0], -1), axis=1)


def softmax_dice(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """1 - soft Dice of the softmax probabilities of the K foreground classes, pooled: [B]."""
    prob = jax.nn.softmax(logits, axis=-1)[..., 1:].reshape(logits.shape[0], -1)
    mask = mask.reshape(mask.shape[0], -1)
    inter = jnp.sum(prob * mask, axis=1)
    dice = (2 * inter + SMOOTH) / (jnp.sum(prob, axis=1) + jnp.sum(mask, axis=1) + SMOOTH)
    return 1.0 - dice


def dice_ce(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax soft-Dice loss + softmax cross-entropy (K+1 logits, see ``softmax_ce``): [B]."""
    return softmax_dice(logits, mask) + softmax_ce(logits, mask)


def contrastive(
    emb_a: jax.Array, emb_b: jax.Array, same: jax.Array, margin: float = 1.0
) -> jax.Array:
    """Contrastive margin loss y·d² + (1−y)·max(0, m − d)², d = ‖a − b‖₂ (method 4): [B].

    ``emb_a``, ``emb_b`` [B,E]; ``same`` [B] is 1 for a same pair, 0 for a different one.
    """
    d = pair_distance(emb_a, emb_b)
    return same * jnp.square(d) + (1.0 - same) * jnp.square(jnp.maximum(margin - d, 0.0))


def pair_distance(emb_a: jax.Array, emb_b: jax.Array) -> jax.Array:
    """Euclidean distance per pair, with a gradient that stays finite at d = 0: [B]."""
    sq = jnp.sum(jnp.square(emb_a - emb_b), axis=-1)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


# Losses of (prediction, target) -> [B] selectable by name; 'ce' and 'dice_ce' expect K+1
# softmax logits (the segmentation task sizes its head accordingly).
LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mse": mse,
    "dice": dice_loss,
    "neg_log_dice": neg_log_dice,
    "bce": bce,
    "ce": softmax_ce,
    "dice_ce": dice_ce,
}
SOFTMAX = ("ce", "dice_ce")


def get(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The loss called ``name``; an unknown name is an error listing the known ones."""
    if name not in LOSSES:
        raise ValueError(f"loss {name!r} is unknown; use one of {sorted(LOSSES)}")
    return LOSSES[name]
