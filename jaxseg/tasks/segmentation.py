"""Binary / multi-label segmentation with a per-pixel sigmoid head."""

from __future__ import annotations

import jax

from jaxseg import losses
from jaxseg.eval.metrics import segmentation_metrics
from jaxseg.tasks.base import Batch, Task, everything


def segmentation(loss: str = "", num_classes: int = 1) -> Task:
    """Segmentation into ``num_classes`` sigmoid channels; default loss -log soft Dice."""
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
    )
