"""Building blocks shared by every model: normalisation and dropout that a freeze plan puts in
inference mode, U-Net blocks.

Every model takes ``frozen``, a regex of frozen subtrees (``surgery.freeze.frozen_regex``, or a
``surgery.paths.selector``). A module is *frozen* when ``frozen`` ``re.match``es its path,
'/'-terminated ('encoder/stage_0/norm_0/bn/'), and runs in inference mode whatever ``train``
says, so a frozen subtree computes in training what it computes in evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.resample import UpConv

NORMS = ("batch", "group", "none")
UPSAMPLES = ("transpose", "resize")
# Conv-kernel initialisers by ``model.kernel_init`` name: LeCun normal (flax's default, variance
# 1/fan_in) or He normal (variance 2/fan_in, for ReLU nets; method 5 initialises so). Both draw
# from a truncated normal rescaled to that variance; fan_in = kernel window × input channels.
KERNEL_INITS = {"lecun": nn.initializers.lecun_normal(), "he": nn.initializers.he_normal()}


def kernel_initializer(name: str) -> nn.initializers.Initializer:
    """The initializer of conv kernels named ``name`` (``KERNEL_INITS``); ValueError otherwise."""
    if name not in KERNEL_INITS:
        raise ValueError(f"model.kernel_init={name!r} is unknown; use one of {list(KERNEL_INITS)}")
    return KERNEL_INITS[name]


def is_frozen(frozen: str, path: Sequence[str]) -> bool:
    """Whether the module at scope ``path`` (('encoder', 'stage_0')) lies in a subtree the
    ``frozen`` regex selects: ``re.match`` on 'encoder/stage_0/' ('' selects nothing)."""
    return bool(frozen) and re.match(frozen, "/".join(path) + "/") is not None


def dropout(parent: nn.Module, x: jax.Array, rate: float, train: bool, frozen: str) -> jax.Array:
    """``nn.Dropout(rate)`` applied inside ``parent`` (as its 'Dropout_k'; nothing if rate is 0).

    Active only when ``train`` and ``parent`` (the block applying it) is not frozen: a frozen
    block's output carries no dropout noise, so the modules after it learn on the features
    they are evaluated on.
    """
    if rate <= 0:
        return x
    off = not train or is_frozen(frozen, parent.scope.path)
    return nn.Dropout(rate, deterministic=off)(x)


class Norm(nn.Module):
    """BatchNorm, GroupNorm or identity.

    BatchNorm runs on its running averages when ``train`` is False *or* when it is frozen (its
    path '.../norm_i/bn/' matches ``frozen``): a frozen subtree keeps its statistics
    bit-identical, as the optimizer's freeze mask keeps its parameters.
    """

    kind: str = "batch"
    groups: int = 8
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.kind == "none":
            return x
        if self.kind == "group":
            groups = min(self.groups, x.shape[-1])
            return nn.GroupNorm(num_groups=groups, dtype=self.dtype, name="gn")(x)
        if self.kind == "batch":
            fixed = not train or is_frozen(self.frozen, (*self.scope.path, "bn"))
            return nn.BatchNorm(
                use_running_average=fixed, momentum=0.9, dtype=self.dtype, name="bn"
            )(x)
        raise ValueError(f"model.norm={self.kind!r} is unknown; use one of {NORMS}")


def upsample(
    x: jax.Array, features: int, mode: str, dtype: jnp.dtype, kernel_init: str = "lecun"
) -> jax.Array:
    """×2 up-sampling to ``features`` channels inside the calling module, as param ``up``.

    'transpose': a 2×2 stride-2 transposed conv; 'resize': bilinear resize then a 3×3 conv;
    its kernel initialised by ``kernel_init`` (``KERNEL_INITS``).
    """
    init = kernel_initializer(kernel_init)
    if mode == "transpose":
        return UpConv(features, dtype=dtype, kernel_init=init, name="up")(x)
    if mode == "resize":
        B, H, W, C = x.shape
        x = jax.image.resize(x, (B, 2 * H, 2 * W, C), method="bilinear")
        return nn.Conv(features, (3, 3), dtype=dtype, kernel_init=init, name="up")(x)
    raise ValueError(f"model.upsample={mode!r} is unknown; use one of {UPSAMPLES}")


def pooled_head(features: jax.Array, outputs: int, dtype: jnp.dtype) -> jax.Array:
    """The 'pooled' head inside the calling module, as param ``head``: global average over every
    spatial axis (in float32), then Dense: [B,*S,C] -> float32 [B,outputs]."""
    pooled = features.astype(jnp.float32).mean(axis=tuple(range(1, features.ndim - 1)))
    return nn.Dense(outputs, dtype=dtype, name="head")(pooled).astype(jnp.float32)


class ConvBlock(nn.Module):
    """One U-Net block: [optional ×2 up-sample + skip concat] then 2 × (3×3 conv, norm, ReLU).

    Encoder/bottleneck blocks: ``block(x, train)``, [B,H,W,Cin] -> [B,H,W,features].
    Decoder blocks set ``upsample`` and take the skip: ``block(x, train, skip)`` with x at half
    the skip's resolution -> [B,H_skip,W_skip,features]. Conv kernels start from
    ``kernel_init`` (``KERNEL_INITS``).
    """

    features: int
    norm: str = "batch"
    dropout: float = 0.0
    upsample: str = ""
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32
    kernel_init: str = "lecun"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, skip: jax.Array | None = None) -> jax.Array:
        if self.upsample:
            x = upsample(x, self.features, self.upsample, self.dtype, self.kernel_init)
            x = jnp.concatenate([skip.astype(x.dtype), x], axis=-1)
        for i in range(2):
            conv = nn.Conv(
                self.features,
                (3, 3),
                use_bias=self.norm == "none",
                dtype=self.dtype,
                kernel_init=kernel_initializer(self.kernel_init),
                name=f"conv_{i}",
            )
            norm = Norm(self.norm, frozen=self.frozen, dtype=self.dtype, name=f"norm_{i}")
            x = nn.relu(norm(conv(x), train))
        return dropout(self, x, self.dropout, train, self.frozen)
