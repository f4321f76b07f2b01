"""Method 4's rank-generic dense U-Net: dense encoder, plain decoder, reconstruction branch.

The same code builds 2D ([B,H,W,C]) and 3D ([B,D,H,W,C]) nets; the rank comes from the input
(kernels are (3,)*rank). Every conv is a pre-activation *unit* ``GroupNorm -> ReLU -> conv``
(children ``norm/gn`` and ``conv``; the stem skips the ReLU so the image keeps its sign),
so a GroupNorm precedes every conv (method 4: "all convolutional layers are preceded by a
Group norm layer"). With L = len(dense_layers) and w = width, the tree is:

- ``encoder/stage_i`` (works at 1/2^i, takes w·2^i channels): ``stem`` (3×3, C -> w; stage 0
  only), ``layer_0 … layer_{n_i-1}`` (dense layers: unit to ``growth`` channels concatenated
  to its input, so the block outputs w·2^i + n_i·growth channels: the U-Net skip), ``down``
  (3×3 stride-2 unit keeping that count) and ``reduce`` (1×1 unit to w·2^(i+1) channels, which
  combines the features and reduces them wherever the dense block outgrew the contract's widths).
- ``bottleneck`` (1/2^L, w·2^L channels): ``unit_0``, ``unit_1`` (3×3).
- ``decoder/stage_i`` (i = L-1 … 0, outputs w·2^i channels at 1/2^i): ``up`` (2×2 stride-2
  transposed-conv unit), concatenation of encoder stage i's skip, ``unit_0``, ``unit_1`` (3×3).
- ``head``: 1×1 unit to the outputs (float32 logits at the input resolution).
- ``reconstruction/stage_i`` like the decoder without skips, and ``reconstruction/head`` (1×1
  unit to the input's channel count): the autoencoder branch method 4 uses as a regulariser.

Dropout (``dropout`` > 0, training only) follows each dense layer's new features and ends each
bottleneck, decoder and reconstruction block, unless that block is frozen (``frozen``,
``layers.dropout``). GroupNorm keeps no batch statistics, so dropout is all a freeze plan
switches off here.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxseg.models import dtypes
from jaxseg.models.conv import Conv
from jaxseg.models.layers import Norm, dropout, pooled_head
from jaxseg.models.resample import UpConv

HEADS = ("pixels", "pooled", "reconstruction")


def divisor_groups(groups: int, channels: int) -> int:
    """The largest group count <= ``groups`` that divides ``channels`` (GroupNorm needs one)."""
    return next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0)


class Unit(nn.Module):
    """GroupNorm -> ReLU -> conv: [B,*S,Cin] -> [B,*S/stride,features] (×2 when ``transpose``).

    ``kernel`` and ``stride`` apply along every spatial axis; ``transpose`` makes the conv a
    2-wide stride-2 transposed conv (×2 up-sampling); ``relu=False`` leaves the ReLU out.
    """

    features: int
    kernel: int = 3
    stride: int = 1
    groups: int = 8
    relu: bool = True
    transpose: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        groups = divisor_groups(self.groups, x.shape[-1])
        x = Norm("group", groups=groups, dtype=self.dtype, name="norm")(x, train=False)
        if self.relu:
            x = nn.relu(x)
        if self.transpose:
            return UpConv(self.features, dtype=self.dtype, name="conv")(x)
        return Conv(self.features, self.kernel, self.stride, dtype=self.dtype, name="conv")(x)


class Settings(nn.Module):
    """Fields shared by the encoder, the decoders and the whole net."""

    growth: int = 16
    dense_layers: tuple[int, ...] = (2, 2, 4, 8)
    width: int = 16
    groups: int = 8
    dropout: float = 0.0
    remat: bool = False
    frozen: str = ""  # regex of frozen subtrees: their dropout is off (layers.dropout)
    dtype: Any = jnp.float32

    def shared(self) -> dict:
        """The shared fields, to build a part with the same settings."""
        names = ("growth", "dense_layers", "width", "groups", "dropout", "remat", "frozen", "dtype")
        return {f: getattr(self, f) for f in names}

    def unit(self, features: int, name: str, **kwargs: Any) -> Unit:
        return Unit(features, groups=self.groups, dtype=self.dtype, name=name, **kwargs)

    def stage(self, cls: type[nn.Module]) -> type[nn.Module]:
        """``cls`` (a module called as ``(x, train, ...)``), rematerialised when ``remat``: its
        activations are recomputed in the backward pass instead of kept, one stage at a time."""
        return nn.remat(cls, static_argnums=(2,)) if self.remat else cls

    def drop(self, x: jax.Array, train: bool) -> jax.Array:
        return dropout(self, x, self.dropout, train, self.frozen)


class EncoderStage(Settings):
    """Encoder stage ``level``: [stem], dense block (the skip), stride-2 ``down``, 1×1 ``reduce``.

    [B,*S,w·2^i] ([B,*S,C] at stage 0) -> (features [B,*S/2,w·2^(i+1)], skip [B,*S,w·2^i +
    n_i·growth]).
    """

    level: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
        if self.level == 0:
            x = self.unit(self.width, "stem", relu=False)(x)
        for j in range(self.dense_layers[self.level]):
            new = Unit(self.growth, groups=self.groups, dtype=self.dtype, name=f"layer_{j}")(x)
            x = jnp.concatenate([x, self.drop(new, train)], axis=-1)
        skip = x
        x = self.unit(x.shape[-1], "down", stride=2)(x)
        return self.unit(self.width * 2 ** (self.level + 1), "reduce", kernel=1)(x), skip


class Block(Settings):
    """Plain block: [×2 ``up`` (transposed), concatenated skip], ``unit_0``, ``unit_1`` (3×3).

    [B,*S,Cin] -> [B,*S,features] ([B,*2S,features] with ``upsample``).
    """

    features: int = 16
    upsample: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, skip: jax.Array | None = None) -> jax.Array:
        if self.upsample:
            x = self.unit(self.features, "up", transpose=True)(x)
        if skip is not None:
            x = jnp.concatenate([skip.astype(x.dtype), x], axis=-1)
        for j in range(2):
            x = self.unit(self.features, f"unit_{j}")(x)
        return self.drop(x, train)


class Encoder(Settings):
    """Dense encoder: [B,*S,C] -> (features [B,*S/2^L,w·2^L], skips [stage_0 … stage_{L-1}])."""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, list[jax.Array]]:
        skips = []
        for i in range(len(self.dense_layers)):
            x, skip = self.stage(EncoderStage)(**self.shared(), level=i, name=f"stage_{i}")(
                x, train
            )
            skips.append(skip)
        return x, skips


class Decoder(Settings):
    """Plain decoder: stage i (deepest first) up-samples ×2, concatenates skip i and outputs
    w·2^i channels at 1/2^i: [B,*S/2^L,w·2^L] -> [B,*S,w]."""

    @nn.compact
    def __call__(self, x: jax.Array, skips: list[jax.Array], train: bool) -> jax.Array:
        for i in reversed(range(len(self.dense_layers))):
            block = self.stage(Block)(**self.shared(), features=self.width * 2**i,
                                      upsample=True, name=f"stage_{i}")  # fmt: skip
            x = block(x, train, skips[i])
        return x


class Reconstruction(Settings):
    """Autoencoder branch: skip-free ``stage_{L-1} … stage_0`` (as the decoder) and a 1×1
    ``head`` unit: [B,*S/2^L,w·2^L] -> float32 [B,*S,outputs]."""

    outputs: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i in reversed(range(len(self.dense_layers))):
            block = self.stage(Block)(**self.shared(), features=self.width * 2**i,
                                      upsample=True, name=f"stage_{i}")  # fmt: skip
            x = block(x, train)
        return self.unit(self.outputs, "head", kernel=1)(x).astype(jnp.float32)


class DenseUNet(Settings):
    """The whole net; ``head`` picks the output (module docstring, ``build``).

    'pixels' -> logits [B,*S,outputs] (or, with ``reconstruct``, {'logits', 'reconstruction'
    [B,*S,C]}); 'pooled' -> [B,outputs] (global average pool of the bottleneck + Dense
    ``head``); 'reconstruction' -> the reconstruction branch [B,*S,outputs] alone. All float32.
    ``rank`` (2 or 3), when set, must match the input's.
    """

    head: str = "pixels"
    outputs: int = 1
    reconstruct: bool = False
    rank: int | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array | dict[str, jax.Array]:
        if self.head not in HEADS:
            raise ValueError(f"model 'densenet' has no head kind {self.head!r}; use one of {HEADS}")
        rank = x.ndim - 2
        if rank not in (2, 3) or (self.rank is not None and rank != self.rank):
            want = "2 or 3" if self.rank is None else str(self.rank)
            raise ValueError(
                f"densenet input {x.shape} has {rank} spatial axes, expected {want} "
                "([B,H,W,C] or [B,D,H,W,C])"
            )
        factor = 2 ** len(self.dense_layers)
        if any(s % factor for s in x.shape[1:-1]):
            raise ValueError(
                f"densenet input spatial size {x.shape[1:-1]} is not divisible by "
                f"2^len(dense_layers)={factor}; pad the inputs (data.pad_multiple) or use fewer "
                "dense blocks"
            )
        channels = x.shape[-1]
        x = x.astype(self.dtype)
        features, skips = Encoder(**self.shared(), name="encoder")(x, train)
        bottleneck = self.stage(Block)(
            **self.shared(), features=self.width * factor, name="bottleneck"
        )
        features = bottleneck(features, train)
        if self.head == "pooled":
            return pooled_head(features, self.outputs, self.dtype)
        if self.head == "reconstruction":
            return self.reconstruction(features, self.outputs, train)
        y = Decoder(**self.shared(), name="decoder")(features, skips, train)
        logits = self.unit(self.outputs, "head", kernel=1)(y).astype(jnp.float32)
        if not self.reconstruct:
            return logits
        return {"logits": logits, "reconstruction": self.reconstruction(features, channels, train)}

    def reconstruction(self, features: jax.Array, outputs: int, train: bool) -> jax.Array:
        """The skip-free decoder from the bottleneck features to ``outputs`` channels (float32)."""
        return Reconstruction(**self.shared(), outputs=outputs, name="reconstruction")(
            features, train
        )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
    return value


def build(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str = "") -> nn.Module:
    """The dense U-Net of ``cfg`` with a ``head`` of ``outputs`` channels.

    ``cfg`` fields: ``width``, ``dropout``, ``dtype`` ('float32' | 'bfloat16' | 'float16') and,
    with defaults, ``growth`` (16), ``dense_layers`` ((2, 2, 4, 8)), ``groups`` (8),
    ``reconstruct`` (False), ``remat`` (False: ``nn.remat`` every encoder stage and decoder block
    to save memory: the backward pass recomputes a stage's activations from its input).
    ``frozen`` is the regex of frozen subtrees, whose dropout is off (GroupNorm has no
    statistics to freeze).
    """
    if head not in HEADS:
        raise ValueError(f"model 'densenet' has no head kind {head!r}; use one of {HEADS}")
    compute_dtype = dtypes.dtype(cfg.dtype)
    dense_layers = tuple(cfg.get("dense_layers", (2, 2, 4, 8)))
    if not dense_layers:
        raise ValueError("model.dense_layers must list at least one dense block")
    for n in dense_layers:
        _positive_int("dense_layers entries", n)
    return DenseUNet(
        growth=_positive_int("growth", cfg.get("growth", 16)),
        dense_layers=dense_layers,
        width=_positive_int("width", cfg.width),
        groups=_positive_int("groups", cfg.get("groups", 8)),
        dropout=float(cfg.dropout),
        remat=bool(cfg.get("remat", False)),
        frozen=frozen,
        dtype=compute_dtype,
        head=head,
        outputs=_positive_int("outputs", outputs),
        reconstruct=bool(cfg.get("reconstruct", False)),
    )
