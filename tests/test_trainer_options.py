"""Stage options inside the trainer: freeze plans, progressive unfreezing, frozen modules in
inference mode (``frozen_norm``), augmentation."""

from __future__ import annotations

import os
import re

import jax
import numpy as np
import pytest
from conftest import read_variables

from jaxseg.surgery import presets
from jaxseg.surgery.paths import flatten, matches, unflatten
from jaxseg.train.loop import train_and_evaluate
from jaxseg.train.setup import prepare_stage

DEEPLAB = dict(name="deeplabv3", backbone="vgg16", norm="batch", aspp_width=8)
DENSE = dict(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=2, reconstruct=True)


def moved_blocks(run, tiny_fundus) -> set[int]:
    """Indices (``presets.blocks`` order, shallow first) of the blocks whose params or
    batch_stats differ from the stage's step-0 values."""
    initial = prepare_stage(run.config, tiny_fundus).variables
    blocks = presets.blocks(initial["params"])
    start = {f"{c}/{p}": np.asarray(v) for c in initial for p, v in flatten(initial[c]).items()}
    final = read_variables(os.path.join(run.workdir, "checkpoints"))
    moved = [p.split("/", 1)[1] + "/" for p in final if not np.array_equal(final[p], start[p])]
    return {next(k for k, rx in enumerate(blocks) if re.match(rx, p)) for p in moved}


@pytest.mark.parametrize(
    "model,n,direction,steps,expected",
    [
        ({}, 5, "shallow_to_deep", 3, {0, 1, 2}),  # encoder/stage_0, stage_1, bottleneck
        ({}, 5, "deep_to_shallow", 2, {4, 3}),  # decoder/stage_0 + head, decoder/stage_1
        (DEEPLAB, 6, "deep_to_shallow", 2, {5, 4}),  # aspp + conv + head, encoder/stage_4
        (DENSE, 5, "deep_to_shallow", 2, {4, 3}),  # with reconstruction/stage_i and its head
    ],
    ids=["unet-shallow", "unet-deep", "deeplab-deep", "dense-deep"],
)
def test_progressive_unfreezing_trains_the_right_blocks(
    tiny_run, tiny_fundus, tmp_path, capsys, model, n, direction, steps, expected
):
    """``n`` blocks, one more trainable at each step; after ``steps`` steps exactly the first
    ``steps`` blocks from the chosen end have moved."""
    run = tiny_run(tmp_path / "run", "scratch")
    run.config.model.update(model)
    run.config.update(freeze=direction, unfreeze_at=tuple(range(1, n)), steps=steps, log_every=1)
    train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert moved_blocks(run, tiny_fundus) == expected
    out = capsys.readouterr().out
    assert [f"freeze plan {k}/{n} from step {k - 1}" in out for k in range(1, n + 1)] == [
        k <= steps for k in range(1, n + 1)
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
    initial = prepare_stage(run.config, tiny_fundus).variables
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
    moved = moved_blocks(run, tiny_fundus)
    assert moved == {3, 4}  # decoder/stage_1, decoder/stage_0 + head; encoder and bottleneck not


# --- frozen means inference mode -------------------------------------------------------------

FROZEN_PARTS = ("encoder", "bottleneck")  # the 'encoder' preset


@pytest.fixture(scope="module")
def frozen_runs(tiny_run, tiny_fundus, tmp_path_factory):
    """Two 2-step runs of the scratch stage with the 'encoder' preset (U-Net with BatchNorm and
    dropout), checkpointed at both steps: frozen_norm 'stored' and 'adapt'."""
    runs = {}
    for norms in ("stored", "adapt"):
        run = tiny_run(tmp_path_factory.mktemp(norms), "scratch")
        assert run.config.model.dropout > 0 and run.config.model.norm == "batch"
        run.config.update(freeze="encoder", frozen_norm=norms, steps=2, checkpoint_every=1)
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
        runs[norms] = run
    return runs


def test_frozen_encoder_output_is_bit_identical_across_training_steps(frozen_runs, tiny_fundus):
    """The training-mode forward of the stage's model at step 1 and step 2 (each with its own
    dropout key) gives the frozen encoder's and bottleneck's outputs bit for bit; the decoder's
    dropout is live, and so would the encoder's be if it were not frozen."""
    run = frozen_runs["stored"]
    stage = prepare_stage(run.config, tiny_fundus)
    model = stage.model(0)
    x = stage.arrays["train"][stage.task.keys[0]][:4]  # a fixed batch
    ckpt = os.path.join(run.workdir, "checkpoints")

    def outputs(model, step: int, key: int, part: str) -> list[np.ndarray]:
        variables = unflatten(read_variables(ckpt, step))
        _, state = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(key)},
                               mutable=True, capture_intermediates=True)  # fmt: skip
        return [np.asarray(a) for a in jax.tree.leaves(state["intermediates"][part]["__call__"])]

    def same(a: list, b: list) -> bool:
        return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))

    for part in FROZEN_PARTS:
        assert same(outputs(model, 1, 1, part), outputs(model, 2, 2, part)), part
    assert not same(outputs(model, 2, 1, "decoder"), outputs(model, 2, 2, "decoder"))
    live = model.clone(frozen="")
    assert not same(outputs(live, 1, 1, "encoder"), outputs(live, 2, 2, "encoder"))


def test_frozen_norm_adapt_moves_frozen_statistics_not_parameters(frozen_runs, tiny_fundus):
    run = frozen_runs["adapt"]
    initial = flatten(prepare_stage(run.config, tiny_fundus).variables)
    final = read_variables(os.path.join(run.workdir, "checkpoints"))
    frozen = [p for p in final if p.split("/")[1] in FROZEN_PARTS]
    stats = [p for p in frozen if p.startswith("batch_stats/")]
    assert stats and all(not np.array_equal(final[p], initial[p]) for p in stats)
    params = [p for p in frozen if p.startswith("params/")]
    assert params and all(np.array_equal(final[p], initial[p]) for p in params)


def test_each_progressive_plan_builds_its_own_frozen_modules(tiny_run, tiny_fundus, tmp_path):
    """shallow_to_deep: plan k trains the k+1 shallowest blocks; the model of plan k treats the
    rest as frozen (dropout off), so a block's dropout turns on with its unfreezing."""
    run = tiny_run(tmp_path, "scratch")
    run.config.update(freeze="shallow_to_deep", unfreeze_at=(1, 2, 3, 4))
    stage = prepare_stage(run.config, tiny_fundus, abstract=True)
    blocks = ["encoder/stage_0", "encoder/stage_1", "bottleneck", "decoder/stage_1"]
    for k in range(len(blocks)):
        frozen = stage.model(k).frozen
        assert [matches(frozen, b) for b in blocks] == [i > k for i in range(len(blocks))], k


def test_unknown_frozen_norm_is_refused(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    run.config.update(frozen_norm="adpt")
    with pytest.raises(ValueError, match="stage 'scratch': frozen_norm='adpt' must be one of "):
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert not os.path.exists(run.workdir)


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
