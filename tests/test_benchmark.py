"""The train-step benchmark runs and reports a consistent table row."""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_prints_one_consistent_row():
    cmd = [sys.executable, "benchmarks/train_step.py", "--size=32", "--depth=2", "--width=4",
           "--batch=4", "--steps=2", "--header"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    header, _, row = [line for line in out.stdout.splitlines() if line.startswith("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True))
    assert cells["size"] == "32" and cells["batch"] == "4" and cells["depth"] == "2"
    # depth-2 width-4 U-Net, 1 input and 1 output channel, no norm: count by hand.
    convs = [(1, 4), (4, 4), (4, 8), (8, 8), (8, 16), (16, 16), (16, 8), (8, 8), (8, 4), (4, 4)]
    ups = [(16, 8), (8, 4)]
    expected = sum(9 * i * o + o for i, o in convs) + sum(4 * i * o + o for i, o in ups) + 4 + 1
    assert int(cells["params"].replace(",", "")) == expected
    ms, ips = float(cells["ms/step (median)"]), float(cells["images/s"])
    assert ms > 0 and abs(ips - 4 / (ms / 1e3)) / ips < 0.02
    gflop = float(cells["GFLOP/step"])
    assert (
        gflop > 0
        and abs(float(cells["GFLOP/s"]) - gflop / (ms / 1e3)) / float(cells["GFLOP/s"]) < 0.1
    )


def _row(*flags: str, env_flags: str = "") -> dict[str, str]:
    import os

    cmd = [sys.executable, "benchmarks/train_step.py", "--steps=1", "--header", *flags]
    env = {**os.environ, "XLA_FLAGS": env_flags}
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True, env=env
    )
    header, _, row = [line for line in out.stdout.splitlines() if line.startswith("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    return dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True))


def _gflop(env_flags: str) -> float:
    tiny = ("--size=32", "--depth=2", "--width=4", "--batch=4")
    return float(_row(*tiny, env_flags=env_flags)["GFLOP/step"])


def test_flops_are_the_whole_step_when_sharded_over_two_devices():
    one = _gflop("")
    two = _gflop("--xla_force_host_platform_device_count=2")
    assert abs(two - one) / one < 0.05, (one, two)


def test_segmentation_step_runs_a_3d_dense_net():
    """The shared benchmark setup on volumes: one step trains, and XLA's plan holds at least the
    parameters (remat's extra FLOPs are tested in test_densenet)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import segmentation_step

    from jaxseg import models

    tiny = dict(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=2, norm="group")
    step = segmentation_step.build(models.config(**tiny), size=8, batch=1, rank=3)
    assert step.host["image"].shape == (1, 8, 8, 8, 1) and step.devices == 1
    before = np.asarray(step.state["params"]["head"]["conv"]["bias"]).copy()
    step()
    assert not np.array_equal(before, step.state["params"]["head"]["conv"]["bias"])  # it trained
    assert step.peak_mib * 2**20 >= 4 * step.params > 0 and step.flops > 0


def test_predict_benchmark_counts_windows_and_reports_consistent_speed():
    cmd = [sys.executable, "benchmarks/predict.py", "--window=16", "--image=40", "--depth=2",
           "--width=4", "--repeats=2", "--tta", "--header"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    header, _, row = [line for line in out.stdout.splitlines() if line.startswith("|")]
    names = [c.strip() for c in header.strip("|").split("|")]
    cells = dict(zip(names, (c.strip() for c in row.strip("|").split("|")), strict=True))
    assert cells["windows"] == str(4 * 4)  # starts 0, 8, 16, 24 per axis (the last flush with 40)
    assert cells["TTA"] == "True"
    seconds, rate = float(cells["s/image (median)"]), float(cells["images/s"])
    assert seconds > 0 and abs(1 / rate - seconds) <= 0.0006  # seconds printed to 3 decimals


def test_localizer_sweep_baselines_and_candidates(tiny_study, tiny_fundus):
    """The sweep's baselines are the held-out errors of two constant guesses on the run's own
    fold (images with a centre only); a candidate changes head, optimizer and steps alone."""
    from jaxseg.data import splits
    from jaxseg.studies import plan

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import localizer_sweep

    run = plan.stage_run(tiny_study, "/w", "pretrained", 0, 1, 0, 4).config
    got = localizer_sweep.baselines(run, tiny_fundus)
    arrays = tiny_fundus.arrays
    train, test = splits.kfold(arrays["group"], run.split.folds, run.split.seed)[1]
    has = arrays["has_object"].astype(bool)
    train, test = train[has[train]], test[has[test]]
    centres = arrays["center"]
    for name, guess in (("mean_centre", centres[train].mean(0)), ("image_centre", [16.0, 16.0])):
        want = np.linalg.norm(centres[test] - np.asarray(guess), axis=1).mean()
        assert abs(got[name] - want) < 1e-4, name
    cfg = localizer_sweep.candidate(run, "pooled", 3e-4, 50, 7)
    assert (cfg.steps, cfg.val_fraction, cfg.task_options.head) == (7, 0.0, "pooled")
    assert (cfg.optimizer.learning_rate, cfg.optimizer.warmup_steps) == (3e-4, 50)
    assert cfg.optimizer.schedule == "cosine" and cfg.model == run.model
    assert localizer_sweep.candidate(run, "vector", 1e-3, 0, 7).optimizer.schedule == "constant"
