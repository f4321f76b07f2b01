"""Autoencoder pretext (method 3): reconstruct the image through the encoder and a decoder that
gets no skip connections (model head 'reconstruction'), so the task cannot copy its input through
the skips; the encoder, bottleneck and decoder then transfer into the segmenter by name."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg import losses
from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, everything


def autoencoder(loss: str = "", info: DataInfo = DEFAULT_INFO) -> Task:
    """Reconstruction of ``image`` (loss 'mse'). Metrics per image: 'mse' and 'psnr' (dB, over
    the per-image dynamic range of the target)."""
    if loss not in ("", "mse"):
        raise ValueError(f"task 'autoencoder' has loss 'mse' only, got {loss!r}")

    def per_example(outputs: jax.Array, batch: Batch) -> jax.Array:
        return losses.mse(outputs, batch["image"])

    def metrics(outputs: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        image = batch["image"].reshape(len(batch["image"]), -1)
        err = per_example(outputs, batch)
        span = jnp.max(image, axis=1) - jnp.min(image, axis=1)
        psnr = 10.0 * jnp.log10(jnp.square(span) / jnp.maximum(err, 1e-12))
        return {"mse": err, "psnr": psnr}

    return Task(
        name="autoencoder",
        keys=("image",),
        head="reconstruction",
        outputs=info.image_channels,
        loss=per_example,
        metrics=metrics,
        usable=everything,
        primary="mse",
    )
