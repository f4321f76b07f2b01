"""Test-time augmentation by flips: average a model over mirrored copies of its input.

Built from ``jnp`` operations, so the wrapped function can itself be jitted as one program.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Predict = Callable[[jax.Array], jax.Array]


def _flip_subsets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes`` (the empty one, i.e. no flip, first): 2^len(axes) tuples."""
    return [c for n in range(len(axes) + 1) for c in itertools.combinations(axes, n)]


def flip_tta(predict: Predict, rank: int, axes: Sequence[int] | None = None) -> Predict:
    """``predict`` [B, *S, C] -> [B, *S, K] averaged over every subset of flips of the spatial
    axes ``axes`` (0..rank-1; all ``rank`` by default): each call flips the batch, predicts and
    flips the output back, so 2^len(axes) calls per batch.

    For a flip-equivariant ``predict`` (e.g. a pointwise one) the result equals ``predict``;
    otherwise it is the mean of the flipped-back predictions, which smooths away the model's
    orientation bias.
    """
    axes = tuple(range(rank)) if axes is None else tuple(axes)
    if rank < 1 or len(set(axes)) != len(axes) or not all(0 <= a < rank for a in axes):
        raise ValueError(f"flip axes {axes} must be distinct spatial axes in 0..{rank - 1}")
    subsets = _flip_subsets(axes)

    def averaged(batch: jax.Array) -> jax.Array:
        total = 0.0
        for subset in subsets:
            batch_axes = tuple(a + 1 for a in subset)  # axis 0 is the batch
            total = total + jnp.flip(predict(jnp.flip(batch, batch_axes)), batch_axes)
        return total / len(subsets)

    return averaged
