"""The train-step benchmark runs and reports a consistent table row."""

import subprocess
import sys
from pathlib import Path

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


def test_3d_densenet_rows_report_memory_and_the_recomputation_of_remat():
    tiny = ("--model=densenet", "--rank=3", "--size=16", "--batch=1", "--width=4", "--norm=group")
    plain, remat = _row(*tiny), _row(*tiny, "--remat")
    assert plain["rank"] == "3" and plain["remat"] == "False" and remat["remat"] == "True"
    assert plain["params"] == remat["params"]
    # the recomputed forward passes are extra FLOPs; both plans hold at least the parameters
    assert float(remat["GFLOP/step"]) > 1.15 * float(plain["GFLOP/step"])
    params_mib = int(plain["params"].replace(",", "")) * 4 / 2**20
    assert float(plain["XLA peak MiB"]) >= params_mib
    measured = plain["measured peak MiB"]  # blank where the allocator reports none (CPU)
    assert measured == "" or float(measured) > 0
