"""Stage options inside the trainer: freeze plans, progressive unfreezing, augmentation."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import read_variables

from jaxseg.surgery.paths import flatten
from jaxseg.train.loop import train_and_evaluate
from jaxseg.train.setup import prepare_stage

BLOCKS = ["encoder/stage_0", "encoder/stage_1", "bottleneck", "decoder/stage_1", "decoder/stage_0"]


def block_of(path: str) -> str:
    """'params/decoder/stage_0/conv_0/kernel' -> its block (the head belongs to decoder/stage_0)."""
    inner = path.split("/", 1)[1]
    if inner.startswith("head/"):
        return "decoder/stage_0"
    return next(b for b in BLOCKS if inner.startswith(b + "/"))


def moved_blocks(run, tiny_fundus, tmp_path) -> set[str]:
    """The blocks whose params or batch_stats differ from the stage's step-0 values."""
    initial = prepare_stage(run.config, tiny_fundus).variables
    start = {f"{c}/{p}": np.asarray(v) for c in initial for p, v in flatten(initial[c]).items()}
    final = read_variables(os.path.join(run.workdir, "checkpoints"))
    return {block_of(p) for p in final if not np.array_equal(final[p], start[p])}


@pytest.mark.parametrize(
    "direction,steps,expected",
    [
        ("shallow_to_deep", 3, {"encoder/stage_0", "encoder/stage_1", "bottleneck"}),
        ("deep_to_shallow", 2, {"decoder/stage_0", "decoder/stage_1"}),
    ],
)
def test_progressive_unfreezing_trains_the_right_blocks(
    tiny_run, tiny_fundus, tmp_path, capsys, direction, steps, expected
):
    run = tiny_run(tmp_path / "run", "scratch")
    run.config.update(freeze=direction, unfreeze_at=(1, 2, 3, 4), steps=steps, log_every=1)
    train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert moved_blocks(run, tiny_fundus, tmp_path / "init") == expected
    out = capsys.readouterr().out
    assert [f"freeze plan {k}/5 from step {k - 1}" in out for k in range(1, 6)] == [
        k <= steps for k in range(1, 6)
    ]


def test_depth_lr_plan_runs_and_is_printed(tiny_run, tiny_fundus, tmp_path, capsys):
    run = tiny_run(tmp_path, "scratch")
    run.config.update(freeze="depth_lr:0.5")
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    out = capsys.readouterr().out
    assert "bottleneck/*" in out and "lr*0.25" in out and result["steps"] == run.config.steps


def test_unknown_freeze_preset_is_refused(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    run.config.update(freeze="contracting")
    with pytest.raises(ValueError, match="freeze preset 'contracting' is unknown"):
        train_and_evaluate(run.config, run.workdir, tiny_fundus)


def test_frozen_preset_keeps_params_and_batch_stats_bit_identical_under_adamw(
    tiny_run, tiny_fundus, tmp_path
):
    run = tiny_run(tmp_path / "run", "scratch")
    run.config.update(freeze="encoder")
    run.config.optimizer.update(name="adamw", weight_decay=0.1)
    train_and_evaluate(run.config, run.workdir, tiny_fundus)
    moved = moved_blocks(run, tiny_fundus, tmp_path / "init")
    assert moved == {"decoder/stage_1", "decoder/stage_0"}  # encoder and bottleneck untouched


def test_augmentation_in_the_step_is_deterministic_and_changes_training(
    tiny_run, tiny_fundus, tmp_path
):
    def train(name: str, **augment):
        run = tiny_run(tmp_path / name, "scratch")
        run.config.augment.update(augment)
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
        return read_variables(os.path.join(run.workdir, "checkpoints"))

    plain = train("plain")
    a = train("a", rotate=20.0, flip=True, zoom=0.1, blur=1.0)
    b = train("b", rotate=20.0, flip=True, zoom=0.1, blur=1.0)
    assert all(np.array_equal(a[p], b[p]) for p in a)
    assert any(not np.array_equal(a[p], plain[p]) for p in a)
