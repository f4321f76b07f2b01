"""``train_and_evaluate(config, workdir)``: one stage, from data to a checkpoint and metrics.

Sections: data → model & transfer → optimizer & freeze → state (resume) → jit step on a mesh →
loop (log, checkpoint, NaN guard, SIGTERM) → evaluation on the held-out fold → result.json.

Restarts: a run killed at any point (even SIGKILL) and started again with the same call resumes
from its newest intact checkpoint (``checkpoint.restore``) and ends bit-identical to an
uninterrupted run: the batch at step s depends only on (seed, s), augmentation and dropout keys
on the state's rng and step. SIGTERM during the loop checkpoints the current step and raises
``Preempted``. A finished run (``result.json`` present) is returned as saved, never rewritten,
unless ``overwrite=True`` starts it over.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxseg import checkpoint, data, models, tasks
from jaxseg.data import splits
from jaxseg.data.augment import AugmentConfig
from jaxseg.data.augment import augment as augment_batch
from jaxseg.surgery import freeze, transfer
from jaxseg.surgery import schedule as schedule_lib
from jaxseg.tasks import Task
from jaxseg.train import batches, distributed, optimizers
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.early_stopping import EarlyStopping
from jaxseg.train.progress import Progress
from jaxseg.train.settings import check_settings
from jaxseg.train.state import TrainMetrics, TrainState
from jaxseg.train.writers import MetricWriter, NullMetricWriter

RESULT = "result.json"
PREDICTION = "_prediction"  # eval-step output handed to the task's host metrics, never stored
# What a run writes into its workdir: ``overwrite=True`` deletes these before training.
RUN_OUTPUTS = (
    "checkpoints",
    "checkpoints_best",
    RESULT,
    "metrics.jsonl",
    "early_stopping.json",
    "tb",
    "transfer.json",
    "config.json",
)


class Preempted(RuntimeError):  # noqa: N818 (the event, not a failure of the run)
    """``train_and_evaluate`` got SIGTERM during its loop: the state of ``step`` (the step being
    trained when the signal came; with several processes, the next logging step) is
    checkpointed in ``<workdir>/checkpoints`` and nothing else was written (no ``result.json``);
    the same call resumes the run. A launcher should exit with ``EXIT_CODE`` (143 = 128 +
    SIGTERM), as a process killed by SIGTERM would, so that schedulers requeue the job
    (``jaxseg.main``'s part)."""

    EXIT_CODE = 143

    def __init__(self, step: int, workdir: str):
        super().__init__(
            f"preempted (SIGTERM) at step {step}: checkpoint saved under "
            f"{os.path.join(workdir, 'checkpoints')}; run the same command again to resume"
        )
        self.step = step
        self.workdir = workdir


class SigtermFlag:
    """Whether SIGTERM arrived while ``catch_sigterm`` was active."""

    def __init__(self) -> None:
        self.received = False

    def handler(self, signum: int, frame: Any) -> None:
        self.received = True

    def agreed(self, sync_point: bool) -> bool:
        """Whether to stop now: SIGTERM arrived. With several processes, every process must
        stop at the same step, so they only agree (a collective: any process got it) at sync
        points, the logging steps, where the host waits for the device anyway."""
        if jax.process_count() == 1:
            return self.received
        if not sync_point:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.received))
        return bool(np.max(flags))


@contextlib.contextmanager
def catch_sigterm() -> Iterator[SigtermFlag]:
    """Within the block SIGTERM only sets the yielded flag; the previous handler is restored on
    exit (one installed outside Python, e.g. by JAX's multi-process runtime, cannot be: the
    default action is restored then). Outside the main thread, where handlers cannot be
    installed, nothing is and the flag stays False."""
    flag = SigtermFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, flag.handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def split_indices(
    config: ml_collections.ConfigDict, dataset: data.Dataset, task: Task
) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) example indices of the configured fold, label budget and task labels."""
    arrays = dataset.arrays
    folds = splits.kfold(arrays["group"], config.split.folds, config.split.seed)
    if not 0 <= config.split.fold < len(folds):
        raise ValueError(f"split.fold={config.split.fold} is outside 0..{len(folds) - 1}")
    train, test = folds[config.split.fold]
    if config.split.budget:
        train = splits.label_budget(train, config.split.budget, config.split.seed)
    usable = task.usable(arrays)
    train, test = train[usable[train]], test[usable[test]]
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"stage {config.name!r}: fold {config.split.fold} leaves {len(train)} training and "
            f"{len(test)} test examples usable for task {task.name!r}"
        )
    return train, test


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Raise if ``workdir`` holds a run of a different config; returns the config's JSON."""
    path = os.path.join(workdir, "config.json")
    text = config.to_json_best_effort(sort_keys=True, indent=1)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() != text:
                raise ValueError(
                    f"{workdir} holds a run with a different config ({path}); "
                    "use a new --workdir, or delete that one to start over"
                )
    return text


