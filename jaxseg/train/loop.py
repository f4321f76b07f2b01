"""``train_and_evaluate(config, workdir)``: one stage run, from data to checkpoints and a result.

Order: set-up (``setup.prepare_stage``) → the parent run's subtrees → state (resumed or new) →
jitted steps on a mesh → loop (log, checkpoint, validate, NaN guard, SIGTERM) → evaluation of the
best validated state on the held-out fold → ``result.json`` (the layout is ``rundir``'s).

Restarts: a run killed at any point (even SIGKILL) and started again with the same call resumes
from its newest intact checkpoint (``checkpoint.restore``) and ends bit-identical to an
uninterrupted run: the batch at step s depends only on (seed, s), augmentation and dropout keys
on the state's rng and step. SIGTERM during the loop checkpoints the current step and raises
``Preempted``. A finished run (``result.json`` present) is returned as saved, never rewritten,
unless ``overwrite=True`` starts it over.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax

from jaxseg import checkpoint, data
from jaxseg.surgery import freeze, transfer
from jaxseg.surgery import schedule as schedule_lib
from jaxseg.train import batches, distributed, rundir, steps
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.early_stopping import EarlyStopping
from jaxseg.train.progress import Progress
from jaxseg.train.settings import check_settings
from jaxseg.train.setup import Stage, prepare_stage
from jaxseg.train.sigterm import Preempted, catch_sigterm
from jaxseg.train.state import TrainMetrics, TrainState
from jaxseg.train.writers import MetricWriter, NullMetricWriter


@dataclasses.dataclass(frozen=True)
class Program:
    """Freeze plan ``plan``'s optimizer, partition labels and compiled steps."""

    plan: int
    optimizer: optax.GradientTransformation
    labels: Any
    train_step: Callable
    eval_step: Callable


@dataclasses.dataclass(frozen=True)
class Outputs:
    """What a run writes while it trains: its directory, checkpoint managers and metric log."""

    workdir: str
    checkpoints: Any  # orbax CheckpointManager of the latest steps
    best: Any | None  # of the best validated step; None without a validation split
    writer: MetricWriter | NullMetricWriter

    def close(self) -> None:
        for closing in (self.checkpoints, self.best, self.writer):
            if closing is not None:
                closing.close()


def plan_optimizer(stage: Stage, plan: int) -> tuple[optax.GradientTransformation, Any]:
    """The optimizer and partition labels of freeze plan ``plan``."""
    labels = stage.schedule.labels(plan)
    return freeze.partition_labels(stage.optimizer, labels), labels


def compile_plan(stage: Stage, plan: int) -> Program:
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
    return Program(plan, optimizer, labels, train_step, eval_step)


def saved_plan(stage: Stage, step: int) -> int:
    """The plan whose optimizer state a checkpoint of ``step`` holds (that of step - 1)."""
    return stage.schedule.index_at(max(step - 1, 0))


def load_parent(
    stage: Stage, variables: dict[str, Any], workdir: str, parent: str | None
) -> dict[str, Any]:
    """``variables`` with ``init_from.subtrees`` loaded from the parent run's checkpoints (when
    there is a parent); ``transfer.json`` records the report, its source relative to the run."""
    init_from, name = stage.config.init_from, stage.config.name
    if parent is None:
        if init_from.get("stage"):
            raise ValueError(
                f"stage {name!r}: init_from.stage={init_from.stage!r} needs that run's "
                "directory (train_and_evaluate(..., parent=DIR))"
            )
        return variables
    variables, report = transfer.from_config(variables, init_from, rundir.checkpoints(parent))
    source = os.path.relpath(report["source"], workdir)
    rundir.write_json(workdir, rundir.TRANSFER, {**report, "source": source})
    print(f"{name}: {transfer.format_report(report)}", flush=True)
    return variables


def start(stage: Stage, variables: dict[str, Any], out: Outputs) -> tuple[TrainState, Program]:
    """The state to train from: the newest intact checkpoint, else step 0 of ``variables``."""
    replicated = mesh_lib.replicated(stage.mesh)

    def target(step: int) -> TrainState:  # structure and shardings of a state saved at step
        tx = plan_optimizer(stage, saved_plan(stage, step))[0]
        shapes = jax.eval_shape(lambda v: steps.new_state(v, tx, stage.config.seed), variables)
        return checkpoint.abstract(shapes, replicated)

    state = None
    if out.checkpoints.all_steps():
        state = checkpoint.restore(out.checkpoints, target)
        name, resumed = stage.config.name, int(state["step"])
        print(f"{name}: resumed from step {resumed} ({out.workdir})", flush=True)
    step = int(state["step"]) if state is not None else 0
    program = compile_plan(stage, saved_plan(stage, step))
    if state is None:
        state = steps.new_state(variables, program.optimizer, stage.config.seed)
        state = mesh_lib.put_replicated(state, stage.mesh)
    return state, program


