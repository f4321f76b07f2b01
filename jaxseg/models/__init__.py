"""Model registry: a config's ``model.name`` picks the architecture, the task picks its head.

``build(cfg, head, outputs, frozen)`` returns a Flax module whose variables follow the
parameter-tree contract (docs/design.md §2). ``head`` is 'pixels' (dense per-pixel logits
[B,H,W,outputs]) or 'vector' (one vector per image [B,outputs]).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from jaxseg.models.unet import Localizer, UNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def _unet(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str) -> nn.Module:
    if cfg.dtype not in DTYPES:
        raise ValueError(f"model.dtype={cfg.dtype!r} is unknown; use one of {sorted(DTYPES)}")
    common = dict(
        depth=cfg.depth,
        width=cfg.width,
        norm=cfg.norm,
        dropout=cfg.dropout,
        frozen=frozen,
        dtype=DTYPES[cfg.dtype],
    )
    if head == "pixels":
        return UNet(**common, num_classes=outputs, upsample=cfg.upsample)
    if head == "vector":
        return Localizer(**common, num_outputs=outputs)
    raise ValueError(f"model 'unet' has no head kind {head!r}; use 'pixels' or 'vector'")


MODELS: dict[str, Callable[..., nn.Module]] = {"unet": _unet}


def build(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str = "") -> nn.Module:
    """The module for ``cfg.name`` with a ``head`` of ``outputs`` channels.

    ``frozen`` is a path regex; BatchNorm layers under matching subtrees use running statistics.
    """
    if cfg.name not in MODELS:
        raise ValueError(f"model.name={cfg.name!r} is unknown; use one of {sorted(MODELS)}")
    return MODELS[cfg.name](cfg, head, outputs, frozen)
