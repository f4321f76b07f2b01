"""Convolution with ``nn.Conv``'s parameters whose 3-D form runs as a depth-sum of 2-D convs.

XLA CPU's 3-D convolutions are an order of magnitude slower than its 2-D ones: a 3×3×3 conv at
32³×16→16 (batch 2) took 69 ms forward and 277 ms for its gradients, against 14 / 42 ms as
three 2-D convolutions over depth-shifted slices, summed (benchmarks/README.md). Same numbers as
``nn.Conv`` with ``padding='SAME'`` (tested), same parameter names, shapes and initialisers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

DIMS_2D = ("NHWC", "HWIO", "NHWC")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """lax's 'SAME' padding of one axis: output ceil(size/stride), the odd pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_same(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """'SAME' conv, no bias: [B,*S,Cin] × [k,…,k,Cin,O] -> [B,*ceil(S/stride),O], rank 2 or 3.

    Rank 3 runs as Σ_d conv2d(x[:, d-shifted depth slices], kernel[d]) with the depth folded
    into the batch.
    """
    rank = x.ndim - 2
    if rank == 2:
        return lax.conv_general_dilated(x, kernel, (stride,) * 2, "SAME", dimension_numbers=DIMS_2D)
    if rank != 3:
        raise ValueError(f"conv_same takes [B,H,W,C] or [B,D,H,W,C], got shape {x.shape}")
    B, D = x.shape[:2]
    k = kernel.shape[0]
    out_depth = -(-D // stride)
    x = jnp.pad(x, ((0, 0), _same_padding(D, k, stride), (0, 0), (0, 0), (0, 0)))
    total = None
    for d in range(k):
        taps = x[:, d : d + (out_depth - 1) * stride + 1 : stride]  # [B, out_depth, H, W, C]
        y = lax.conv_general_dilated(
            taps.reshape(B * out_depth, *taps.shape[2:]),
            kernel[d],
            (stride,) * 2,
            "SAME",
            dimension_numbers=DIMS_2D,
        )
        total = y if total is None else total + y
    return total.reshape(B, out_depth, *total.shape[1:])


class Conv(nn.Module):
    """``nn.Conv(features, (kernel,)*rank, strides=(stride,)*rank)`` (padding 'SAME', bias) for
    [B,H,W,C] or [B,D,H,W,C] inputs, computed by ``conv_same``."""

    features: int
    kernel: int = 3
    stride: int = 1
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        rank = x.ndim - 2
        shape = (*(self.kernel,) * rank, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        return conv_same(x, kernel, self.stride) + bias
