"""DeepLabv3 over an ImageNet-style backbone (torchvision's ``deeplabv3`` without aux head).

Tree: ``encoder/stage_*`` (the backbone, deepest stages dilated to ``output_stride`` 8 or 16),
``decoder/aspp`` (ASPP to ``aspp_width`` channels), ``decoder/conv`` + ``decoder/norm`` (3×3,
norm, ReLU) and ``head`` (1×1 conv); the logits are bilinearly resized to the input size.
``aspp_rates`` are given for output stride 16; at stride 8 they double (6/12/18 -> 12/24/36),
as in the DeepLabv3 paper. ``model.width`` and ``model.dropout`` are not used (the ASPP has its
own dropout of 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import backbones
from jaxseg.models.aspp import ASPP
from jaxseg.models.layers import Norm, pooled_head

HEADS = ("pixels", "pooled")
OUTPUT_STRIDES = (8, 16)


class Decoder(nn.Module):
    """``aspp`` then ``conv`` 3×3 + ``norm`` + ReLU: [B,h,w,C] -> [B,h,w,features]."""

    rates: Sequence[int] = (6, 12, 18)
    features: int = 256
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        common = dict(norm=self.norm, frozen=self.frozen, dtype=self.dtype)
        x = ASPP(self.rates, self.features, **common, name="aspp")(x, train)
        x = nn.Conv(
            self.features, (3, 3), use_bias=self.norm == "none", dtype=self.dtype, name="conv"
        )(x)
        return nn.relu(Norm(self.norm, frozen=self.frozen, dtype=self.dtype, name="norm")(x, train))


class DeepLabV3(nn.Module):
    """[B,H,W,C] -> float32 logits [B,H,W,outputs] ('pixels') or [B,outputs] ('pooled': global
    average of the deepest encoder stage, then dense ``head``)."""

    encoder: nn.Module
    head_kind: str
    outputs: int
    rates: Sequence[int] = (6, 12, 18)
    aspp_width: int = 256
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        B, H, W, _ = x.shape
        y = self.encoder(x, train)[-1]
        if self.head_kind == "pooled":
            return pooled_head(y, self.outputs, self.dtype)
        decoder = Decoder(
            self.rates, self.aspp_width, self.norm, self.frozen, self.dtype, name="decoder"
        )
        y = nn.Conv(self.outputs, (1, 1), dtype=self.dtype, name="head")(decoder(y, train))
        y = jax.image.resize(y, (B, H, W, self.outputs), method="bilinear")
        return y.astype(jnp.float32)


def build(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str) -> nn.Module:
    """DeepLabv3 over ``cfg.backbone`` with a ``head`` ('pixels' | 'pooled') of ``outputs``
    channels; modules under the ``frozen`` path regex run in inference mode.
    """
    if head not in HEADS:
        raise ValueError(f"model 'deeplabv3' has no head {head!r}; use one of {HEADS}")
    if cfg.output_stride not in OUTPUT_STRIDES:
        raise ValueError(
            f"model.output_stride={cfg.output_stride!r} is not supported by deeplabv3; "
            f"use one of {OUTPUT_STRIDES}"
        )
    return DeepLabV3(
        encoder=backbones.backbone(cfg, frozen, cfg.output_stride),
        head_kind=head,
        outputs=outputs,
        rates=tuple(r * 16 // cfg.output_stride for r in cfg.aspp_rates),
        aspp_width=cfg.aspp_width,
        norm=cfg.norm,
        frozen=frozen,
        dtype=backbones.dtype(cfg),
    )
