"""U-Net decoder over an ImageNet-style backbone (VGG16, ResNet50, ResNeXt50).

Tree: ``encoder/stage_0..stage_{n-1}`` (the backbone's n stages), ``bottleneck``,
``decoder/stage_i`` (models.unet.Decoder: ×2 up-sample as ``up``, concatenate encoder stage i,
ConvBlock) and ``head`` (1×1 conv). Widths: decoder stage i has width·2^i channels, the
bottleneck width·2^n (n = 5 for every backbone here).

Where the bottleneck sits depends on the backbone's stage 0 resolution:
- stage 0 at full resolution (VGG16, strides 1…16): one more 2×2 max-pool, then the bottleneck
  at stride 32, as the plain U-Net; decoder stages n-1 … 0, logits at the input size.
- stage 0 at stride 2 (ResNet, strides 2…32): the bottleneck on the deepest stage directly;
  decoder stages n-2 … 0 end at stride 2, and the logits are bilinearly resized ×2.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import backbones
from jaxseg.models.layers import ConvBlock, pooled_head
from jaxseg.models.resample import max_pool
from jaxseg.models.unet import Decoder

HEADS = ("pixels", "pooled", "reconstruction")
STRIDE = 32  # of the bottleneck: H and W must be multiples of it


class BackboneUNet(nn.Module):
    """[B,H,W,C] -> float32 logits [B,H,W,outputs] ('pixels', 'reconstruction') or
    [B,outputs] ('pooled': global average of the bottleneck, then dense ``head``).

    'reconstruction' is the 'pixels' network with zeros in place of every skip feature (same
    parameter shapes, so an autoencoder's decoder transfers into the segmenter by name).
    """

    encoder: nn.Module
    head_kind: str
    outputs: int
    width: int = 32
    norm: str = "batch"
    dropout: float = 0.0
    upsample: str = "transpose"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        B, H, W, _ = x.shape
        if H % STRIDE or W % STRIDE:
            raise ValueError(
                f"image size {H}x{W} is not divisible by {STRIDE} (the backbone U-Net's "
                "bottleneck stride); pad or resize the images"
            )
        features = self.encoder(x, train)
        skips, y = features, features[-1]
        if H // features[0].shape[1] == 1:  # stage 0 at full resolution: pool once more
            y = max_pool(y)
        else:
            skips = features[:-1]
        common = dict(norm=self.norm, dropout=self.dropout, frozen=self.frozen, dtype=self.dtype)
        y = ConvBlock(self.width * 2 ** len(features), **common, name="bottleneck")(y, train)
        if self.head_kind == "pooled":
            return pooled_head(y, self.outputs, self.dtype)
        if self.head_kind == "reconstruction":
            skips = [jnp.zeros_like(s) for s in skips]
        decoder = Decoder(
            depth=len(skips), width=self.width, upsample=self.upsample, **common, name="decoder"
        )
        y = nn.Conv(self.outputs, (1, 1), dtype=self.dtype, name="head")(decoder(y, skips, train))
        if y.shape[1:3] != (H, W):
            y = jax.image.resize(y, (B, H, W, self.outputs), method="bilinear")
        return y.astype(jnp.float32)


def build(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str) -> nn.Module:
    """The U-Net over ``cfg.backbone`` with a ``head`` ('pixels' | 'pooled' | 'reconstruction')
    of ``outputs`` channels; modules under the ``frozen`` path regex run in inference mode.
    """
    if head not in HEADS:
        raise ValueError(f"model 'unet' over a backbone has no head {head!r}; use one of {HEADS}")
    return BackboneUNet(
        encoder=backbones.backbone(cfg, frozen),
        head_kind=head,
        outputs=outputs,
        width=cfg.width,
        norm=cfg.norm,
        dropout=cfg.dropout,
        upsample=cfg.upsample,
        frozen=frozen,
        dtype=backbones.dtype(cfg),
    )
