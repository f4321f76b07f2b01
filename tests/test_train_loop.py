"""Integration tests of ``jaxseg.train.loop.train_and_evaluate`` on the tiny demo stages.

The runs are shared through module-scoped fixtures (each stage costs a compile); the tests only
read them, or work on copies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, checkpoint_steps, read_variables, subprocess_env

from jaxseg import data, tasks
from jaxseg.surgery import paths
from jaxseg.train import batches, programs
from jaxseg.train.loop import load_parent, train_and_evaluate
from jaxseg.train.setup import prepare_stage, split_indices
from jaxseg.train.timing import PHASES as TIMING_PHASES
from jaxseg.train.writers import read_jsonl

TRANSFERRED = ("encoder", "bottleneck")


def ckpt(run) -> str:
    return os.path.join(run.workdir, "checkpoints")


def subtree(path: str) -> str:
    """'params/encoder/stage_0/conv_0/kernel' -> 'encoder'."""
    return path.split("/")[1]


# ---------------------------------------------------------------------------------------------
# Shared runs


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_run, tiny_fundus):
    """The 'pretrained' arm of fold 0: localize (6 steps) then the frozen-encoder segment stage."""
    root = tmp_path_factory.mktemp("pretrained")
    localize, segment = tiny_run(root, "pretrained", 0), tiny_run(root, "pretrained", 1)
    assert segment.config.freeze == "encoder"
    assert segment.config.model.norm == "batch"
    assert segment.parent == localize
    loc_result = train_and_evaluate(localize.config, localize.workdir, tiny_fundus)
    seg_result = train_and_evaluate(
        segment.config, segment.workdir, tiny_fundus, parent=localize.workdir
    )
    return dict(localize=localize, segment=segment, loc_result=loc_result, seg_result=seg_result)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, tiny_run, tiny_fundus):
    """An uninterrupted 'scratch' segmentation run: 6 steps, checkpoints at 3 and 6."""
    run = tiny_run(tmp_path_factory.mktemp("scratch"), "scratch")
    assert (run.config.steps, run.config.checkpoint_every) == (6, 3)
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    return dict(run=run, result=result, variables=read_variables(ckpt(run)))


# ---------------------------------------------------------------------------------------------
# 1. Frozen encoder


def initial_variables(run, dataset, tmp_path) -> dict[str, np.ndarray]:
    """The stage's step-0 params/batch_stats (fresh init + transfer), as the loop builds them."""
    stage = prepare_stage(run.config, dataset)
    parent = run.parent.workdir if run.parent is not None else None
    variables = load_parent(stage, stage.variables, str(tmp_path), parent)
    return {p: np.asarray(v) for p, v in paths.flatten(variables).items()}


def test_frozen_encoder_and_bottleneck_are_bit_identical(pretrained, tiny_fundus, tmp_path):
    source = read_variables(ckpt(pretrained["localize"]))
    final = read_variables(ckpt(pretrained["segment"]))
    assert checkpoint_steps(ckpt(pretrained["segment"])) == [3, 6]

    frozen = sorted(p for p in final if subtree(p) in TRANSFERRED)
    assert {p.split("/")[0] for p in frozen} == {"params", "batch_stats"}
    assert any(subtree(p) == "bottleneck" for p in frozen)
    assert set(frozen) == {p for p in source if subtree(p) in TRANSFERRED}
    changed = [p for p in frozen if not np.array_equal(final[p], source[p])]
    assert not changed, f"{len(changed)} frozen leaves moved during training: {changed[:4]}"

    # The transferred statistics are the pretext's trained ones, not an initialisation (BatchNorm
    # in the localize stage moved them), so "unchanged" above is not vacuous.
    stats = [p for p in frozen if p.startswith("batch_stats/") and p.endswith("/mean")]
    assert stats and all(np.any(source[p] != 0) for p in stats)

    # The trainable rest did train: every decoder/head parameter and decoder statistic moved.
    initial = initial_variables(pretrained["segment"], tiny_fundus, tmp_path)
    assert all(np.array_equal(initial[p], source[p]) for p in frozen)  # transferred at step 0
    trainable = [p for p in final if subtree(p) in ("decoder", "head")]
    assert any(p.startswith("params/head/") for p in trainable)
    assert any(p.startswith("batch_stats/decoder/") for p in trainable)
    unchanged = [p for p in trainable if np.array_equal(final[p], initial[p])]
    assert not unchanged, f"{len(unchanged)} trainable leaves did not move: {unchanged[:4]}"


