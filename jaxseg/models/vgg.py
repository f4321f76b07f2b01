"""VGG16 encoder (torchvision ``vgg16().features``; ``norm='batch'`` makes it ``vgg16_bn``).

Tree: ``stage_0 … stage_4`` with 2, 2, 3, 3, 3 convs (``conv_j``, ``norm_j``) of 64, 128, 256,
512, 512 channels; stage i works at 1/2^i resolution, with 2×2 max-pooling *between* stages
(torchvision's final pool is left to the model on top). Every conv has a bias, as in torchvision.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.layers import Norm
from jaxseg.models.resample import max_pool

STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))  # (channels, convs) per stage


class VGGStage(nn.Module):
    """``convs`` × (3×3 conv dilated by ``dilation``, norm, ReLU): [B,H,W,C] -> [B,H,W,features]."""

    features: int
    convs: int
    dilation: int = 1
    norm: str = "none"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        d = self.dilation
        for j in range(self.convs):
            x = nn.Conv(
                self.features,
                (3, 3),
                padding=((d, d), (d, d)),
                kernel_dilation=d,
                dtype=self.dtype,
                name=f"conv_{j}",
            )(x)
            x = Norm(self.norm, frozen=self.frozen, dtype=self.dtype, name=f"norm_{j}")(x, train)
            x = nn.relu(x)
        return x


class VGG16(nn.Module):
    """[B,H,W,C] -> the 5 stage outputs, stage i [B,H/2^i,W/2^i,STAGES[i][0]].

    ``output_stride`` 0 or 16 keeps the natural stride 16 of the deepest stage; 8 drops the pool
    before ``stage_4`` and dilates its convs by 2 instead (same parameter shapes).
    """

    norm: str = "none"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32
    output_stride: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> list[jax.Array]:
        if self.output_stride not in (0, 8, 16):
            raise ValueError(f"vgg16: output_stride={self.output_stride} must be 8 or 16")
        dilate = self.output_stride == 8
        x = x.astype(self.dtype)
        outputs = []
        for i, (features, convs) in enumerate(STAGES):
            dilation = 2 if dilate and i == len(STAGES) - 1 else 1
            if i > 0 and dilation == 1:
                x = max_pool(x)
            stage = VGGStage(
                features, convs, dilation, self.norm, self.frozen, self.dtype, name=f"stage_{i}"
            )
            x = stage(x, train)
            outputs.append(x)
        return outputs
