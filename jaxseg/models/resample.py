"""×2 down- and up-sampling written as reshapes and one matmul, for any number of spatial dims.

Same numbers as ``nn.max_pool`` / ``nn.ConvTranspose`` (tested), much cheaper gradients on XLA
CPU: there the gradient of a 2×2 stride-2 transposed conv lowers to a generic convolution that
took ~190 ms per layer for a 128² batch of 8 (vs ~25 ms forward), and max-pool's
select-and-scatter gradient 45 ms vs 3 ms for a reshape + max (BENCHMARKS.md).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def max_pool(x: jax.Array) -> jax.Array:
    """2×…×2 max-pooling, stride 2: [B,*S,C] -> [B,*(S//2),C] (an odd last row is dropped).

    Pairwise ``maximum`` along each window axis of a reshape: its gradient goes to the window's
    maximum, exact ties share it (``nn.max_pool`` gives it to the first) — after a ReLU a tie is a
    window of zeros, whose gradient the ReLU stops anyway. (``x.max(axis)`` would do the same but
    divides by the tie count, which came out 0 — NaN gradients — when XLA CPU compiled it at
    optimisation level 0.)
    """
    rank = x.ndim - 2
    spatial = x.shape[1:-1]
    x = x[(slice(None), *(slice(0, s - s % 2) for s in spatial))]
    split = [x.shape[0]]
    for s in spatial:
        split += [s // 2, 2]
    x = x.reshape(*split, x.shape[-1])
    for axis in reversed(range(2, 2 + 2 * rank, 2)):  # the window axes, last first
        x = jnp.maximum(jnp.take(x, 0, axis=axis), jnp.take(x, 1, axis=axis))
    return x


class UpConv(nn.Module):
    """2×…×2 stride-2 transposed conv as one matmul: [B,*S,Cin] -> [B,*(2·S),features].

    Kernel and stride are equal, so output windows do not overlap: each input voxel's
    Cin-vector times a [Cin, 2^rank·features] matrix gives its 2^rank output voxels. Parameters
    ``kernel`` [2,…,2,Cin,features] and ``bias`` have the names, shapes, initialisers and
    orientation of ``nn.ConvTranspose(features, (2,)*rank, strides=(2,)*rank)``, so checkpoints
    and converted weights are interchangeable.
    """

    features: int
    dtype: jnp.dtype = jnp.float32
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        rank = x.ndim - 2
        window = (2,) * rank
        kernel = self.param("kernel", self.kernel_init, (*window, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        # nn.ConvTranspose (transpose_kernel=False) reads the kernel flipped along every window axis
        kernel = jnp.flip(kernel, axis=tuple(range(rank)))
        y = jnp.tensordot(x, kernel, axes=([-1], [rank]))  # [B, *S, *window, features]
        # interleave each spatial axis with its window axis: [B, S_0, 2, S_1, 2, …, features]
        order = [0]
        for i in range(rank):
            order += [1 + i, 1 + rank + i]
        y = y.transpose(*order, y.ndim - 1)
        spatial = [2 * s for s in x.shape[1:-1]]
        return y.reshape(x.shape[0], *spatial, self.features) + bias
