"""Binary / multi-label segmentation with a per-pixel sigmoid head."""

from __future__ import annotations

import jax

from jaxseg import losses
from jaxseg.eval.distances import host_metrics
from jaxseg.eval.metrics import segmentation_metrics
from jaxseg.tasks.base import Batch, Task, everything


def segmentation(loss: str = "", num_classes: int = 1) -> Task:
    """Segmentation into ``num_classes`` sigmoid channels; default loss -log soft Dice.

    Metrics: the jit-able overlap set (``eval.metrics``) plus, on the host, Hausdorff/HD95,
    boundary-length difference and adjusted Rand index in pixel units (``eval.distances``).
    """
    loss_fn = losses.get(loss or "neg_log_dice")

    def per_example(outputs: jax.Array, batch: Batch) -> jax.Array:
        return loss_fn(outputs, batch["mask"])

    def metrics(outputs: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        """Per-example {'dice', 'iou', 'miou', 'pixel_error', 'sensitivity', 'specificity'}."""
        return segmentation_metrics(outputs, batch["mask"])

    return Task(
        name="segmentation",
        keys=("image", "mask"),
        head="pixels",
        outputs=num_classes,
        loss=per_example,
        metrics=metrics,
        usable=everything,
        primary="dice",
        predict=lambda logits: logits >= 0.0,  # sigmoid >= 0.5
        host_metrics=lambda pred, batch: host_metrics(pred, batch["mask"] > 0.5),
    )
