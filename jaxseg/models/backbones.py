"""ImageNet-style encoders by name: ``model.backbone`` picks one for the U-Net or DeepLabv3.

Each returns the list of its stage outputs, ``encoder/stage_0`` shallowest first (vgg.py,
resnet.py), and takes the model's ``norm`` (VGG16 with 'batch' is vgg16_bn), ``frozen``,
``dtype`` and an ``output_stride`` (0 = natural; 8 or 16 dilate the deepest stages).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from jaxseg.models import dtypes
from jaxseg.models.resnet import ResNet
from jaxseg.models.vgg import VGG16

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "vgg16": VGG16,
    "resnet50": functools.partial(ResNet, groups=1, width_per_group=64),
    "resnext50": functools.partial(ResNet, groups=32, width_per_group=4),
}


def dtype(cfg: ml_collections.ConfigDict) -> jnp.dtype:
    """The compute dtype named by ``cfg.dtype`` (``dtypes.dtype``)."""
    return dtypes.dtype(cfg.dtype)


def backbone(cfg: ml_collections.ConfigDict, frozen: str, output_stride: int = 0) -> nn.Module:
    """The unnamed encoder module for ``cfg.backbone`` (its parent names it ``encoder``).

    ``frozen`` is the path regex of frozen subtrees, which run in inference mode (layers).
    """
    if cfg.backbone not in BACKBONES:
        raise ValueError(
            f"model.backbone={cfg.backbone!r} is unknown; use one of {sorted(BACKBONES)}"
        )
    return BACKBONES[cfg.backbone](
        norm=cfg.norm, frozen=frozen, dtype=dtype(cfg), output_stride=output_stride
    )
