"""Early stopping: the rule, the validation split, and the trainer keeping the best checkpoint."""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
import pytest
from conftest import checkpoint_steps, read_variables

from jaxseg import checkpoint, tasks
from jaxseg.data.splits import validation_split
from jaxseg.train import loop
from jaxseg.train.best import BestState
from jaxseg.train.early_stopping import EarlyStopping, perfect
from jaxseg.train.loop import train_and_evaluate
from jaxseg.train.settings import check_settings, eval_every
from jaxseg.train.setup import resolve_steps, with_steps
from jaxseg.train.writers import read_jsonl


def test_max_metric_improves_by_more_than_min_delta_and_stops_after_patience():
    es = EarlyStopping("dice", patience=2, min_delta=0.01)
    assert es.mode == "max"
    assert es.update(10, 0.5) and es.best_step == 10
    assert not es.update(20, 0.505)  # below min_delta
    assert not es.should_stop
    assert es.update(30, 0.52) and es.bad_evals == 0
    assert not es.update(40, 0.1) and not es.update(50, 0.2)
    assert es.should_stop and es.best == 0.52 and es.best_step == 30


def test_a_run_that_never_improved_on_its_first_validation_is_not_stopped():
    es = EarlyStopping("dice", patience=2)
    for step in (25, 50, 75, 100):  # an empty prediction: Dice 0 at every validation
        es.update(step, 0.0)
    assert es.bad_evals == 3 and not es.should_stop
    assert es.update(125, 0.27) and not es.should_stop  # it begins to learn
    assert not es.update(150, 0.2) and not es.update(175, 0.25)
    assert es.should_stop and es.best_step == 125
    # a record saved before first_step existed keeps its old meaning
    old = EarlyStopping(**{k: v for k, v in es.to_dict().items() if k != "first_step"})
    assert old.should_stop
    old.update(200, 0.9)  # resumed: a gain after the resume is no "first validation"
    assert old.first_step == -1 and not old.update(225, 0.1) and not old.update(250, 0.1)
    assert old.should_stop


@pytest.mark.parametrize(
    "metric, first, then", [("auc", 1.0, 0.9), ("dice[benign]", 1.0, 0.8), ("mse", 0.0, 0.1)]
)
def test_a_perfect_first_validation_counts_patience(metric, first, then):
    es = EarlyStopping(metric, patience=2)  # nothing can beat it: no gain will come
    assert es.update(25, first) and not es.update(50, then) and not es.should_stop
    assert not es.update(75, first) and es.should_stop and es.best_step == 25


def test_only_known_bounds_are_perfect():
    assert perfect("dice_all") == 1.0 and perfect("hd95") == 0.0 and perfect("distance") is None
    es = EarlyStopping("distance", patience=1)  # unbounded: 1.0 is no ceiling
    es.update(25, 1.0), es.update(50, 0.5)
    assert not es.should_stop


def test_lower_is_better_metrics_and_patience_zero_never_stops():
    es = EarlyStopping("center_error")
    assert es.mode == "min"
    assert es.update(1, 5.0) and es.update(2, 4.0) and not es.update(3, 4.5)
    assert es.best == 4.0 and not es.should_stop
    assert EarlyStopping(**es.to_dict()) == es


def test_every_tasks_primary_metric_is_monitored_in_its_direction():
    """The monitor defaults to the task's primary metric: an error must be minimised (the
    autoencoder's 'mse' was maximised before, keeping its worst reconstruction as 'best')."""
    lower = {"center_error", "mse"}
    info = tasks.DataInfo(num_labels=2)
    primaries = {tasks.build(name, info=info).primary for name in tasks.TASKS}
    assert lower <= primaries
    for metric in primaries:
        assert EarlyStopping(metric).mode == ("min" if metric in lower else "max"), metric


