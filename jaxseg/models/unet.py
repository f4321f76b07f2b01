"""2D U-Net and the localizer that shares its encoder, on the parameter-tree contract.

Tree for depth L: ``encoder/stage_0..stage_{L-1}`` (stage i at 1/2^i resolution), ``bottleneck``
(1/2^L), ``decoder/stage_{L-1}..stage_0`` (decoder stage i outputs at 1/2^i) and ``head``: the
2·L+1 blocks along the longest path. The localizer builds the same ``encoder`` and
``bottleneck`` modules, so both transfer by name into the U-Net.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.layers import ConvBlock, kernel_initializer, pooled_head
from jaxseg.models.resample import max_pool


class Stages(nn.Module):
    """Fields shared by the U-Net's parts; ``block(level)`` has width·2^level channels."""

    depth: int = 4
    width: int = 32
    norm: str = "batch"
    dropout: float = 0.0
    frozen: str = ""  # regex of frozen subtrees: inference mode there (layers.is_frozen)
    dtype: jnp.dtype = jnp.float32
    kernel_init: str = "lecun"  # conv kernels: layers.KERNEL_INITS (dense heads stay LeCun)

    def shared(self) -> dict:
        """The shared fields, to build a part (encoder, decoder) with the same settings."""
        fields = ("depth", "width", "norm", "dropout", "frozen", "dtype", "kernel_init")
        return {f: getattr(self, f) for f in fields}

    def block(self, level: int, name: str, upsample: str = "") -> ConvBlock:
        return ConvBlock(
            self.width * 2**level,
            self.norm,
            self.dropout,
            upsample,
            self.frozen,
            self.dtype,
            self.kernel_init,
            name=name,
        )


class Encoder(Stages):
    """Contracting path: [B,H,W,C] -> (pooled deepest features, skips [stage_0..stage_{L-1}])."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, list[jax.Array]]:
        H, W = x.shape[-3:-1]
        if H % 2**self.depth or W % 2**self.depth:
            raise ValueError(
                f"image size {H}x{W} is not divisible by 2^depth={2**self.depth}; "
                "pad or resize the images, or lower model.depth"
            )
        x = x.astype(self.dtype)
        skips = []
        for i in range(self.depth):
            x = self.block(i, f"stage_{i}")(x, train)
            skips.append(x)
            x = max_pool(x)
        return x, skips


class Decoder(Stages):
    """Expanding path: stage i up-samples, concatenates skip i and outputs at 1/2^i."""

    upsample: str = "transpose"

    @nn.compact
    def __call__(self, x: jax.Array, skips: list[jax.Array], train: bool) -> jax.Array:
        for i in reversed(range(self.depth)):
            x = self.block(i, f"stage_{i}", self.upsample)(x, train, skips[i])
        return x


class UNet(Stages):
    """U-Net: [B,H,W,C] -> logits [B,H,W,num_classes] float32 (the task applies the sigmoid).

    ``skips=False`` feeds the decoder zeros in place of the encoder's features (same parameter
    shapes): an autoencoder whose decoder transfers into the segmenter by name.
    """

    num_classes: int = 1
    upsample: str = "transpose"
    skips: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x, skips = Encoder(**self.shared(), name="encoder")(x, train)
        if not self.skips:
            skips = [jnp.zeros_like(s) for s in skips]
        x = self.block(self.depth, "bottleneck")(x, train)
        x = Decoder(**self.shared(), upsample=self.upsample, name="decoder")(x, skips, train)
        init = kernel_initializer(self.kernel_init)
        logits = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, kernel_init=init, name="head")(
            x
        )
        return logits.astype(jnp.float32)


class Localizer(Stages):
    """Encoder + bottleneck + linear head: [B,H,W,C] -> [B,num_outputs] (e.g. centre (x, y))."""

    num_outputs: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x, _ = Encoder(**self.shared(), name="encoder")(x, train)
        x = self.block(self.depth, "bottleneck")(x, train)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_outputs, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class Classifier(Stages):
    """Encoder + bottleneck + global average pool + linear head: [B,H,W,C] -> [B,num_outputs]
    (image classes, or siamese embeddings); unlike the localizer it fits any image size."""

    num_outputs: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        x, _ = Encoder(**self.shared(), name="encoder")(x, train)
        x = self.block(self.depth, "bottleneck")(x, train)
        return pooled_head(x, self.num_outputs, self.dtype)
