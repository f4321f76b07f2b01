"""Atrous spatial pyramid pooling (DeepLabv3, torchvision's ``ASPP``).

Five parallel branches on [B,h,w,C], each conv + norm + ReLU to ``features`` channels:
``conv_0``/``norm_0`` 1×1; ``conv_{1,2,3}``/``norm_{1,2,3}`` 3×3 dilated by ``rates``;
``pool``/``pool_norm`` on the global average (broadcast back to h×w). They are concatenated and
projected (``project``/``project_norm`` 1×1, ReLU, dropout 0.5 in training unless the ASPP is
frozen) to [B,h,w,features].
Convs have no bias unless ``norm='none'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxseg.models.layers import Norm, dropout

DROPOUT = 0.5  # after the projection, as torchvision


class ASPP(nn.Module):
    """[B,h,w,C] -> [B,h,w,features]; ``rates`` are the dilations of the three 3×3 branches."""

    rates: Sequence[int] = (6, 12, 18)
    features: int = 256
    norm: str = "batch"
    frozen: str = ""
    dtype: jnp.dtype = jnp.float32

    def branch(self, x: jax.Array, train: bool, kernel: int, rate: int, names: tuple) -> jax.Array:
        """k×k conv dilated by ``rate`` ('same' size), norm, ReLU."""
        x = nn.Conv(
            self.features,
            (kernel, kernel),
            kernel_dilation=rate,
            padding=((rate * (kernel // 2),) * 2,) * 2,
            use_bias=self.norm == "none",
            dtype=self.dtype,
            name=names[0],
        )(x)
        return nn.relu(
            Norm(self.norm, frozen=self.frozen, dtype=self.dtype, name=names[1])(x, train)
        )

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if len(self.rates) != 3:
            raise ValueError(f"model.aspp_rates={tuple(self.rates)} must hold 3 dilation rates")
        branches = [self.branch(x, train, 1, 1, ("conv_0", "norm_0"))]
        for j, rate in enumerate(self.rates, start=1):
            branches.append(self.branch(x, train, 3, rate, (f"conv_{j}", f"norm_{j}")))
        pooled = self.branch(x.mean(axis=(1, 2), keepdims=True), train, 1, 1, ("pool", "pool_norm"))
        branches.append(jnp.broadcast_to(pooled, (*x.shape[:3], self.features)))
        y = self.branch(
            jnp.concatenate(branches, axis=-1), train, 1, 1, ("project", "project_norm")
        )
        return dropout(self, y, DROPOUT, train, self.frozen)