def test_validation_split_is_group_aware_deterministic_and_disjoint():
    groups = np.repeat(np.arange(10), 3)
    train = np.arange(24)  # groups 0..7
    tr, va = validation_split(train, groups, 0.25, seed=3)
    assert set(tr) | set(va) == set(train) and not set(tr) & set(va)
    assert len(np.unique(groups[va])) == 2  # round(0.25 * 8 groups)
    assert not set(groups[tr]) & set(groups[va])
    assert np.array_equal(va, validation_split(train, groups, 0.25, seed=3)[1])
    assert not np.array_equal(va, validation_split(train, groups, 0.25, seed=4)[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_validation_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="fraction"):
        validation_split(np.arange(4), np.arange(4), fraction, 0)


def test_validation_split_needs_two_groups():
    with pytest.raises(ValueError, match="val_fraction=0"):
        validation_split(np.arange(3), np.zeros(3, int), 0.5, 0)


def loop_config(**fields) -> ml_collections.ConfigDict:
    """The loop settings ``check_settings`` and ``resolve_steps`` read."""
    base = dict(name="s", steps=100, epochs=0, batch_size=4, log_every=1, checkpoint_every=1,
                val_fraction=0.0, eval_every=0, patience=0, unfreeze_every=0,
                frozen_norm="stored")  # fmt: skip
    return ml_collections.ConfigDict({**base, **fields})


@pytest.mark.parametrize(
    "fields, n_train, steps",
    [
        (dict(epochs=0), 6, 100),  # no epochs: the steps as given
        (dict(epochs=3), 6, 6),  # ceil(6 / 4) = 2 steps per epoch
        (dict(epochs=3), 10, 9),  # ceil(10 / 4) = 3 steps per epoch
        (dict(epochs=3), 200, 100),  # 150 steps, capped at steps=100
        (dict(epochs=3, steps=0), 200, 150),  # no cap
        (dict(epochs=0.5), 6, 1),
        (dict(epochs=3, batch_size=8), 3, 3),  # fewer examples than a batch: 1 step per epoch
        (dict(epochs=3, min_steps=20), 6, 20),  # 6 steps from epochs, raised to the floor
        (dict(epochs=3, min_steps=20), 40, 30),  # above the floor: the epochs decide
        (dict(epochs=3, min_steps=200), 6, 100),  # the floor capped at steps=100
        (dict(epochs=0, min_steps=200), 6, 100),  # no epochs: the steps as given
    ],
)
def test_resolve_steps_from_epochs_scales_with_the_training_examples(fields, n_train, steps):
    assert resolve_steps(loop_config(**fields), n_train) == steps


def test_with_steps_records_the_cap_and_leaves_step_configs_alone():
    config = loop_config(epochs=3)
    resolved = with_steps(config, 6)
    assert (resolved.steps, resolved.max_steps, resolved.epochs) == (6, 100, 3)
    assert config.steps == 100 and "max_steps" not in config
    plain = loop_config()
    assert with_steps(plain, 100) is plain


def test_eval_every_falls_back_to_the_checkpoint_interval():
    assert eval_every(loop_config(eval_every=5, checkpoint_every=7)) == 5
    assert eval_every(loop_config(eval_every=0, checkpoint_every=7)) == 7


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(steps=0), "steps=0 must be an int >= 1"),
        (dict(epochs=-1), "epochs=-1 must be a number >= 0"),
        (dict(epochs="10"), "epochs='10' must be a number"),
        (dict(epochs=2, steps=-1), "steps=-1 must be an int >= 0"),
    ],
)
def test_check_settings_refuses_bad_epochs_and_steps(fields, message):
    with pytest.raises(ValueError, match=message):
        check_settings(loop_config(**fields))
    check_settings(loop_config(epochs=2, steps=0))  # epochs alone: no maximum


