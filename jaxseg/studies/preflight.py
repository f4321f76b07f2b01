"""Check every run of a study before any training, so a bad config or dataset fails in seconds
with one line naming the stage, and never after hours with half the results written.

For each planned run: its settings, task and dataset keys, fold / label budget / validation
split, optimizer, augmentation, model shapes (``jax.eval_shape``, no compute), batch size vs
devices, freeze plan, and the transfer from its ``init_from`` stage (shapes of both models).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxseg import checkpoint, data, models, tasks
from jaxseg.data import splits
from jaxseg.data.augment import AugmentConfig
from jaxseg.studies.plan import Run
from jaxseg.surgery import transfer
from jaxseg.train import loop, optimizers
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.settings import check_settings

Shapes = dict[str, tuple[int, ...]]


def check_study(
    planned: list[tuple[str, list[Run]]], datasets: Callable[[Any], data.Dataset]
) -> None:
    """Raise ValueError ('stages.NAME (fold F, seed S, budget B): ...') for the first bad run.
    ``datasets(run.config.data)`` gives each run's dataset."""
    shapes: dict[str, Shapes] = {}  # run workdir -> variable shapes, for transfers
    cache: dict[str, Shapes] = {}  # model/task signature -> variable shapes
    for _, runs in planned:
        for run in runs:
            if run.workdir in shapes:
                continue
            try:
                shapes[run.workdir] = check_run(run, datasets(run.config.data), shapes, cache)
            except (ValueError, FileNotFoundError) as err:
                raise ValueError(
                    f"stages.{run.stage} (fold {run.fold}, seed {run.seed}, budget "
                    f"{run.budget}): {err}"
                ) from None


def check_run(run: Run, dataset: data.Dataset, shapes: dict[str, Shapes], cache) -> Shapes:
    """Validate one run; returns the shapes of its variables ('params/...', 'batch_stats/...')."""
    config, arrays = run.config, dataset.arrays
    check_settings(config)
    task = tasks.for_config(config, arrays, dataset.class_names)
    task.check(arrays, dataset.name)
    train_idx, _ = loop.split_indices(config, dataset, task)
    if config.val_fraction:
        train_idx, _ = splits.validation_split(
            train_idx, arrays["group"], config.val_fraction, config.split.seed
        )
    optimizers.build(config.optimizer, config.steps)
    AugmentConfig.from_config(config.augment)
    mesh_lib.check_batch_size(config.batch_size, mesh_lib.data_mesh())
    # derived on the whole training split, as the run will (pairs need several labels)
    inputs = tasks.task_arrays(task, arrays, train_idx, config.seed)[task.keys[0]]
    key = json.dumps([config.model.to_dict(), task.head, task.outputs, inputs.shape[1:]])
    if key not in cache:
        model = models.build(config.model, task.head, task.outputs)
        sample = np.zeros((1, *inputs.shape[1:]), np.float32)
        abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), sample, train=False))
        cache[key] = {p: tuple(v.shape) for p, v in checkpoint.flatten(abstract).items()}
    variables = cache[key]
    params = {p[len("params/") :]: np.empty(0) for p in variables if p.startswith("params/")}
    loop.freeze_schedule(config, checkpoint.unflatten(params), len(train_idx))
    source = config.init_from.checkpoint
    if source:
        source_run = os.path.dirname(os.path.normpath(source))
        if source_run not in shapes:
            raise ValueError(f"init_from names {source!r}, which no earlier run of the arm writes")
        transfer.match(
            variables,
            shapes[source_run],
            config.init_from.subtrees,
            config.init_from.rename,
            config.init_from.allow,
            where=f"stage {config.init_from.stage!r}",
        )
    return variables