def early_stopping(stage: Stage, workdir: str, step: int) -> EarlyStopping:
    """The stopper, resumed from ``early_stopping.json`` when it describes a step <= ``step``."""
    config = stage.config
    monitor = config.monitor or stage.task.primary
    stopper = EarlyStopping(monitor, config.patience, config.min_delta)
    saved = rundir.read_json(workdir, rundir.EARLY_STOPPING) if step else None
    return EarlyStopping(**saved) if saved and saved["step"] <= step else stopper


def validate(
    stage: Stage, program: Program, out: Outputs, stopper: EarlyStopping, step: int, state
) -> None:
    """Evaluate on the validation split; keep the state if it is the best so far."""
    per = steps.evaluate(
        program.eval_step, state, stage.arrays["val"], stage.task, stage.config.batch_size,
        stage.mesh,
    )  # fmt: skip
    if stopper.monitor not in per:
        raise ValueError(
            f"stage {stage.config.name!r}: monitor={stopper.monitor!r} is not a metric of task "
            f"{stage.task.name!r} ({sorted(per)})"
        )
    means, _ = steps.finite_means(per)
    out.writer.write(step, {f"val/{k}": v for k, v in means.items() if math.isfinite(v)})
    if stopper.update(step, means[stopper.monitor]):
        checkpoint.save(out.best, step, state)
    rundir.write_json(out.workdir, rundir.EARLY_STOPPING, stopper.to_dict())


def raise_if_nonfinite(summary: dict, config: ml_collections.ConfigDict, workdir: str) -> None:
    """``FloatingPointError`` naming the first step whose loss was NaN/inf, if any."""
    bad = int(summary["nonfinite_step"])
    if bad >= 0:
        raise FloatingPointError(
            f"stage {config.name!r}: loss became NaN/inf at step {bad}; lower "
            f"optimizer.learning_rate or check the data (workdir {workdir})"
        )


def log(stage: Stage, out: Outputs, acc: Any, step: int, progress: Progress) -> None:
    """Print and record the mean training loss since the last log (NaN/inf: error)."""
    summary = jax.device_get(acc.compute())
    raise_if_nonfinite(summary, stage.config, out.workdir)
    loss = float(summary["loss"])
    print(f"{stage.config.name}: {progress.line(step, loss)}", flush=True)
    scalars = {"train/loss": loss, "train/img_per_s": progress.images_per_s(step)}
    out.writer.write(step, {k: v for k, v in scalars.items() if math.isfinite(v)})


def preempt(stage: Stage, out: Outputs, step: int, state, acc: Any, saved: bool) -> None:
    """After SIGTERM: checkpoint ``step`` (unless just saved; never a NaN state), raise."""
    if not saved:
        raise_if_nonfinite(jax.device_get(acc.compute()), stage.config, out.workdir)
        checkpoint.save(out.checkpoints, step, state)
    out.close()
    print(f"{stage.config.name}: SIGTERM: saved step {step}, stopping", flush=True)
    raise Preempted(step, out.workdir)


def next_plan(stage: Stage, program: Program, state: TrainState, step: int):
    """At an unfreezing step: the next plan's program (compiled once) and the state with the
    optimizer state carried over for groups whose members did not change."""
    new = compile_plan(stage, stage.schedule.index_at(step))
    opt_state = schedule_lib.carry_state(
        state["opt_state"], program.labels, new.optimizer.init(state["params"]), new.labels
    )
    return new, mesh_lib.put_replicated({**state, "opt_state": opt_state}, stage.mesh)


def fit(
    stage: Stage, out: Outputs, state: TrainState, program: Program, stopper: EarlyStopping
) -> tuple[TrainState, Program, int]:
    """Train from ``state`` to ``config.steps`` or an early stop; returns the last state, its
    program and the step reached."""
    config, keys = stage.config, stage.task.keys
    train, validating = stage.arrays["train"], "val" in stage.arrays
    eval_every = config.eval_every or config.checkpoint_every
    replicated = mesh_lib.replicated(stage.mesh)
    step = int(state["step"])
    if step and validating and stopper.step < step and step % eval_every == 0:
        validate(stage, program, out, stopper, step, state)  # killed before validating it
    progress = Progress(config.steps, config.batch_size)
    acc = jax.device_put(TrainMetrics.empty(), replicated)
    with catch_sigterm() as sigterm:
        while step < config.steps and not stopper.should_stop:
            if stage.schedule.index_at(step) != program.plan:  # a block unfreezes
                program, state = next_plan(stage, program, state, step)
            index = batches.train_indices(len(train[keys[0]]), config.batch_size, step, config.seed)
            batch = mesh_lib.put_batch(batches.take(train, index, keys), stage.mesh)
            state, acc = program.train_step(state, acc, batch)
            step += 1
            if progress.compile_s is None:
                jax.block_until_ready(state)
                progress.tick(step)
            last = step == config.steps
            evaluating = validating and (step % eval_every == 0 or last)
            saving = step % config.checkpoint_every == 0 or last or evaluating
            logging_step = step % config.log_every == 0 or saving
            if logging_step:
                log(stage, out, acc, step, progress)
                acc = jax.device_put(TrainMetrics.empty(), replicated)
                if saving:
                    checkpoint.save(out.checkpoints, step, state)
                if evaluating:
                    validate(stage, program, out, stopper, step, state)
            if sigterm.agreed(sync_point=logging_step):
                preempt(stage, out, step, state, acc, saved=saving)
    return state, program, step