def test_transfer_report_lists_encoder_and_bottleneck(pretrained):
    with open(os.path.join(pretrained["segment"].workdir, "transfer.json")) as f:
        report = json.load(f)
    # relative to the run, so a moved or copied workdir still names its parent
    assert not os.path.isabs(report["source"])
    source = os.path.join(pretrained["segment"].workdir, report["source"])
    assert os.path.normpath(source) == os.path.normpath(ckpt(pretrained["localize"]))
    assert report["loaded"] and all(subtree(p) in TRANSFERRED for p in report["loaded"])
    assert report["kept"] and not any(subtree(p) in TRANSFERRED for p in report["kept"])


def test_init_from_path_starts_from_another_studys_run(pretrained, tiny_fundus, tmp_path):
    """init_from.path = the localize run directory of another workdir (no parent): the same
    transfer as init_from.stage, so the segment run ends bit-identical to the pretrained one."""
    seg = pretrained["segment"]
    config = seg.config.copy_and_resolve_references()
    config.init_from.update(stage="", path=pretrained["localize"].workdir)
    workdir = str(tmp_path / "other_study" / "segment")
    train_and_evaluate(config, workdir, tiny_fundus)
    with open(os.path.join(workdir, "transfer.json")) as f:
        report = json.load(f)
    assert report["source"] == os.path.abspath(ckpt(pretrained["localize"]))
    assert report["loaded"] and all(subtree(p) in TRANSFERRED for p in report["loaded"])
    mine, theirs = read_variables(os.path.join(workdir, "checkpoints")), read_variables(ckpt(seg))
    assert mine.keys() == theirs.keys()
    assert all(np.array_equal(mine[p], theirs[p]) for p in mine)


# ---------------------------------------------------------------------------------------------
# 6. Outputs


def test_outputs_of_a_stage(pretrained, tiny_fundus):
    for stage, metric in (("localize", "center_error"), ("segment", "dice")):
        run, result = pretrained[stage], pretrained[stage[:3] + "_result"]
        workdir = Path(run.workdir)
        records = read_jsonl(str(workdir / "metrics.jsonl"))
        train = [r for r in records if "train/loss" in r]
        assert [r["step"] for r in train] == [3, 6]
        assert all(np.isfinite(r["train/loss"]) for r in train)
        assert any(f"test/{metric}" in r for r in records)
        assert list((workdir / "tb").glob("events.out.tfevents.*"))
        assert checkpoint_steps(workdir / "checkpoints") == [3, 6]
        with open(workdir / "result.json") as f:
            saved = json.load(f)
        assert saved == json.loads(json.dumps(result))
        assert {metric, "loss"} <= set(saved["metrics"])
        assert np.isfinite(saved["metrics"][metric])
        assert saved["steps"] == 6 and saved["stage"] == stage
        assert saved["n_test"] == len(saved["test_index"]) == len(saved["per_example"][metric])
        assert np.isclose(np.mean(saved["per_example"][metric]), saved["metrics"][metric])
        assert json.loads((workdir / "config.json").read_text()) == json.loads(
            run.config.to_json_best_effort()
        )
        timing = json.loads((workdir / "timing.json").read_text())
        assert set(timing) == {*TIMING_PHASES, "other"}
        assert timing["train"] > 0 and timing["startup"] > 0 and timing["evaluate"] > 0
        assert timing["checkpoint_write"] > 0  # steps 3 and 6
        assert (timing["host_metrics"] > 0) == (stage == "segment")  # Hausdorff, boundaries
    budget = pretrained["segment"].budget
    assert budget == 4 and pretrained["seg_result"]["n_train"] == budget
    # The pretext uses every training image of the fold ('all' labels): half of the 40 images.
    assert pretrained["loc_result"]["n_train"] == len(tiny_fundus) // 2
    assert pretrained["loc_result"]["test_index"] == pretrained["seg_result"]["test_index"]


# ---------------------------------------------------------------------------------------------
# 2. Resume


