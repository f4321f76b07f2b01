"""Early stopping: the rule, the validation split, and the trainer keeping the best checkpoint."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import checkpoint_steps

from jaxseg.data.splits import validation_split
from jaxseg.train.early_stopping import EarlyStopping
from jaxseg.train.loop import train_and_evaluate
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


def test_lower_is_better_metrics_and_patience_zero_never_stops():
    es = EarlyStopping("center_error")
    assert es.mode == "min"
    assert es.update(1, 5.0) and es.update(2, 4.0) and not es.update(3, 4.5)
    assert es.best == 4.0 and not es.should_stop
    assert EarlyStopping(**es.to_dict()) == es


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


def test_trainer_stops_early_and_evaluates_the_best_checkpoint(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch", budget=8)
    # lr 1e-9 (0 is refused): the loss cannot improve by min_delta after the first validation,
    # so patience 1 stops at step 4.
    run.config.optimizer.update(name="sgd", learning_rate=1e-9)
    run.config.update(val_fraction=0.25, eval_every=2, monitor="loss", patience=1, min_delta=1e-3)
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert result["n_val"] == 2 and result["n_train"] == 6
    assert result["steps"] == 4 and result["evaluated_step"] == 2
    assert result["early_stopping"]["best_step"] == 2
    assert checkpoint_steps(os.path.join(run.workdir, "checkpoints_best")) == [2]
    records = read_jsonl(os.path.join(run.workdir, "metrics.jsonl"))
    assert [r["step"] for r in records if "val/loss" in r] == [2, 4]
    # A re-run of the finished stage neither trains nor changes the outcome.
    again = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert again["per_example"] == result["per_example"]


def test_unknown_monitor_is_refused(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch", budget=8)
    run.config.update(val_fraction=0.25, eval_every=3, monitor="dcie")
    with pytest.raises(ValueError, match="monitor='dcie' is not a metric"):
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
