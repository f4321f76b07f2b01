"""Centre localization (method 1's pretext): regress the target's (x, y) with a linear head.

The head predicts coordinates scaled to [-1, 1] over the image (so the loss does not depend on
image size); metrics are reported in pixels. It trains and evaluates on the examples that carry
a centre (``has_center``: stored, or derived from a non-empty mask); NaN centres never reach the
loss or the metrics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg import losses
from jaxseg.eval.metrics import center_error
from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, carrying


def _scale(batch: Batch) -> jax.Array:
    """(W, H) of the batch's images, (W, H, D) of volumes, as [R]."""
    return jnp.array(batch["image"].shape[1:-1][::-1], jnp.float32)


def to_pixels(outputs: jax.Array, batch: Batch) -> jax.Array:
    """Head output in [-1, 1] -> (x, y[, z]) in pixels: [B,R]."""
    return (outputs + 1) / 2 * _scale(batch)


HEADS = ("vector", "pooled")


def localization(loss: str = "", info: DataInfo = DEFAULT_INFO, head: str = "vector") -> Task:
    """Centre regression ((x, y), or (x, y, z) for volumes); default loss MSE (method 1).
    ``head`` 'vector' is method 1's linear layer on the flattened bottleneck features, 'pooled'
    a linear layer on their global average (``models.HEADS``)."""
    if head not in HEADS:
        raise ValueError(f"task 'localization': head={head!r} must be one of {HEADS}")
    loss_fn = losses.get(loss or "mse")

    def per_example(outputs: jax.Array, batch: Batch) -> jax.Array:
        return loss_fn(outputs, batch["center"] / _scale(batch) * 2 - 1)

    def metrics(outputs: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        return {"center_error": center_error(to_pixels(outputs, batch), batch["center"])}

    return Task(
        name="localization",
        keys=("image", "center", "has_object"),
        head=head,
        outputs=info.rank,
        loss=per_example,
        metrics=metrics,
        primary="center_error",
        **carrying("center"),
    )
