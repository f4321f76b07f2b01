"""ResNet50 / ResNeXt50-32x4d encoder (torchvision ``resnet50`` / ``resnext50_32x4d`` without
``avgpool`` and ``fc``), one bottleneck block with ``groups``.

Tree: ``stage_0`` = stem (``conv_0`` 7×7/2, ``norm_0``, ReLU; stride 2, 64 channels);
``stage_1`` = 3×3/2 max-pool + layer1 (stride 4, 256 ch); ``stage_2`` = layer2 (8, 512);
``stage_3`` = layer3 (16, 1024); ``stage_4`` = layer4 (32, 2048). Each layer holds
``block_b/{conv_0,norm_0,conv_1,norm_1,conv_2,norm_2}`` plus ``proj``/``proj_norm`` (the
shortcut projection) in its first block. Padding is explicit and symmetric as in torchvision
(flax's 'SAME' pads strided convs asymmetrically), so converted weights give torch's features.
Convs have no bias unless ``norm='none'``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.layers import Norm

BLOCKS = (3, 4, 6, 3)  # bottleneck blocks of layer1..layer4
PLANES = (64, 128, 256, 512)  # a block outputs 4·planes channels
EXPANSION = 4
DILATED_LAYERS = {0: 0, 16: 1, 8: 2}  # output_stride -> deepest layers whose stride is dilation


def conv_norm(
    x: jax.Array,
    train: bool,
    features: int,
    kernel: int,
    names: tuple[str, str],
    norm: str,
    frozen: str,
    dtype: jnp.dtype,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> jax.Array:
    """k×k conv (stride, dilation, groups; torch's padding dilation·(k-1)/2), then norm.

    Call inside a compact module: ``names`` = (conv name, norm name) in that module.
    """
    pad = dilation * (kernel - 1) // 2
    x = nn.Conv(
        features,
        (kernel, kernel),
        strides=stride,
        padding=((pad, pad), (pad, pad)),
        kernel_dilation=dilation,
        feature_group_count=groups,
        use_bias=norm == "none",
        dtype=dtype,
        name=names[0],
    )(x)
    return Norm(norm, frozen=frozen, dtype=dtype, name=names[1])(x, train)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3×3): [B,H,W,C] -> [B,H/s,W/s,4·planes].

    1×1 to ``width`` = planes·width_per_group/64·groups, 3×3 grouped (stride, dilation), 1×1 to
    4·planes; the shortcut is projected (``proj``, ``proj_norm``) when the shape changes.
    """

    planes: int
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    width_per_group: int = 64
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        width = int(self.planes * self.width_per_group / 64) * self.groups
        features = EXPANSION * self.planes
        common = dict(norm=self.norm, frozen=self.frozen, dtype=self.dtype)
        y = nn.relu(conv_norm(x, train, width, 1, ("conv_0", "norm_0"), **common))
        y = conv_norm(
            y,
            train,
            width,
            3,
            ("conv_1", "norm_1"),
            **common,
            stride=self.stride,
            dilation=self.dilation,
            groups=self.groups,
        )
        y = conv_norm(nn.relu(y), train, features, 1, ("conv_2", "norm_2"), **common)
        if self.stride != 1 or x.shape[-1] != features:
            names = ("proj", "proj_norm")
            x = conv_norm(x, train, features, 1, names, **common, stride=self.stride)
        return nn.relu(x + y)


class Stem(nn.Module):
    """``conv_0`` 7×7/2 (pad 3), ``norm_0``, ReLU: [B,H,W,C] -> [B,H/2,W/2,64]."""

    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        common = dict(norm=self.norm, frozen=self.frozen, dtype=self.dtype)
        return nn.relu(conv_norm(x, train, 64, 7, ("conv_0", "norm_0"), **common, stride=2))


class Layer(nn.Module):
    """[3×3/2 max-pool (pad 1) when ``pool``], then ``blocks`` Bottlenecks ``block_b``.

    The first block has ``stride`` and ``first_dilation``, the others ``dilation``.
    """

    planes: int
    blocks: int
    stride: int
    first_dilation: int
    dilation: int
    pool: bool = False
    groups: int = 1
    width_per_group: int = 64
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.pool:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        for b in range(self.blocks):
            x = Bottleneck(
                self.planes,
                self.stride if b == 0 else 1,
                self.first_dilation if b == 0 else self.dilation,
                self.groups,
                self.width_per_group,
                self.norm,
                self.frozen,
                self.dtype,
                name=f"block_{b}",
            )(x, train)
        return x


class ResNet(nn.Module):
    """[B,H,W,C] -> the 5 stage outputs (strides 2, 4, 8, 16, 32; 64, 256, 512, 1024, 2048 ch).

    ``groups``/``width_per_group``: 1/64 = ResNet50, 32/4 = ResNeXt50-32x4d. ``output_stride``
    16 (8) replaces the stride of layer4 (layer3 and layer4) by dilation, as torchvision's
    ``replace_stride_with_dilation``: a dilated layer's first block keeps the previous dilation.
    0 keeps the natural stride 32. Parameter shapes do not depend on it.
    """

    groups: int = 1
    width_per_group: int = 64
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32
    output_stride: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> list[jax.Array]:
        if self.output_stride not in DILATED_LAYERS:
            raise ValueError(f"resnet: output_stride={self.output_stride} must be 8 or 16")
        first_dilated = len(BLOCKS) - DILATED_LAYERS[self.output_stride]  # 0-based layer index
        common = dict(norm=self.norm, frozen=self.frozen, dtype=self.dtype)
        x = Stem(**common, name="stage_0")(x.astype(self.dtype), train)
        outputs = [x]
        dilation = 1
        for i, (planes, blocks) in enumerate(zip(PLANES, BLOCKS, strict=True)):
            stride, previous = (1 if i == 0 else 2), dilation
            if i >= first_dilated:
                dilation, stride = dilation * stride, 1
            x = Layer(
                planes,
                blocks,
                stride,
                previous,
                dilation,
                pool=i == 0,
                groups=self.groups,
                width_per_group=self.width_per_group,
                **common,
                name=f"stage_{i + 1}",
            )(x, train)
            outputs.append(x)
        return outputs
