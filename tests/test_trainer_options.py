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


def test_depth_lr_scales_each_blocks_first_update_by_its_multiplier(
    tiny_run, tiny_fundus, tmp_path, capsys
):
    """From the same init and batch, step 1's Adam update under depth_lr:0.5 is the plain
    update times 0.5^i in stage i and 0.5^L in the bottleneck (optax.scale after the optimizer),
    and the plan is printed."""

    def first_step(name: str, freeze: str) -> dict[str, np.ndarray]:
        run = tiny_run(tmp_path / name, "scratch")
        run.config.update(freeze=freeze, steps=1)
        assert train_and_evaluate(run.config, run.workdir, tiny_fundus)["steps"] == 1
        return read_variables(os.path.join(run.workdir, "checkpoints"), collections=("params",))

    scaled, plain = first_step("depth_lr", "depth_lr:0.5"), first_step("plain", "none")
    out = capsys.readouterr().out
    assert "bottleneck/*" in out and "lr*0.25" in out
    run = tiny_run(tmp_path / "init", "scratch")
    model = models.build(run.config.model, "pixels", 1)
    initial = init_variables(run.config, model, tiny_fundus.arrays["image"][:1], str(tmp_path))
    start = {f"params/{p}": np.asarray(v) for p, v in flatten(initial["params"]).items()}
    depth = 1 + max(int(p.split("/")[2][6:]) for p in start if p.startswith("params/encoder/"))
    multipliers = set()
    for p, init in start.items():
        block = p.split("/")[1]
        m = {"encoder": None, "decoder": None, "bottleneck": 0.5**depth, "head": 1.0}[block]
        m = 0.5 ** int(p.split("/")[2][6:]) if m is None else m
        multipliers.add(m)
        assert np.abs(plain[p] - init).max() > 0, p  # every block moves in the plain run
        np.testing.assert_allclose(scaled[p] - init, m * (plain[p] - init), rtol=1e-4,
                                   atol=1e-7, err_msg=p)  # fmt: skip
    assert multipliers == {0.5**i for i in range(depth + 1)}


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
