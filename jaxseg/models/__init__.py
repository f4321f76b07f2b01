"""Model registry: a config's ``model.name`` picks the architecture, the task picks its head.

``build(cfg, head, outputs, frozen)`` returns a Flax module whose variables follow the
parameter-tree contract (docs/design.md §2). Head kinds: 'pixels' (dense per-pixel logits
[B,*S,outputs]), 'vector' (flattened features + dense: [B,outputs]; the plain U-Net's localizer,
which keeps where things are), 'pooled' (global average pool + dense: [B,outputs]; classes and
siamese embeddings), 'reconstruction' (the decoder without skips: an autoencoder).

Architectures: 'unet' (plain U-Net blocks, or a U-Net decoder over ``backbone`` 'vgg16' |
'resnet50' | 'resnext50'), 'deeplabv3' (ASPP over a backbone), 'densenet' (method 4's 2D/3D
densely connected encoder with GroupNorm and a reconstruction branch). ``config(**fields)``
gives a model config with every field, so command-line overrides reach any of them.
``kernel_init`` picks the plain U-Net's conv-kernel initialiser: 'lecun' (default) or 'he'
(variance 2/fan_in, as method 5); other architectures keep their own initialisers.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import ml_collections

from jaxseg.models import backbone_unet, deeplab, densenet, dtypes, layers
from jaxseg.models.dtypes import DTYPES as DTYPES  # re-exported: jaxseg.models.DTYPES
from jaxseg.models.unet import Classifier, Localizer, UNet

DEFAULTS = dict(
    name="unet",
    backbone="",  # unet/deeplabv3: '' (plain U-Net blocks) | vgg16 | resnet50 | resnext50
    depth=4,  # plain U-Net: number of poolings
    width=32,  # base width (plain U-Net, backbone U-Net decoder, densenet)
    norm="batch",  # batch | group | none
    dropout=0.0,
    upsample="transpose",  # transpose | resize
    dtype="float32",  # compute dtype; params stay float32
    output_stride=16,  # deeplabv3: 8 | 16
    aspp_rates=(6, 12, 18),
    aspp_width=256,
    growth=16,  # densenet growth rate
    dense_layers=(2, 2, 4, 8),  # densenet layers per encoder block
    groups=8,  # densenet GroupNorm groups
    reconstruct=False,  # densenet: also return the reconstruction branch's output
    remat=False,  # densenet: recompute dense layers in the backward pass (memory)
    kernel_init="lecun",  # plain U-Net conv kernels: lecun | he (layers.KERNEL_INITS)
)


def config(**fields) -> ml_collections.ConfigDict:
    """A model config with every field (``DEFAULTS`` updated by ``fields``)."""
    unknown = sorted(set(fields) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"model fields {unknown} are unknown; model fields are {list(DEFAULTS)}")
    return ml_collections.ConfigDict({**DEFAULTS, **fields})


def resolve(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``cfg`` with the fields it lacks taken from ``DEFAULTS`` (older configs), checked."""
    fields = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    full = config(**fields)
    dtypes.dtype(full.dtype)  # raises for an unknown name
    layers.kernel_initializer(full.kernel_init)  # likewise
    if full.kernel_init != DEFAULTS["kernel_init"] and (full.name != "unet" or full.backbone):
        raise ValueError(
            f"model.kernel_init={full.kernel_init!r} is implemented for the plain U-Net only "
            f"(model.name='unet', backbone=''), not name={full.name!r} backbone={full.backbone!r}"
        )
    return full


def _unet(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str) -> nn.Module:
    if cfg.backbone:
        return backbone_unet.build(cfg, head, outputs, frozen)
    common = dict(
        depth=cfg.depth,
        width=cfg.width,
        norm=cfg.norm,
        dropout=cfg.dropout,
        frozen=frozen,
        dtype=dtypes.dtype(cfg.dtype),
        kernel_init=cfg.kernel_init,
    )
    if head in ("pixels", "reconstruction"):
        skips = head == "pixels"
        return UNet(**common, num_classes=outputs, upsample=cfg.upsample, skips=skips)
    if head == "vector":
        return Localizer(**common, num_outputs=outputs)
    if head == "pooled":
        return Classifier(**common, num_outputs=outputs)
    raise ValueError(f"model 'unet' has no head kind {head!r}; use one of {HEADS}")


HEADS = ("pixels", "vector", "pooled", "reconstruction")

MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet,
    "deeplabv3": deeplab.build,
    "densenet": densenet.build,
}


def build(cfg: ml_collections.ConfigDict, head: str, outputs: int, frozen: str = "") -> nn.Module:
    """The module for ``cfg.name`` with a ``head`` of ``outputs`` channels.

    ``frozen`` is a path regex of frozen subtrees: their modules run in inference mode
    (BatchNorm on running statistics, dropout off; ``layers``).
    """
    cfg = resolve(cfg)
    if cfg.name not in MODELS:
        raise ValueError(f"model.name={cfg.name!r} is unknown; use one of {sorted(MODELS)}")
    return MODELS[cfg.name](cfg, head, outputs, frozen)
