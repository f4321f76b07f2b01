"""Convert a torchvision ImageNet ``state_dict`` into our encoder's variables (no downloads).

``convert(state_dict, arch)`` -> ``{"params": {"encoder": …}, "batch_stats": {"encoder": …}}``
(no ``batch_stats`` for plain ``vgg16``), ready for ``init_from``-style restoring by name.
Conv kernels go OIHW -> HWIO (grouped: torch [O, I/groups, kh, kw] -> flax [kh, kw, I/groups, O]),
BatchNorm weight/bias/running_mean/running_var -> scale/bias/mean/var. The classifier
(``fc.*``, ``classifier.*``) and ``num_batches_tracked`` are ignored and logged. Every converted
shape is checked against the encoder built by ``jax.eval_shape``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxseg.models import resnet, vgg
from jaxseg.models.backbones import BACKBONES

# torchvision architecture -> (our backbone, norm, the classifier's key prefix, the stem kernel)
ARCHS = {
    "vgg16": ("vgg16", "none", "classifier.", "features.0.weight"),
    "vgg16_bn": ("vgg16", "batch", "classifier.", "features.0.weight"),
    "resnet50": ("resnet50", "batch", "fc.", "conv1.weight"),
    "resnext50_32x4d": ("resnext50", "batch", "fc.", "conv1.weight"),
}
ARCHS["resnext50"] = ARCHS["resnext50_32x4d"]  # our backbone's name
BN = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}
STATS = ("mean", "var")  # BatchNorm variables that live in 'batch_stats', not 'params'

log = logging.getLogger(__name__)


def _norm(mapping: dict[str, str], ours: str, theirs: str) -> None:
    for name, key in BN.items():
        collection = "batch_stats" if name in STATS else "params"
        mapping[f"{collection}/{ours}/bn/{name}"] = f"{theirs}.{key}"


def _vgg_keys(batch_norm: bool) -> dict[str, str]:
    """Our 'collection/path' -> torchvision key, walking ``features`` (conv[, bn], relu; pool)."""
    mapping, index = {}, 0
    for i, (_, convs) in enumerate(vgg.STAGES):
        for j in range(convs):
            mapping[f"params/stage_{i}/conv_{j}/kernel"] = f"features.{index}.weight"
            mapping[f"params/stage_{i}/conv_{j}/bias"] = f"features.{index}.bias"
            if batch_norm:
                index += 1
                _norm(mapping, f"stage_{i}/norm_{j}", f"features.{index}")
            index += 2  # past the conv (or BatchNorm) and the ReLU
        index += 1  # max-pool
    return mapping


def _resnet_keys() -> dict[str, str]:
    """Our 'collection/path' -> torchvision key for ResNet50 / ResNeXt50."""
    mapping = {"params/stage_0/conv_0/kernel": "conv1.weight"}
    _norm(mapping, "stage_0/norm_0", "bn1")
    for k, blocks in enumerate(resnet.BLOCKS, start=1):
        for b in range(blocks):
            ours, theirs = f"stage_{k}/block_{b}", f"layer{k}.{b}"
            for j in range(3):
                mapping[f"params/{ours}/conv_{j}/kernel"] = f"{theirs}.conv{j + 1}.weight"
                _norm(mapping, f"{ours}/norm_{j}", f"{theirs}.bn{j + 1}")
            if b == 0:
                mapping[f"params/{ours}/proj/kernel"] = f"{theirs}.downsample.0.weight"
                _norm(mapping, f"{ours}/proj_norm", f"{theirs}.downsample.1")
    return mapping


def _expected_shapes(backbone: str, norm: str, in_channels: int) -> dict[str, tuple[int, ...]]:
    """'collection/path' -> shape of our encoder's variables (nothing is computed)."""
    encoder = BACKBONES[backbone](norm=norm)
    x = jax.ShapeDtypeStruct((1, 64, 64, in_channels), jnp.float32)
    variables = jax.eval_shape(lambda x: encoder.init(jax.random.key(0), x, False), x)
    flat = traverse_util.flatten_dict(variables, sep="/")
    return {path: tuple(v.shape) for path, v in flat.items()}


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor (torch itself is not imported here)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def convert(
    state_dict: Mapping[str, Any], arch: str, in_channels: int = 3
) -> dict[str, dict[str, Any]]:
    """Our encoder's variables from a torchvision ``state_dict`` of ``arch`` (a key of ARCHS).

    Values are numpy arrays or torch tensors. ``in_channels=1`` sums the stem kernel over RGB
    (grayscale input); any other shape mismatch, a missing key or an unexpected key raises.
    """
    if arch not in ARCHS:
        raise ValueError(f"torchvision arch {arch!r} is not supported; use one of {sorted(ARCHS)}")
    backbone, norm, classifier, stem = ARCHS[arch]
    mapping = _vgg_keys(norm == "batch") if backbone == "vgg16" else _resnet_keys()
    missing = sorted(set(mapping.values()) - set(state_dict))
    if missing:
        raise ValueError(
            f"the {arch} state_dict lacks {len(missing)} keys, e.g. {missing[:3]}; "
            "is it another architecture?"
        )
    ignored = sorted(set(state_dict) - set(mapping.values()))
    unexpected = [
        k for k in ignored if not (k.startswith(classifier) or k.endswith("num_batches_tracked"))
    ]
    if unexpected:
        raise ValueError(
            f"the {arch} state_dict has {len(unexpected)} unexpected keys, e.g. {unexpected[:3]}; "
            "is it another architecture?"
        )
    expected = _expected_shapes(backbone, norm, in_channels)
    if set(expected) != set(mapping):  # the key tables above and the modules disagree
        raise AssertionError(f"{arch}: key table != encoder tree: {set(expected) ^ set(mapping)}")
    flat = {}
    for path, key in mapping.items():
        value = _numpy(state_dict[key])
        if key == stem and in_channels == 1 and value.shape[1] == 3:
            value = value.sum(axis=1, keepdims=True)  # grayscale: the response to R = G = B
        if value.ndim == 4:
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        if value.shape != expected[path]:
            raise ValueError(
                f"{arch} key {key!r} of shape {tuple(_numpy(state_dict[key]).shape)} gives "
                f"{value.shape} but encoder/{path.split('/', 1)[1]} needs {expected[path]} "
                f"(in_channels={in_channels})"
            )
        flat[path] = value
    classifier_keys = [k for k in ignored if k.startswith(classifier)]
    log.info(
        "torchvision %s: converted %d tensors; ignored %d num_batches_tracked and the "
        "classifier keys %s",
        arch,
        len(flat),
        len(ignored) - len(classifier_keys),
        classifier_keys,
    )
    tree = traverse_util.unflatten_dict(flat, sep="/")
    return {collection: {"encoder": variables} for collection, variables in tree.items()}


def load_file(path: str | os.PathLike, arch: str, in_channels: int = 3) -> dict[str, Any]:
    """``convert`` the state_dict saved in a torchvision ``.pth`` file (read with torch)."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"reading {os.fspath(path)} needs torch (the CPU build is enough); or pass a "
            "state_dict of numpy arrays to jaxseg.models.torchvision_weights.convert"
        ) from e
    if not os.path.isfile(path):
        raise FileNotFoundError(f"torchvision weights file {os.fspath(path)} does not exist")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{os.fspath(path)} holds a {type(state_dict).__name__}, not a state_dict")
    return convert(state_dict, arch, in_channels)