def clear_run(workdir: str) -> None:
    """Delete what a run wrote into ``workdir`` (``RUN_OUTPUTS``; other files stay)."""

    def delete() -> None:
        for name in RUN_OUTPUTS:
            path = os.path.join(workdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    checkpoint.on_process_0(delete, f"clear {workdir}")


def guard_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Record the config in ``workdir``; refuse a workdir that holds a run of a different one.
    With several processes every one checks and process 0 writes (atomically: a process reading
    meanwhile sees the old file or the new one, never half of it)."""
    text = check_workdir(config, workdir)
    if distributed.is_primary():
        os.makedirs(workdir, exist_ok=True)
        write_text_atomic(os.path.join(workdir, "config.json"), text)


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


def evaluate(eval_step, state: TrainState, arrays: dict, task: Task, config, mesh) -> dict:
    """Per-example metrics over ``arrays`` (padding dropped): {name: np.ndarray [N]}."""
    out: dict[str, list[np.ndarray]] = {}
    for batch in batches.eval_batches(arrays, task.keys, config.batch_size):
        valid = batch["weight"] > 0
        result = jax.device_get(eval_step(state, mesh_lib.put_batch(batch, mesh)))
        if PREDICTION in result:
            host_batch = {k: v[valid] for k, v in batch.items()}
            result = {k: np.asarray(v)[valid] for k, v in result.items()}
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


def init_variables(config, model, sample: np.ndarray, workdir: str) -> dict[str, Any]:
    """Fresh {'params', 'batch_stats'} from ``config.seed``, with ``init_from`` subtrees loaded."""
    init_rng = jax.random.split(jax.random.PRNGKey(config.seed))[0]
    variables = dict(model.init(init_rng, sample, train=False))
    variables.setdefault("batch_stats", {})
    if config.init_from.checkpoint:
        variables, report = transfer.from_config(variables, config.init_from)
        if distributed.is_primary():
            write_json_atomic(
                os.path.join(workdir, "transfer.json"),
                {"source": config.init_from.checkpoint, **report},
            )
        print(f"{config.name}: {transfer.format_report(report)}", flush=True)
    return variables


def freeze_schedule(config, params: Any, n_train: int) -> schedule_lib.FreezeSchedule:
    """The stage's freeze schedule from ``freeze``, ``unfreeze_every`` and ``unfreeze_at``."""
    return schedule_lib.build(
        config.freeze,
        params,
        schedule_lib.steps_per_epoch(n_train, config.batch_size),
        config.unfreeze_every,
        tuple(config.unfreeze_at),
    )


def new_state(variables: dict[str, Any], tx: optax.GradientTransformation, seed: int) -> TrainState:
    """The step-0 train state of ``variables`` under optimizer ``tx``."""
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": variables["params"],
        "batch_stats": variables["batch_stats"],
        "opt_state": tx.init(variables["params"]),
        "rng": jax.random.split(jax.random.PRNGKey(seed))[1],
    }