def held_out_result(
    stage: Stage, program: Program, out: Outputs, state, step: int, stopper: EarlyStopping
) -> dict[str, Any]:
    """Evaluate ``state`` on the held-out fold; the result ``result.json`` holds."""
    task, rows = stage.task, stage.index
    per_example = steps.evaluate(
        program.eval_step, state, stage.arrays["test"], task, stage.config.batch_size, stage.mesh
    )
    means, nonfinite = steps.finite_means(per_example)
    out.writer.write(step, {f"test/{k}": v for k, v in means.items() if math.isfinite(v)})
    return {
        "stage": stage.config.name,
        "task": task.name,
        "primary": task.primary,
        "metrics": means,
        "nonfinite": nonfinite,
        # strict JSON: a non-finite value (see "nonfinite") is stored as null
        "per_example": {
            k: [float(x) if math.isfinite(x) else None for x in v] for k, v in per_example.items()
        },
        "test_index": rows["test"].tolist(),
        "n_train": len(rows["train"]),
        "n_val": len(rows["val"]),
        "n_test": len(rows["test"]),
        "steps": step,
        "evaluated_step": int(state["step"]),
        "early_stopping": stopper.to_dict() if len(rows["val"]) else None,
    }


def open_outputs(workdir: str, validating: bool) -> Outputs:
    """Checkpoint managers and (process 0 only) the metric writer of the run in ``workdir``."""
    best = checkpoint.manager(rundir.best(workdir), max_to_keep=1) if validating else None
    writer = MetricWriter(workdir) if distributed.is_primary() else NullMetricWriter()
    return Outputs(workdir, checkpoint.manager(rundir.checkpoints(workdir)), best, writer)


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    dataset: data.Dataset | None = None,
    *,
    parent: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one stage in ``workdir`` (resuming if it holds checkpoints) and evaluate it.

    Returns the result dict also written to ``<workdir>/result.json``: the mean of each metric on
    the held-out fold, the per-example values, and the sizes of the splits. ``parent`` is the
    directory of the run whose checkpoint ``init_from`` loads from (required when
    ``init_from.stage`` names one). A finished run (``result.json`` present) is neither trained
    nor evaluated again: its saved result is returned, the file untouched. ``overwrite=True``
    first deletes the run's outputs (``rundir.OUTPUTS``) and trains from scratch, whatever config
    ran there. SIGTERM during training checkpoints the current step and raises ``Preempted``.
    """
    check_settings(config)
    with rundir.lock(workdir):
        if overwrite:
            rundir.clear(workdir)
        rundir.record(config, workdir)
        finished = rundir.read_result(workdir)
        if finished is not None:
            print(
                f"{config.name}: resumed from step {finished['steps']} ({workdir}): finished, "
                "result.json returned as saved (overwrite=True trains it again)",
                flush=True,
            )
            return finished
        dataset = dataset if dataset is not None else data.load(config.data)
        return train(prepare_stage(config, dataset), workdir, parent)


def train(stage: Stage, workdir: str, parent: str | None) -> dict[str, Any]:
    """Train and evaluate the prepared ``stage`` in ``workdir``; returns the result. A loss that
    became NaN/inf marks the run failed (``rundir.FAILED``) before the error propagates."""
    config = stage.config
    variables = load_parent(stage, stage.variables, workdir, parent)
    out = open_outputs(workdir, "val" in stage.arrays)
    state, program = start(stage, variables, out)
    stopper = early_stopping(stage, workdir, int(state["step"]))
    try:
        state, program, step = fit(stage, out, state, program, stopper)
    except FloatingPointError as err:
        rundir.mark_failed(workdir, str(err))
        out.close()
        raise
    if stopper.should_stop:
        print(
            f"{config.name}: stopped early at step {step}; best {stopper.monitor} "
            f"{stopper.best:.4f} at step {stopper.best_step}",
            flush=True,
        )
    if out.best is not None:  # evaluate the best validated state
        target = checkpoint.abstract(state, mesh_lib.replicated(stage.mesh))
        state = checkpoint.restore(out.best, target)
    result = held_out_result(stage, program, out, state, step, stopper)
    out.close()
    rundir.write_json(workdir, rundir.RESULT, result)
    return result


__all__ = ["Preempted", "train_and_evaluate"]
