"""Segmentation: K sigmoid channels (binary / multi-label) or K+1 softmax channels (multi-class).

Losses by name: the sigmoid losses of ``jaxseg.losses`` ('neg_log_dice' default, 'dice', 'bce'),
'bce_dice' (method 4: weighted BCE + soft Dice, weights shifting linearly over training), and the
softmax losses 'ce' / 'dice_ce', for which the head gets a background channel first. A model that
also reconstructs its input (``model.reconstruct``: outputs {'logits', 'reconstruction'}) adds
``recon_weight`` · MSE(reconstruction, image) to the loss (method 4's regulariser).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import losses
from jaxseg.eval import summary
from jaxseg.eval.distances import host_metrics
from jaxseg.eval.metrics import segmentation_metrics
from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, carrying


def logits_of(outputs: Any) -> jax.Array:
    """The segmentation logits of a model's outputs (an array, or a dict with 'logits')."""
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def softmax_as_logits(logits: jax.Array) -> jax.Array:
    """K+1 softmax logits -> K pseudo-logits (+1 where the class is the argmax, -1 elsewhere), so
    the sigmoid-threshold metrics score the argmax prediction."""
    winner = jax.nn.one_hot(jnp.argmax(logits, axis=-1), logits.shape[-1])[..., 1:]
    return jnp.where(winner > 0, 1.0, -1.0)


def segmentation(
    loss: str = "",
    info: DataInfo = DEFAULT_INFO,
    pos_weight: float = 1.0,
    bce_dice_start: tuple[float, float] = (0.6, 0.4),
    bce_dice_end: tuple[float, float] = (0.4, 0.6),
    recon_weight: float = 0.1,
    name: str = "segmentation",
) -> Task:
    """Segmentation of the ``info.mask_channels`` classes of the batch's ``mask``.

    Metrics: the jit-able overlap set (``eval.metrics``) plus, on the host, Hausdorff/HD95,
    boundary-length difference and adjusted Rand index (``eval.distances``), in mm when the
    dataset has voxel ``spacing`` (then a batch key), else in pixels. Their means follow
    ``eval.summary``: the headline over images with foreground, empty ground truths apart, and
    per class when the dataset has ≥ 2 class names (``label`` is then a batch key).
    """
    loss = loss or "neg_log_dice"
    softmax = loss in losses.SOFTMAX
    if loss == "bce_dice":

        def base(logits: jax.Array, batch: Batch) -> jax.Array:
            return losses.bce_dice(
                logits,
                batch["mask"],
                batch.get("progress", 1.0),
                tuple(bce_dice_start),
                tuple(bce_dice_end),
                pos_weight,
            )

    elif loss == "bce" and pos_weight != 1.0:

        def base(logits: jax.Array, batch: Batch) -> jax.Array:
            return losses.weighted_bce(logits, batch["mask"], pos_weight)

    else:
        loss_fn = losses.get(loss)

        def base(logits: jax.Array, batch: Batch) -> jax.Array:
            return loss_fn(logits, batch["mask"])

    def per_example(outputs: Any, batch: Batch) -> jax.Array:
        value = base(logits_of(outputs), batch)
        if isinstance(outputs, dict) and "reconstruction" in outputs:
            value = value + recon_weight * losses.mse(outputs["reconstruction"], batch["image"])
        return value

    def scored(outputs: Any) -> jax.Array:
        logits = logits_of(outputs)
        return softmax_as_logits(logits) if softmax else logits

    def metrics(outputs: Any, batch: Batch) -> dict[str, jax.Array]:
        """Per-example ``eval.metrics.segmentation_metrics``."""
        return segmentation_metrics(scored(outputs), batch["mask"])

    def on_host(pred: np.ndarray, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The host metrics of ``eval.distances`` and the class id of each image."""
        out = host_metrics(pred, batch["mask"] > 0.5, batch.get("spacing"))
        return {**out, summary.LABEL: batch["label"].astype(np.float64)} if labelled else out

    labelled = len(info.class_names) > 1
    keys = ("image", "mask") + ("label",) * labelled + ("spacing",) * info.spacing
    return Task(
        name=name,
        keys=keys,
        head="pixels",
        outputs=info.mask_channels + (1 if softmax else 0),
        loss=per_example,
        metrics=metrics,
        primary=summary.HEADLINE,
        **carrying("mask"),
        predict=lambda outputs: scored(outputs) >= 0.0,  # sigmoid >= 0.5 / the argmax class
        host_metrics=on_host,
        summarize=lambda per_example: summary.summarize(per_example, info.class_names),
    )
