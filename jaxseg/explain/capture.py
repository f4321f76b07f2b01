"""Capture the feature maps of any layers, selected by path regex, without changing model code.

Uses Flax's ``capture_intermediates``: every submodule whose '/'-joined path matches the regex
records the output of its ``__call__`` (non-array outputs, e.g. the encoder's (x, skips)
tuple, are skipped). Paths are module paths such as 'encoder/stage_1' or
'encoder/stage_1/conv_0'.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxseg import checkpoint, models, tasks
from jaxseg.train import rundir


class LoadedRun(NamedTuple):
    """A finished stage rebuilt for inference."""

    model: nn.Module
    variables: dict[str, Any]  # {'params', 'batch_stats'} of the best (or latest, or ``step``)
    config: ml_collections.ConfigDict  # the run's config.json


def load_run(workdir: str, step: int | None = None, best: bool = True) -> LoadedRun:
    """The model, variables and config of a finished stage directory (``config.json`` +
    ``checkpoints/``), for inference. The head size is read from the checkpoint. ``best`` (the
    default): the best validated checkpoint (the one the run's test metrics come from) when the
    run kept one, else the latest (``checkpoint.run_weights``); False: the latest steps."""
    path = os.path.join(workdir, rundir.CONFIG)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir} is not a stage directory (no {rundir.CONFIG})")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    folder = rundir.weights(workdir)[0] if best else rundir.checkpoints(workdir)
    variables = checkpoint.load_variables(folder, step)
    head = checkpoint.flatten(variables["params"]["head"])  # 'kernel' or e.g. 'conv/kernel'
    outputs = int(next(v for p, v in head.items() if p.endswith("kernel")).shape[-1])
    # only the head kind matters here; its size is the checkpoint's
    info = tasks.DataInfo(mask_channels=outputs, num_labels=max(outputs, 2))
    task = tasks.build(config.task, config.loss, options=tasks.stage_options(config), info=info)
    return LoadedRun(models.build(config.model, task.head, outputs), variables, config)


def capture(model: nn.Module, variables: dict, images: np.ndarray, regex: str) -> dict[str, Any]:
    """{module path: output [N,h,w,c]} for the modules whose path ``re.search``-es ``regex``.

    Raises when nothing matches, listing a few module paths that exist.
    """
    pattern = re.compile(regex)

    def keep(module: nn.Module, method: str) -> bool:
        return method == "__call__" and bool(pattern.search("/".join(module.scope.path)))

    _, state = model.apply(
        variables, images, train=False, capture_intermediates=keep, mutable=["intermediates"]
    )
    found = {}
    for p, value in checkpoint.flatten(state.get("intermediates", {})).items():
        out = value[0] if isinstance(value, tuple) else value
        if hasattr(out, "shape") and p.endswith("/__call__"):
            found[p[: -len("/__call__")]] = out
    if not found:
        known = module_paths(model, variables, images)
        raise ValueError(f"layers {regex!r} match no module; modules include {known[:8]}")
    return found


def module_paths(model: nn.Module, variables: dict, images: np.ndarray) -> list[str]:
    """Every module path of ``model`` whose ``__call__`` returns an array."""
    return list(capture(model, variables, images[:1], ""))


def layer_output(model: nn.Module, variables: dict, path: str) -> Callable[[jax.Array], jax.Array]:
    """A jit-able function images [B,H,W,C] -> the output [B,h,w,c] of the module at ``path``."""
    regex = f"^{re.escape(path)}$"

    def fn(images: jax.Array) -> jax.Array:
        out = capture(model, variables, images, regex)
        if path not in out:
            raise ValueError(f"no module at path {path!r}")
        return out[path]

    return fn