def test_resume_after_interruption_is_bit_identical(scratch, tiny_fundus, tmp_path, capsys):
    run = scratch["run"]
    interrupted = tmp_path / "interrupted"
    shutil.copytree(run.workdir, interrupted)
    # Interrupted after the step-3 checkpoint: no step-6 checkpoint and no result yet.
    shutil.rmtree(interrupted / "checkpoints" / "6")
    (interrupted / "result.json").unlink()
    assert checkpoint_steps(interrupted / "checkpoints") == [3]
    capsys.readouterr()

    result = train_and_evaluate(run.config, str(interrupted), tiny_fundus)

    out = capsys.readouterr().out
    assert "resumed from step 3" in out
    assert "step 6/6" in out and "step 3/6" not in out
    assert result["steps"] == 6
    assert checkpoint_steps(interrupted / "checkpoints") == [3, 6]
    resumed = read_variables(interrupted / "checkpoints")
    assert resumed.keys() == scratch["variables"].keys()
    differ = [p for p in resumed if not np.array_equal(resumed[p], scratch["variables"][p])]
    assert not differ, f"resumed run differs from the uninterrupted one at {len(differ)} leaves"
    assert result["per_example"] == scratch["result"]["per_example"]


def test_finished_run_reevaluates_without_training(scratch, tiny_fundus, capsys):
    run = scratch["run"]
    capsys.readouterr()
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    out = capsys.readouterr().out
    assert "resumed from step 6" in out
    assert not re.search(r"step \d+/6", out), out
    assert result["steps"] == 6
    assert result["metrics"] == scratch["result"]["metrics"]
    assert checkpoint_steps(ckpt(run)) == [3, 6]
    again = read_variables(ckpt(run))
    assert all(np.array_equal(again[p], v) for p, v in scratch["variables"].items())


def test_runs_of_one_program_share_its_compilation_and_match_a_fresh_one(
    scratch, tiny_run, tiny_fundus, tmp_path
):
    """Fold 1 after fold 0 (the ``scratch`` fixture) reuses the compiled steps; the same run
    compiled afresh ends with the same weights and metrics."""
    reused = tiny_run(tmp_path / "reused", fold=1)
    assert reused.config.split.fold == 1 and scratch["run"].config.split.fold == 0
    result = train_and_evaluate(reused.config, reused.workdir, tiny_fundus)
    assert json.loads(Path(reused.workdir, "timing.json").read_text())["compile"] == 0
    programs._compiled.clear()
    fresh = tiny_run(tmp_path / "fresh", fold=1)
    again = train_and_evaluate(fresh.config, fresh.workdir, tiny_fundus)
    assert json.loads(Path(fresh.workdir, "timing.json").read_text())["compile"] > 0
    assert again["per_example"] == result["per_example"]
    variables, fresh_variables = read_variables(ckpt(reused)), read_variables(ckpt(fresh))
    assert all(np.array_equal(v, fresh_variables[p]) for p, v in variables.items())


