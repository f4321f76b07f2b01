"""A stage's compiled programs: the train step and eval step of one freeze plan, compiled ahead
of time (so compilation is timed apart from training).

A study trains dozens of runs whose programs are the same (folds, seeds and budgets differ only
in data and initial values, which are arguments): compiled steps are kept per process, keyed by
everything that shapes the program, and a run whose key was compiled before reuses it.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import jax
import optax

from jaxseg.surgery import freeze
from jaxseg.train import mesh as mesh_lib
from jaxseg.train import steps
from jaxseg.train.setup import Stage
from jaxseg.train.timing import Clock

# Stage-config fields that never reach a compiled step: where the run sits in the study, how it
# is logged, checkpointed, validated and stopped, where it starts from (values, not shapes); the
# steps it trains for reach it resolved (``steps``), not as ``epochs``, the
# ``min_steps`` floor and the ``max_steps`` cap.
RUN_FIELDS = (
    "seed", "split", "name", "init_from", "examples", "log_every", "checkpoint_every",
    "eval_every", "monitor", "patience", "min_delta", "val_fraction", "epochs", "min_steps",
    "max_steps",
)  # fmt: skip
CACHE_SIZE = 16  # compiled executables kept per process (a study has a handful of programs)
_compiled: collections.OrderedDict[str, Any] = collections.OrderedDict()


@dataclasses.dataclass(frozen=True)
class Program:
    """Freeze plan ``plan``'s optimizer, partition labels and jitted steps; ``keys`` name what
    shapes each step (``train_signature``, ``eval_signature``)."""

    plan: int
    optimizer: optax.GradientTransformation
    labels: Any
    train_step: Callable
    eval_step: Callable
    keys: dict[str, str]


def plan_optimizer(stage: Stage, plan: int) -> tuple[optax.GradientTransformation, Any]:
    """The optimizer and partition labels of freeze plan ``plan``."""
    labels = stage.schedule.labels(plan)
    return freeze.partition_labels(stage.optimizer, labels), labels


def eval_signature(stage: Stage) -> list:
    """What the eval step depends on: model, task (with the data it sizes its head from) and
    mesh. Not the freeze plan: in inference mode every BatchNorm uses its stored statistics."""
    config, task = stage.config.to_dict(), stage.task
    fields = [config.get(k) for k in ("model", "task", "loss", "task_options", "data")]
    return [*fields, task.head, task.outputs, task.keys, repr(stage.mesh)]


def train_signature(stage: Stage, plan: int, labels: Any) -> list:
    """What the train step of ``plan`` depends on: the stage config without ``RUN_FIELDS``, the
    task, the freeze labels and frozen norms, and the mesh."""
    config = {k: v for k, v in stage.config.to_dict().items() if k not in RUN_FIELDS}
    frozen_norms = freeze.frozen_regex(stage.schedule.resolved[plan])
    leaves = sorted(map(repr, jax.tree_util.tree_leaves_with_path(labels)))
    return [config, eval_signature(stage), leaves, frozen_norms]


def build(stage: Stage, plan: int) -> Program:
    """Jit the train step (state replicated, batch sharded over ``data``) and eval step."""
    optimizer, labels = plan_optimizer(stage, plan)
    model, config = stage.model(plan), stage.config
    replicated = mesh_lib.replicated(stage.mesh)
    train_step = jax.jit(
        steps.make_train_step(model, stage.task, optimizer, stage.augment, config.steps),
        in_shardings=(replicated, replicated, mesh_lib.batch_sharded(stage.mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=(0, 1),
    )
    eval_step = jax.jit(steps.make_eval_step(model, stage.task), out_shardings=replicated)
    print(f"{config.name}: {stage.schedule.describe(plan)}", flush=True)
    keys = {
        "train_step": json.dumps(train_signature(stage, plan, labels), sort_keys=True),
        "eval_step": json.dumps(eval_signature(stage), sort_keys=True),
    }
    return Program(plan, optimizer, labels, train_step, eval_step, keys)


def _arguments(args: tuple) -> str:
    """The tree structure, shapes, dtypes and shardings of ``args``."""
    leaves, tree = jax.tree.flatten(args)
    specs = [(tuple(x.shape), str(x.dtype), repr(getattr(x, "sharding", None))) for x in leaves]
    return f"{tree}{specs}"


def compiled(program: Program, which: str, args: tuple, clock: Clock) -> Callable:
    """The executable of ``program``'s ``which`` step ('train_step' | 'eval_step') for
    arguments shaped like ``args``: compiled now (timed as ``compile``) or reused."""
    key = f"{which}|{program.keys[which]}|{_arguments(args)}"
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    with clock("compile"):
        executable = getattr(program, which).lower(*args).compile()
    _compiled[key] = executable
    while len(_compiled) > CACHE_SIZE:
        _compiled.popitem(last=False)
    return executable
