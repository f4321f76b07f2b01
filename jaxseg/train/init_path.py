"""``init_from.path``: start a stage from any checkpoint or weights file named in the config.

A path is one of
- a jaxseg run directory (its best validated checkpoint, ``checkpoints_best/``, when it has
  one, else its latest, ``checkpoints/``), of this study or any other, or an orbax checkpoint
  folder itself (a run's ``checkpoints``);
- a torchvision ``.pth`` state_dict (read with torch) or a ``.safetensors`` file in
  torchvision's key layout (timm's ResNets share it; read with ``safetensors.numpy``, no torch),
  converted by ``models.torchvision_weights`` for the stage's ``model.backbone``.
Either way the transfer is ``surgery.transfer``'s: the same strict matching, ``rename``,
``allow`` and report. ``init_from.path`` and ``init_from.stage`` exclude each other.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from jaxseg import checkpoint
from jaxseg.models import torchvision_weights
from jaxseg.surgery import transfer
from jaxseg.train import rundir

WEIGHT_FILES = (".pth", ".pt", ".safetensors")
STEM = "params/encoder/stage_0/conv_0/kernel"  # HWIO: its input channels are the image's


def checkpoint_folder(path: str) -> str | None:
    """The orbax folder ``path`` names (a run directory: best, else latest; or the folder
    itself), or None when ``path`` is no directory; a directory without checkpoints is an
    error naming it."""
    if not os.path.isdir(path):
        return None
    for folder in (rundir.best(path), rundir.checkpoints(path), path):
        if checkpoint.steps(folder):
            return folder
    raise ValueError(
        f"init_from.path={path!r} holds no checkpoint (neither a finished jaxseg run "
        f"directory with {rundir.BEST}/ or {rundir.CHECKPOINTS}/ nor an orbax checkpoint folder)"
    )


def arch(model: Any) -> str:
    """The ``torchvision_weights.ARCHS`` key of a stage's model config (backbone and norm)."""
    backbone, norm = model.get("backbone", ""), model.get("norm", "")
    name = {"vgg16": "vgg16_bn" if norm == "batch" else "vgg16"}.get(backbone, backbone)
    if name not in torchvision_weights.ARCHS:
        raise ValueError(
            f"torchvision weights need a model.backbone of vgg16, resnet50 or resnext50; this "
            f"stage's model is {model.get('name', '?')!r} with backbone {backbone!r}"
        )
    return name


def read_state_dict(path: str) -> dict[str, Any]:
    """A ``.safetensors`` file's tensors as numpy arrays (no torch); a ``.pth`` goes through
    torch in ``torchvision_weights.load_file``, so it is refused here."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"init_from.path={path!r}: cannot read as safetensors ({e})") from None


@functools.lru_cache(maxsize=4)
def _converted(path: str, mtime: float, name: str, in_channels: int) -> dict[str, Any]:
    del mtime  # part of the cache key only: a rewritten file is read again
    if path.endswith(".safetensors"):
        state = read_state_dict(path)
        return torchvision_weights.convert(state, name, in_channels)
    return torchvision_weights.load_file(path, name, in_channels)


def weights(path: str, model: Any, in_channels: int) -> dict[str, Any]:
    """{'params': {'encoder': ...}, 'batch_stats': ...} converted from a weights file for the
    stage's backbone (``in_channels`` 1 sums the RGB stem); errors name the path."""
    if not path.endswith(WEIGHT_FILES):
        raise ValueError(
            f"init_from.path={path!r} is neither a directory (a jaxseg run or orbax checkpoint) "
            f"nor a weights file ({', '.join(WEIGHT_FILES)})"
        )
    if not os.path.isfile(path):
        raise ValueError(f"init_from.path={path!r}: no such file")
    try:
        return _converted(path, os.path.getmtime(path), arch(model), in_channels)
    except (ImportError, ValueError) as e:
        raise ValueError(f"init_from.path={path!r}: {e}") from None


def saved_shapes(config: Any, model_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple]:
    """{'params/...': shape} that ``init_from.path`` offers to a stage whose variables have
    ``model_shapes`` (what the preflight matches before anything trains)."""
    path = config.init_from.path
    folder = checkpoint_folder(path)
    if folder is not None:
        return checkpoint.leaf_shapes(folder)
    tree = weights(path, config.model, _in_channels(model_shapes))
    return {p: tuple(v.shape) for p, v in checkpoint.flatten(tree).items()}


def _in_channels(shapes: dict[str, tuple[int, ...]]) -> int:
    return shapes[STEM][2] if STEM in shapes else 3


def load(config: Any, variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``variables`` with ``init_from.subtrees`` loaded from ``init_from.path``, and the
    ``transfer`` report (its 'source' the absolute checkpoint folder or file)."""
    init_from = config.init_from
    path = init_from.path
    folder = checkpoint_folder(path)
    if folder is not None:
        return transfer.from_config(variables, init_from, os.path.abspath(folder))
    shapes = {p: tuple(v.shape) for p, v in checkpoint.flatten(variables).items()}
    tree = weights(path, config.model, _in_channels(shapes))
    return transfer.transfer_tree(
        variables,
        tree,
        init_from.subtrees,
        rename=init_from.get("rename", ""),
        allow=init_from.get("allow", ""),
        source=os.path.abspath(path),
    )