def raise_if_nonfinite(summary: dict, config: ml_collections.ConfigDict, workdir: str) -> None:
    """``FloatingPointError`` naming the first step whose loss was NaN/inf, if any."""
    bad = int(summary["nonfinite_step"])
    if bad >= 0:
        raise FloatingPointError(
            f"stage {config.name!r}: loss became NaN/inf at step {bad}; lower "
            f"optimizer.learning_rate or check the data (workdir {workdir})"
        )


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    dataset: data.Dataset | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one stage in ``workdir`` (resuming if it holds checkpoints) and evaluate it.

    Returns the result dict also written to ``<workdir>/result.json``: the mean of each metric on
    the held-out fold, the per-example values, and the sizes of the splits. A finished run
    (``result.json`` present) is neither trained nor evaluated again: its saved result is read
    back and returned, the file untouched. ``overwrite=True`` first deletes the run's outputs
    (``RUN_OUTPUTS``: checkpoints, result, metrics, early-stopping state, TensorBoard events,
    transfer report, recorded config) and trains from scratch, whatever config ran there.

    SIGTERM during training checkpoints the current step and raises ``Preempted`` (see there).
    """
    check_settings(config)
    if overwrite:
        clear_run(workdir)
    guard_workdir(config, workdir)
    finished = read_result(workdir)
    if finished is not None:
        print(
            f"{config.name}: resumed from step {finished['steps']} ({workdir}): finished, "
            "result.json returned as saved (overwrite=True trains it again)",
            flush=True,
        )
        return finished
    # --- data
    dataset = dataset if dataset is not None else data.load(config.data)
    arrays = dataset.arrays
    task = tasks.for_config(config, arrays, dataset.class_names)
    task.check(arrays, dataset.name)
    train_idx, test_idx = split_indices(config, dataset, task)
    val_idx = np.zeros(0, dtype=int)
    if config.val_fraction:
        train_idx, val_idx = splits.validation_split(
            train_idx, arrays["group"], config.val_fraction, config.split.seed
        )
    keys = task.keys
    # --- model, mesh, state
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(config.batch_size, mesh)
    replicated = mesh_lib.replicated(mesh)
    train_arrays = tasks.task_arrays(task, arrays, train_idx, config.seed)
    val_arrays = tasks.task_arrays(task, arrays, val_idx, config.seed + 1) if len(val_idx) else {}
    test_arrays = tasks.task_arrays(task, arrays, test_idx, config.split.seed)
    variables = init_variables(
        config, models.build(config.model, task.head, task.outputs), train_arrays[keys[0]][:1],
        workdir,
    )  # fmt: skip
    schedule = freeze_schedule(config, variables["params"], len(train_idx))
    augment = AugmentConfig.from_config(config.augment)
    augment = augment if augment.affine or augment.blur else None
    base_tx = optimizers.build(config.optimizer, config.steps)

    def plan_tx(k: int) -> tuple[optax.GradientTransformation, Any]:
        """Optimizer and partition labels of freeze plan k."""
        labels = schedule.labels(k)
        return freeze.partition_labels(base_tx, labels), labels

    def program(k: int):
        """Model, optimizer, labels and compiled steps of freeze plan k."""
        resolved = schedule.resolved[k]
        model = models.build(
            config.model, task.head, task.outputs, freeze.frozen_norm_regex(resolved)
        )
        tx, labels = plan_tx(k)
        train_step = jax.jit(
            make_train_step(model, task, tx, augment, config.steps),
            in_shardings=(replicated, replicated, mesh_lib.batch_sharded(mesh)),
            out_shardings=(replicated, replicated),
            donate_argnums=(0, 1),
        )
        eval_step = jax.jit(make_eval_step(model, task), out_shardings=replicated)
        print(f"{config.name}: {schedule.describe(k)}", flush=True)
        return tx, labels, train_step, eval_step

    def saved_plan(step: int) -> int:
        """The plan whose optimizer state a checkpoint of ``step`` holds (that of step - 1)."""
        return schedule.index_at(max(step - 1, 0))

    def target(step: int) -> TrainState:
        """Structure and shardings of a state saved at ``step``."""
        tx_k = plan_tx(saved_plan(step))[0]
        shapes = jax.eval_shape(lambda v: new_state(v, tx_k, config.seed), variables)
        return checkpoint.abstract(shapes, replicated)

    mngr = checkpoint.manager(os.path.join(workdir, "checkpoints"))
    state = None
    if mngr.all_steps():  # resume from the newest intact checkpoint
        state = checkpoint.restore(mngr, target)
        print(f"{config.name}: resumed from step {int(state['step'])} ({workdir})", flush=True)
    start = int(state["step"]) if state is not None else 0
    plan_k = saved_plan(start)
    tx, labels, train_step, eval_step = program(plan_k)
    if state is None:
        state = mesh_lib.put_replicated(new_state(variables, tx, config.seed), mesh)
    # --- early stopping on the validation split (its state is saved beside the checkpoints)
    stopper = EarlyStopping(config.monitor or task.primary, config.patience, config.min_delta)
    eval_every = config.eval_every or config.checkpoint_every
    best_mngr = (
        checkpoint.manager(os.path.join(workdir, "checkpoints_best"), max_to_keep=1)
        if len(val_idx)
        else None
    )
    stop_path = os.path.join(workdir, "early_stopping.json")
    if start and os.path.exists(stop_path):
        with open(stop_path) as f:
            saved = json.load(f)
        if saved["step"] <= start:
            stopper = EarlyStopping(**saved)

    def validate(step: int, state: TrainState) -> None:
        per = evaluate(eval_step, state, val_arrays, task, config, mesh)
        if stopper.monitor not in per:
            raise ValueError(
                f"stage {config.name!r}: monitor={stopper.monitor!r} is not a metric of task "
                f"{task.name!r} ({sorted(per)})"
            )
        means, _ = finite_means(per)
        writer.write(step, {f"val/{k}": v for k, v in means.items() if math.isfinite(v)})
        if stopper.update(step, means[stopper.monitor]):
            checkpoint.save(best_mngr, step, state)
        if distributed.is_primary():
            write_json_atomic(stop_path, stopper.to_dict())

    def preempt(step: int, state: TrainState, acc: Any, saved: bool) -> None:
        """After SIGTERM: checkpoint ``step`` (unless just saved; never a NaN state), raise."""
        if not saved:
            raise_if_nonfinite(jax.device_get(acc.compute()), config, workdir)
            checkpoint.save(mngr, step, state)
        for closing in (mngr, best_mngr, writer):
            if closing is not None:
                closing.close()
        print(f"{config.name}: SIGTERM: saved step {step}, stopping", flush=True)
        raise Preempted(step, workdir)

    # --- loop
    # every process trains and evaluates; process 0 alone writes the run's files
    writer = MetricWriter(workdir) if distributed.is_primary() else NullMetricWriter()
    step = int(state["step"])
    if start and len(val_idx) and stopper.step < step and step % eval_every == 0:
        validate(step, state)  # killed between saving the checkpoint and validating it
    progress = Progress(config.steps, config.batch_size)
    acc = jax.device_put(TrainMetrics.empty(), replicated)
    with catch_sigterm() as sigterm:
        while step < config.steps and not stopper.should_stop:
            if schedule.index_at(step) != plan_k:  # the next block unfreezes: rebuild once
                plan_k = schedule.index_at(step)
                old_labels = labels
                tx, labels, train_step, eval_step = program(plan_k)
                opt_state = schedule_lib.carry_state(
                    state["opt_state"], old_labels, tx.init(state["params"]), labels
                )
                state = mesh_lib.put_replicated({**state, "opt_state": opt_state}, mesh)
            index = batches.train_indices(
                len(train_arrays[keys[0]]), config.batch_size, step, config.seed
            )
            batch = mesh_lib.put_batch(batches.take(train_arrays, index, keys), mesh)
            state, acc = train_step(state, acc, batch)
            step += 1
            if progress.compile_s is None:
                jax.block_until_ready(state)
                progress.tick(step)
            last = step == config.steps
            evaluating = len(val_idx) > 0 and (step % eval_every == 0 or last)
            saving = step % config.checkpoint_every == 0 or last or evaluating
            logging_step = step % config.log_every == 0 or saving
            if logging_step:
                summary = jax.device_get(acc.compute())
                raise_if_nonfinite(summary, config, workdir)
                loss = float(summary["loss"])
                print(f"{config.name}: {progress.line(step, loss)}", flush=True)
                scalars = {"train/loss": loss, "train/img_per_s": progress.images_per_s(step)}
                writer.write(step, {k: v for k, v in scalars.items() if math.isfinite(v)})
                acc = jax.device_put(TrainMetrics.empty(), replicated)
                if saving:
                    checkpoint.save(mngr, step, state)
                if evaluating:
                    validate(step, state)
            if sigterm.agreed(sync_point=logging_step):
                preempt(step, state, acc, saved=saving)
    if stopper.should_stop:
        print(
            f"{config.name}: stopped early at step {step}; best {stopper.monitor} "
            f"{stopper.best:.4f} at step {stopper.best_step}",
            flush=True,
        )
    mngr.close()
    # --- evaluation (of the best validation checkpoint when there is a validation split)
    if best_mngr is not None:
        state = checkpoint.restore(best_mngr, checkpoint.abstract(state, replicated))
        best_mngr.close()
    per_example = evaluate(eval_step, state, test_arrays, task, config, mesh)
    means, nonfinite = finite_means(per_example)
    writer.write(step, {f"test/{k}": v for k, v in means.items() if math.isfinite(v)})
    writer.close()
    result = {
        "stage": config.name,
        "task": task.name,
        "primary": task.primary,
        "metrics": means,
        "nonfinite": nonfinite,
        # strict JSON: a non-finite value (see "nonfinite") is stored as null
        "per_example": {
            k: [float(x) if math.isfinite(x) else None for x in v] for k, v in per_example.items()
        },
        "test_index": test_idx.tolist(),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "steps": step,
        "evaluated_step": int(state["step"]),
        "early_stopping": stopper.to_dict() if len(val_idx) else None,
    }
    if distributed.is_primary():
        write_json_atomic(os.path.join(workdir, RESULT), result)
    return result


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file of this process, so a kill never leaves a
    half-written file and two processes writing the same path never share the temporary one."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: str, obj: Any) -> None:
    """Write JSON to ``path`` atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(obj, indent=1))


def read_result(workdir: str) -> dict[str, Any] | None:
    """The result of a finished stage in ``workdir``, or None."""
    path = os.path.join(workdir, RESULT)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


__all__ = ["Preempted", "read_result", "train_and_evaluate"]
