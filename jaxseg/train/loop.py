"""``train_and_evaluate(config, workdir)``: one stage run, from data to checkpoints and a result.

Order: set-up (``setup.prepare_stage``) → the parent run's subtrees → state (resumed or new) →
jitted steps on a mesh → loop (log, checkpoint, validate, NaN guard, SIGTERM) → evaluation of the
best validated state on the held-out fold, with the task's trivial baselines beside it
(``health``) → ``result.json`` (the layout is ``rundir``'s).

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
from typing import Any

import jax
import ml_collections

from jaxseg import checkpoint, data
from jaxseg.surgery import schedule as schedule_lib
from jaxseg.surgery import transfer
from jaxseg.train import batches, distributed, health, init_path, programs, rundir, settings, steps
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.best import BestState
from jaxseg.train.early_stopping import EarlyStopping
from jaxseg.train.progress import Progress
from jaxseg.train.setup import Stage, prepare_stage
from jaxseg.train.sigterm import Preempted, catch_sigterm
from jaxseg.train.state import TrainMetrics, TrainState
from jaxseg.train.timing import Clock
from jaxseg.train.writers import MetricWriter, NullMetricWriter


@dataclasses.dataclass(frozen=True)
class Outputs:
    """What a run writes while it trains: its directory, checkpoint managers and metric log."""

    workdir: str
    checkpoints: Any  # orbax CheckpointManager of the latest steps
    best: BestState | None  # the best validated state; None without a validation split
    writer: MetricWriter | NullMetricWriter
    clock: Clock

    def close(self) -> None:
        for closing in (self.checkpoints, self.best, self.writer):
            if closing is not None:
                closing.close()


def saved_plan(stage: Stage, step: int) -> int:
    """The plan whose optimizer state a checkpoint of ``step`` holds (that of step - 1)."""
    return stage.schedule.index_at(max(step - 1, 0))


def load_parent(
    stage: Stage, variables: dict[str, Any], workdir: str, parent: str | None
) -> dict[str, Any]:
    """``variables`` with ``init_from.subtrees`` loaded from ``init_from.path`` (``init_path``)
    or from the parent run (when there is one): from its best validated checkpoint when it kept
    one, else its latest (``rundir.weights``; an explicit ``init_from.step`` reads that step of
    the latest ones). ``transfer.json`` records the report (its source relative to the run, a
    path absolute; from a parent also the step and ``checkpoint`` 'best' | 'latest')."""
    init_from, name = stage.config.init_from, stage.config.name
    if init_from.get("path"):
        variables, report = init_path.load(stage.config, variables)
        source = report["source"]
    elif parent is None:
        if init_from.get("stage"):
            raise ValueError(
                f"stage {name!r}: init_from.stage={init_from.stage!r} needs that run's "
                "directory (train_and_evaluate(..., parent=DIR))"
            )
        return variables
    else:
        folder, which = rundir.weights(parent)
        if init_from.get("step") is not None:  # an explicit step is one of the latest steps
            folder, which = rundir.checkpoints(parent), "latest"
        variables, report = transfer.from_config(variables, init_from, folder)
        report = {**report, "checkpoint": which}
        source = os.path.relpath(report["source"], workdir)
    rundir.write_json(workdir, rundir.TRANSFER, {**report, "source": source})
    print(f"{name}: {transfer.format_report(report)}", flush=True)
    return variables


def start(
    stage: Stage, variables: dict[str, Any], out: Outputs
) -> tuple[TrainState, programs.Program]:
    """The state to train from: the newest intact checkpoint, else step 0 of ``variables``."""
    replicated = mesh_lib.replicated(stage.mesh)

    def target(step: int) -> TrainState:  # structure and shardings of a state saved at step
        tx = programs.plan_optimizer(stage, saved_plan(stage, step))[0]
        shapes = jax.eval_shape(lambda v: steps.new_state(v, tx, stage.config.seed), variables)
        return checkpoint.abstract(shapes, replicated)

    state = None
    if out.checkpoints.all_steps():
        with out.clock("checkpoint_read"):
            state = checkpoint.restore(out.checkpoints, target)
        name, resumed = stage.config.name, int(state["step"])
        print(f"{name}: resumed from step {resumed} ({out.workdir})", flush=True)
    step = int(state["step"]) if state is not None else 0
    program = programs.build(stage, saved_plan(stage, step))
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


def evaluate(
    stage: Stage, program: programs.Program, out: Outputs, state, split: str
) -> dict[str, Any]:
    """Per-example metrics of ``state`` on ``split`` (timed as ``evaluate``: device steps, and
    ``host_metrics`` apart)."""
    config, arrays = stage.config, stage.arrays[split]
    with out.clock("evaluate"):
        first = next(batches.eval_batches(arrays, stage.task.keys, config.batch_size))
        args = (state, mesh_lib.put_batch(first, stage.mesh))
        eval_step = programs.compiled(program, "eval_step", args, out.clock)
        return steps.evaluate(
            eval_step, state, arrays, stage.task, config.batch_size, stage.mesh, out.clock
        )


def validate(
    stage: Stage, program: programs.Program, out: Outputs, stopper: EarlyStopping, step: int, state
) -> None:
    """Evaluate on the validation split; keep the state if it is the best so far."""
    per = evaluate(stage, program, out, state, "val")
    means = steps.summarize(stage.task, per)
    if stopper.monitor not in means:
        raise ValueError(
            f"stage {stage.config.name!r}: monitor={stopper.monitor!r} is not a metric of task "
            f"{stage.task.name!r} ({sorted(means)})"
        )
    out.writer.write(step, {f"val/{k}": v for k, v in means.items() if math.isfinite(v)})
    if stopper.update(step, means[stopper.monitor]):
        out.best.keep(step, state)


def save(out: Outputs, step: int, state, stopper: EarlyStopping) -> None:
    """Checkpoint ``state`` at ``step``: first the best state kept since the last checkpoint,
    then the latest state, then (when validating) the early-stopping record, which a resumed
    run reads with that checkpoint (timed as ``checkpoint_write``)."""
    with out.clock("checkpoint_write"):
        if out.best is not None:
            out.best.flush()
        checkpoint.save(out.checkpoints, step, state)
    if out.best is not None:
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
    line = progress.line(step, loss, out.clock.seconds["compile"])
    print(f"{stage.config.name}: {line}", flush=True)
    scalars = {"train/loss": loss, "train/img_per_s": progress.images_per_s(step)}
    out.writer.write(step, {k: v for k, v in scalars.items() if math.isfinite(v)})


def preempt(
    stage: Stage, out: Outputs, step: int, state, acc: Any, stopper: EarlyStopping, saved: bool
) -> None:
    """After SIGTERM: checkpoint ``step`` (unless just saved; never a NaN state), raise."""
    if not saved:
        raise_if_nonfinite(jax.device_get(acc.compute()), stage.config, out.workdir)
        save(out, step, state, stopper)
    out.close()
    rundir.add_timing(out.workdir, out.clock.totals())
    print(f"{stage.config.name}: SIGTERM: saved step {step}, stopping", flush=True)
    raise Preempted(step, out.workdir)


def next_plan(stage: Stage, program: programs.Program, state: TrainState, step: int):
    """At an unfreezing step: the next plan's program (compiled once) and the state with the
    optimizer state carried over for groups whose members did not change."""
    new = programs.build(stage, stage.schedule.index_at(step))
    opt_state = schedule_lib.carry_state(
        state["opt_state"], program.labels, new.optimizer.init(state["params"]), new.labels
    )
    return new, mesh_lib.put_replicated({**state, "opt_state": opt_state}, stage.mesh)


def fit(
    stage: Stage, out: Outputs, state: TrainState, program: programs.Program, stopper: EarlyStopping
) -> tuple[TrainState, programs.Program, int]:
    """Train from ``state`` to ``config.steps`` or an early stop; returns the last state, its
    program and the step reached. Steps are timed as ``train`` up to the log step that waits
    for them; checkpoints, validation and compilation are timed apart."""
    config, keys, train = stage.config, stage.task.keys, stage.arrays["train"]
    step = int(state["step"])
    if step and stopper.step < step and evaluating_at(stage, step):
        validate(stage, program, out, stopper, step, state)  # killed before validating it
    elif not step and validates_start(stage, out.workdir):
        validate(stage, program, out, stopper, step, state)
    progress = Progress(config.steps, config.batch_size)
    acc, train_step = fresh_metrics(stage), None
    with catch_sigterm() as sigterm, out.clock("train"):
        while step < config.steps and not stopper.should_stop:
            if stage.schedule.index_at(step) != program.plan:  # a block unfreezes
                (program, state), train_step = next_plan(stage, program, state, step), None
            index = batches.train_indices(len(train[keys[0]]), config.batch_size, step, config.seed)
            batch = mesh_lib.put_batch(batches.take(train, index, keys), stage.mesh)
            args = (state, acc, batch)
            train_step = train_step or programs.compiled(program, "train_step", args, out.clock)
            state, acc = train_step(*args)
            step += 1
            if progress.first_s is None:
                jax.block_until_ready(state)
                progress.tick(step)
            evaluating = evaluating_at(stage, step)
            due = step % config.checkpoint_every == 0 or step == config.steps
            logging_step = due or evaluating or step % config.log_every == 0
            saving = False
            if logging_step:
                log(stage, out, acc, step, progress)  # waits for the steps so far
                acc = fresh_metrics(stage)
                if evaluating:
                    validate(stage, program, out, stopper, step, state)
                saving = due or stopper.should_stop
                if saving:
                    save(out, step, state, stopper)
            if sigterm.agreed(sync_point=logging_step):
                preempt(stage, out, step, state, acc, stopper, saved=saving)
    return state, program, step


def validates_start(stage: Stage, workdir: str) -> bool:
    """Whether the run validates step 0, before its first update: with a validation split, when
    it starts from a whole transferred net (``transfer.json``: no leaf freshly initialised). Its
    best checkpoint may then be that net unchanged, when training on this stage's examples never
    beats it on validation (fine-tuning on few masks can undo a pretext's gain). A start with
    fresh leaves (a new head or decoder) predicts noise and is not a candidate."""
    report = rundir.read_json(workdir, rundir.TRANSFER)
    return "val" in stage.arrays and report is not None and not report["kept"]


def evaluating_at(stage: Stage, step: int) -> bool:
    """Whether the stage validates after ``step`` (every ``eval_every`` steps and at the end)."""
    every = settings.eval_every(stage.config)
    return "val" in stage.arrays and (step % every == 0 or step == stage.config.steps)


def fresh_metrics(stage: Stage) -> TrainMetrics:
    """Empty training metrics on the mesh."""
    return jax.device_put(TrainMetrics.empty(), mesh_lib.replicated(stage.mesh))


def held_out_result(
    stage: Stage, program: programs.Program, out: Outputs, state, step: int, stopper: EarlyStopping
) -> dict[str, Any]:
    """Evaluate ``state`` on the held-out fold; the result ``result.json`` holds."""
    task, rows = stage.task, stage.index
    per_example = evaluate(stage, program, out, state, "test")
    means, nonfinite = steps.summarize(task, per_example), steps.finite_means(per_example)[1]
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
        "labels_derived": stage.derived,
        "steps": step,
        # the steps the run was set to train (resolved from ``epochs`` when given) and the cap
        "planned_steps": int(stage.config.steps),
        "epochs": stage.config.get("epochs", 0),
        "max_steps": int(stage.config.get("max_steps", stage.config.steps)),
        "evaluated_step": int(state["step"]),
        "early_stopping": stopper.to_dict() if len(rows["val"]) else None,
    }


def transferred(workdir: str) -> dict[str, Any] | None:
    """What the run started from: {'source', 'step', 'checkpoint'} of its ``transfer.json``, or
    None when it loaded nothing."""
    report = rundir.read_json(workdir, rundir.TRANSFER)
    return {k: report.get(k) for k in ("source", "step", "checkpoint")} if report else None


def open_outputs(workdir: str, validating: bool, clock: Clock) -> Outputs:
    """Checkpoint managers and (process 0 only) the metric writer of the run in ``workdir``."""
    best = None
    if validating:
        best = BestState(checkpoint.manager(rundir.best(workdir), max_to_keep=1))
    writer = MetricWriter(workdir) if distributed.is_primary() else NullMetricWriter()
    latest = checkpoint.manager(rundir.checkpoints(workdir))
    return Outputs(workdir, latest, best, writer, clock)


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
    the held-out fold, the per-example values, the sizes of the splits, and the trivial
    baselines with ``beats_baseline`` (``train.health``). ``parent`` is the
    directory of the run whose checkpoint ``init_from`` loads from (required when
    ``init_from.stage`` names one). A finished run (``result.json`` present) is neither trained
    nor evaluated again: its saved result is returned, the file untouched. ``overwrite=True``
    first deletes the run's outputs (``rundir.OUTPUTS``) and trains from scratch, whatever config
    ran there. SIGTERM during training checkpoints the current step and raises ``Preempted``.
    """
    settings.check_settings(config)
    clock = Clock()
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
        with clock("startup"):
            dataset = dataset if dataset is not None else data.load(config.data)
            stage = prepare_stage(config, dataset)
        return train(stage, workdir, parent, clock)


def train(stage: Stage, workdir: str, parent: str | None, clock: Clock) -> dict[str, Any]:
    """Train and evaluate the prepared ``stage`` in ``workdir``; returns the result. A loss that
    became NaN/inf marks the run failed (``rundir.FAILED``) before the error propagates. The
    run's time per phase is added to ``rundir.TIMING``."""
    config = stage.config
    random = health.untrained(stage)  # before training donates the fresh variables' buffers
    with clock("checkpoint_read"):
        variables = load_parent(stage, stage.variables, workdir, parent)
    with clock("startup"):
        out = open_outputs(workdir, "val" in stage.arrays, clock)
    n_train = len(stage.index["train"])
    for kind, count in stage.derived.items():
        print(f"{config.name}: {kind} derived from masks for {count} of {n_train} training "
              "examples (the others are stored labels)", flush=True)  # fmt: skip
    state, program = start(stage, variables, out)
    stopper = early_stopping(stage, workdir, int(state["step"]))
    try:
        state, program, step = fit(stage, out, state, program, stopper)
    except FloatingPointError as err:
        rundir.mark_failed(workdir, str(err))
        out.close()
        rundir.add_timing(workdir, clock.totals())
        raise
    if stopper.should_stop:
        print(
            f"{config.name}: stopped early at step {step}; best {stopper.monitor} "
            f"{stopper.best:.4f} at step {stopper.best_step}",
            flush=True,
        )
    if out.best is not None:  # evaluate the best validated state
        target = checkpoint.abstract(state, mesh_lib.replicated(stage.mesh))
        with clock("checkpoint_read"):
            state = checkpoint.restore(out.best.manager, target)
    result = held_out_result(stage, program, out, state, step, stopper)
    with clock("evaluate"):
        figure = result["metrics"][stage.task.primary]
        result.update(health.health(stage, stage.model(program.plan), state, figure, random))
    result["transfer"] = transferred(workdir)
    with clock("checkpoint_write"):
        out.close()  # waits for pending checkpoint writes
    rundir.add_timing(workdir, clock.totals())
    rundir.write_json(workdir, rundir.RESULT, result)
    return result


__all__ = ["Preempted", "train_and_evaluate"]