def test_trainer_stops_early_and_evaluates_the_best_checkpoint(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch", budget=8)
    # Adam at 1e-2, validated every step: the validation loss falls to its best at step 7
    # (2.032), then rises at steps 8 and 9, so patience 2 stops at step 9. 6 epochs of 6
    # training examples at batch 4: 12 steps planned.
    run.config.optimizer.update(learning_rate=1e-2)
    run.config.update(val_fraction=0.25, eval_every=1, monitor="loss", patience=2)
    run.config.update(epochs=6, steps=50)
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert result["n_val"] == 2 and result["n_train"] == 6
    assert (result["planned_steps"], result["max_steps"], result["epochs"]) == (12, 50, 6)
    assert result["steps"] == 9 and result["evaluated_step"] == 7
    assert result["early_stopping"]["best_step"] == 7
    assert checkpoint_steps(os.path.join(run.workdir, "checkpoints_best")) == [7]
    records = read_jsonl(os.path.join(run.workdir, "metrics.jsonl"))
    assert [r["step"] for r in records if "val/loss" in r] == list(range(1, 10))
    # A re-run of the finished stage neither trains nor changes the outcome.
    again = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert again["per_example"] == result["per_example"]


def test_unknown_monitor_is_refused(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch", budget=8)
    run.config.update(val_fraction=0.25, eval_every=3, monitor="dcie")
    with pytest.raises(ValueError, match="monitor='dcie' is not a metric"):
        train_and_evaluate(run.config, run.workdir, tiny_fundus)


def validated_run(tiny_run, root):
    """A tiny scratch stage validated at every step, checkpointed every 3 of its 6 steps."""
    run = tiny_run(root, "scratch", budget=8)
    run.config.update(val_fraction=0.25, eval_every=1, monitor="loss", patience=0, steps=6)
    run.config.update(checkpoint_every=3)
    return run


def test_best_state_is_written_with_the_checkpoints_not_at_each_validation(
    tiny_run, tiny_fundus, tmp_path, monkeypatch
):
    run = validated_run(tiny_run, tmp_path)
    saves, kept = [], {}
    save, keep = checkpoint.save, BestState.keep

    def recording_save(manager, step, state):
        saves.append((os.path.basename(str(manager.directory)), step))
        save(manager, step, state)

    def recording_keep(self, step, state):
        kept[step] = checkpoint.flatten(jax.device_get(state["params"]))
        keep(self, step, state)

    monkeypatch.setattr(checkpoint, "save", recording_save)
    monkeypatch.setattr(BestState, "keep", recording_keep)
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    records = read_jsonl(os.path.join(run.workdir, "metrics.jsonl"))
    assert [r["step"] for r in records if "val/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert 1 in kept  # the first validation is always an improvement
    # two checkpoint times (steps 3 and 6): at most one best write each, whatever improved
    assert [s for d, s in saves if d == "checkpoints"] == [3, 6]
    best_writes = [s for d, s in saves if d == "checkpoints_best"]
    assert best_writes == sorted(best_writes) and 1 <= len(best_writes) <= 2
    best = result["early_stopping"]["best_step"]
    assert best_writes[-1] == best == result["evaluated_step"]
    assert checkpoint_steps(os.path.join(run.workdir, "checkpoints_best")) == [best]
    # what was written is the state as validated at that step, not a later one
    written = read_variables(os.path.join(run.workdir, "checkpoints_best"), collections=("params",))
    assert all(np.array_equal(written["params/" + p], v) for p, v in kept[best].items())


def test_a_run_killed_between_checkpoints_finds_the_same_best_state(
    tiny_run, tiny_fundus, tmp_path, monkeypatch
):
    """Killed after step 5 with a best state kept but not yet written: the resumed run starts
    from step 3, validates steps 4-5 again and ends as the uninterrupted run."""
    whole = validated_run(tiny_run, tmp_path / "whole")
    reference = train_and_evaluate(whole.config, whole.workdir, tiny_fundus)
    killed = validated_run(tiny_run, tmp_path / "killed")
    log = loop.log

    def dies_at_step_5(stage, out, acc, step, progress):
        if step == 5:
            raise KeyboardInterrupt
        log(stage, out, acc, step, progress)

    monkeypatch.setattr(loop, "log", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(killed.config, killed.workdir, tiny_fundus)
    assert checkpoint_steps(os.path.join(killed.workdir, "checkpoints")) == [3]
    monkeypatch.setattr(loop, "log", log)
    resumed = train_and_evaluate(killed.config, killed.workdir, tiny_fundus)
    assert resumed["early_stopping"] == reference["early_stopping"]
    assert resumed["per_example"] == reference["per_example"]
    best = [os.path.join(w, "checkpoints_best") for w in (whole.workdir, killed.workdir)]
    a, b = (read_variables(d) for d in best)
    assert all(np.array_equal(a[p], b[p]) for p in a)


def test_a_whole_transferred_net_is_validated_before_training_and_may_stay_best(
    tiny_run, tiny_fundus, tmp_path
):
    """Started from every leaf of a finished run, a stage validates step 0; when no later
    validation beats it (here min_delta is out of reach) it is tested as transferred, equal
    to its source. A start with fresh leaves (a new decoder and head) is not validated."""
    parent = validated_run(tiny_run, tmp_path / "parent")
    source = train_and_evaluate(parent.config, parent.workdir, tiny_fundus)

    def child(name: str, subtrees: str):
        run = validated_run(tiny_run, tmp_path / name)
        run.config.update(steps=3, min_delta=10.0)
        run.config.init_from.update(path=parent.workdir, subtrees=subtrees)
        result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
        records = read_jsonl(os.path.join(run.workdir, "metrics.jsonl"))
        return result, [r["step"] for r in records if "val/loss" in r]

    whole, validated = child("whole", "encoder+bottleneck+decoder+head")
    assert validated == [0, 1, 2, 3]
    assert whole["evaluated_step"] == whole["early_stopping"]["best_step"] == 0
    assert whole["steps"] == 3 and whole["per_example"] == source["per_example"]
    part, validated = child("part", "encoder+bottleneck")
    assert validated == [1, 2, 3] and part["evaluated_step"] == 1