def test_a_program_key_changes_with_what_shapes_the_program(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    stage = prepare_stage(run.config, tiny_fundus)
    keys = programs.build(stage, 0).keys
    moved = run.config.copy_and_resolve_references()
    moved.split.fold, moved.seed, moved.name = 1, 7, "other"  # where the run sits: same program
    assert programs.build(prepare_stage(moved, tiny_fundus), 0).keys == keys
    faster = run.config.copy_and_resolve_references()
    faster.optimizer.learning_rate *= 2  # baked into the update
    other = programs.build(prepare_stage(faster, tiny_fundus), 0).keys
    assert other["train_step"] != keys["train_step"] and other["eval_step"] == keys["eval_step"]
    wider = run.config.copy_and_resolve_references()
    wider.model.width *= 2
    other = programs.build(prepare_stage(wider, tiny_fundus), 0).keys
    assert other["train_step"] != keys["train_step"] and other["eval_step"] != keys["eval_step"]


# ---------------------------------------------------------------------------------------------
# 4. Workdir guard


def test_workdir_with_a_different_config_is_refused(scratch, tiny_fundus):
    run = scratch["run"]
    config_json = Path(run.workdir, "config.json").read_bytes()
    result_json = Path(run.workdir, "result.json").read_bytes()
    changed = run.config.copy_and_resolve_references()
    changed.optimizer.learning_rate = 0.5
    with pytest.raises(ValueError, match="different config"):
        train_and_evaluate(changed, run.workdir, tiny_fundus)
    assert Path(run.workdir, "config.json").read_bytes() == config_json
    assert Path(run.workdir, "result.json").read_bytes() == result_json
    assert checkpoint_steps(ckpt(run)) == [3, 6]


@pytest.mark.parametrize("key,value", [("steps", 0), ("log_every", 0), ("checkpoint_every", -1)])
def test_invalid_loop_settings_are_refused_before_anything_is_written(
    tiny_run, tiny_fundus, tmp_path, key, value
):
    run = tiny_run(tmp_path, "scratch")
    run.config[key] = value
    with pytest.raises(ValueError, match=rf"{key}={value!r} must be an int >= 1"):
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert not os.path.exists(run.workdir)


# ---------------------------------------------------------------------------------------------
# 3. NaN guard


def test_nan_image_stops_training_naming_the_step(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "pretrained", 0)  # localize: 20 training images, 5 batches/epoch
    config = run.config
    task = tasks.build(config.task, config.loss)
    train_idx, _ = split_indices(config, tiny_fundus, task)
    bad_step = 4
    seen = {
        int(train_idx[i])
        for s in range(bad_step)
        for i in batches.train_indices(len(train_idx), config.batch_size, s, config.seed)
    }
    at_bad = batches.train_indices(len(train_idx), config.batch_size, bad_step, config.seed)
    poison = next(int(train_idx[i]) for i in at_bad if int(train_idx[i]) not in seen)
    arrays = {k: v.copy() for k, v in tiny_fundus.arrays.items()}
    arrays["image"][poison, 3, 5, 0] = np.nan
    dataset = data.Dataset(arrays, tiny_fundus.class_names, tiny_fundus.name)

    with pytest.raises(FloatingPointError, match=rf"at step {bad_step}\b"):
        train_and_evaluate(config, run.workdir, dataset)
    assert not os.path.exists(os.path.join(run.workdir, "result.json"))
    # The last good checkpoint (step 3) stays; the NaN state is never saved.
    assert checkpoint_steps(ckpt(run)) == [3]


def test_divergent_learning_rate_raises(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    run.config.optimizer.update(name="sgd", learning_rate=1e12)
    with pytest.raises(FloatingPointError, match=r"at step \d+") as err:
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert 0 <= int(re.search(r"at step (\d+)", str(err.value)).group(1)) < 6
    assert "learning_rate" in str(err.value)
    assert not os.path.exists(os.path.join(run.workdir, "result.json"))


# ---------------------------------------------------------------------------------------------
# 5. Data parallel


def _start_worker(workdir: Path, devices: int, *args: str) -> subprocess.Popen:
    flags = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "_dp_worker.py"), str(workdir), *args],
        cwd=REPO,
        env=subprocess_env(XLA_FLAGS=flags, JAX_PLATFORMS="cpu"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture(scope="module")
def data_parallel(tmp_path_factory):
    """The same tiny stage trained in two processes: on 1 CPU device and on 2 (run together)."""
    root = tmp_path_factory.mktemp("dp")
    procs = {1: _start_worker(root / "one", 1), 2: _start_worker(root / "two", 2, "--indivisible")}
    return {n: _finish(p) for n, p in procs.items()}


def test_data_parallel_matches_one_device(data_parallel):
    one, two = data_parallel[1], data_parallel[2]
    assert (one["devices"], two["devices"]) == (1, 2)
    assert (one["mesh_devices"], two["mesh_devices"]) == (1, 2)
    a = read_variables(Path(one["workdir"], "checkpoints"))
    b = read_variables(Path(two["workdir"], "checkpoints"))
    assert a.keys() == b.keys() and any(p.startswith("batch_stats/") for p in a)
    for p in a:
        np.testing.assert_allclose(a[p], b[p], rtol=1e-5, atol=1e-5, err_msg=p)
    for name, value in one["metrics"].items():
        assert np.isclose(value, two["metrics"][name], rtol=1e-5, atol=1e-5), name


def test_batch_not_divisible_by_devices_is_refused(data_parallel):
    message = data_parallel[2]["indivisible_error"]
    assert message is not None, "batch_size=3 on 2 devices trained instead of raising"
    assert "not divisible" in message and "batch_size=3" in message
