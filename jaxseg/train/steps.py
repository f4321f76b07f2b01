"""The jitted programs of a stage: one optimizer step, one evaluation batch, and evaluation of
a whole split with the task's host metrics (per example, padding dropped)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg import tasks
from jaxseg.data.augment import AugmentConfig
from jaxseg.data.augment import augment as augment_batch
from jaxseg.tasks import Task
from jaxseg.train import batches
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.state import TrainMetrics, TrainState
from jaxseg.train.timing import Clock

PREDICTION = "_prediction"  # eval-step output handed to the task's host metrics, never stored


def make_train_step(
    model,
    task: Task,
    tx: optax.GradientTransformation,
    augment: AugmentConfig | None = None,
    steps: int = 1,
):
    """(state, metrics, batch) -> (state, metrics): one optimizer step, metrics merged.

    With ``augment``, the batch is transformed inside the step (one random affine per example,
    masks/centres/boxes alike, then blur), from a key derived from the state's rng and step.
    The batch gets ``progress`` = step / ``steps`` for losses that change during training.
    """

    def step_fn(state: TrainState, acc: TrainMetrics, batch: dict) -> tuple[TrainState, Any]:
        rng, aug_rng = jax.random.split(jax.random.fold_in(state["rng"], state["step"]))
        if augment is not None:
            batch = augment_batch(aug_rng, batch, augment)
        batch = {**batch, "progress": state["step"].astype(jnp.float32) / steps}

        def loss_fn(params):
            variables = {"params": params, "batch_stats": state["batch_stats"]}
            updates = {}

            def apply(x):
                out, new = model.apply(
                    variables, x, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
                )
                updates.update(new)
                return out

            outputs = tasks.run_model(task, apply, batch)
            per_example = task.loss(outputs, batch)
            w = batch["weight"]
            return jnp.sum(per_example * w) / jnp.maximum(jnp.sum(w), 1.0), (per_example, updates)

        grads, (per_example, updates) = jax.grad(loss_fn, has_aux=True)(state["params"])
        deltas, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new_state = {
            "step": state["step"] + 1,
            "params": optax.apply_updates(state["params"], deltas),
            "batch_stats": updates.get("batch_stats", state["batch_stats"]),
            "opt_state": opt_state,
            "rng": state["rng"],
        }
        step_metrics = TrainMetrics.single_from_model_output(
            loss=per_example, mask=batch["weight"] > 0, step=state["step"]
        )
        return new_state, acc.merge(step_metrics)

    return step_fn


def make_eval_step(model, task: Task):
    """(state, batch) -> {'loss': [B], metric: [B]} per example, inference mode."""

    def eval_fn(state: TrainState, batch: dict) -> dict[str, jax.Array]:
        variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
        batch = {**batch, "progress": jnp.float32(1.0)}
        outputs = tasks.run_model(task, lambda x: model.apply(variables, x, train=False), batch)
        out = {"loss": task.loss(outputs, batch), **task.metrics(outputs, batch)}
        if task.predict is not None:
            out[PREDICTION] = task.predict(outputs)
        return out

    return eval_fn


def evaluate(
    eval_step,
    state: TrainState,
    arrays: dict,
    task: Task,
    batch_size: int,
    mesh,
    clock: Clock | None = None,
) -> dict[str, np.ndarray]:
    """Per-example metrics over ``arrays`` (padding dropped): {name: np.ndarray [N]}; the task's
    host metrics are timed as ``host_metrics`` on ``clock``."""
    clock = clock or Clock()
    out: dict[str, list[np.ndarray]] = {}
    for batch in batches.eval_batches(arrays, task.keys, batch_size):
        valid = batch["weight"] > 0
        result = jax.device_get(eval_step(state, mesh_lib.put_batch(batch, mesh)))
        if PREDICTION in result:
            host_batch = {k: v[valid] for k, v in batch.items()}
            result = {k: np.asarray(v)[valid] for k, v in result.items()}
            with clock("host_metrics"):
                result.update(task.host_metrics(result.pop(PREDICTION), host_batch))
            valid = np.ones(int(valid.sum()), dtype=bool)
        for name, values in result.items():
            out.setdefault(name, []).append(np.asarray(values)[valid])
    return {name: np.concatenate(v) for name, v in out.items()}


def finite_means(per_example: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, int]]:
    """Mean of each metric over its finite values (NaN if none), and how many were not finite
    (e.g. a Hausdorff distance is inf when exactly one of prediction and mask is empty)."""
    means, nonfinite = {}, {}
    for name, values in per_example.items():
        finite = np.isfinite(values)
        means[name] = float(np.mean(values[finite])) if finite.any() else math.nan
        if not finite.all():
            nonfinite[name] = int((~finite).sum())
    return means, nonfinite


def summarize(task: Task, per_example: dict[str, np.ndarray]) -> dict[str, float]:
    """The reported means of a split's per-example metrics: ``task.summarize`` when the task
    has one (segmentation: ``eval.summary``), else ``finite_means``."""
    if task.summarize is not None:
        return task.summarize(per_example)
    return finite_means(per_example)[0]


def new_state(variables: dict[str, Any], tx: optax.GradientTransformation, seed: int) -> TrainState:
    """The step-0 train state of ``variables`` under optimizer ``tx``."""
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": variables["params"],
        "batch_stats": variables["batch_stats"],
        "opt_state": tx.init(variables["params"]),
        "rng": jax.random.split(jax.random.PRNGKey(seed))[1],
    }
