"""benchmarks/vs_pytorch.py runs at a tiny size and prints a self-consistent table."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/vs_pytorch.py"

try:  # torchvision is not needed; a broken torch install must skip, not fail, these tests
    import torch  # noqa: F401

    HAS_TORCH = True
except Exception:
    HAS_TORCH = False
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch does not import")


def hand_count(depth: int, width: int) -> int:
    """U-Net parameters, 1 input and 1 output channel, no norm: 3×3 convs, 2×2 ups, 1×1 head."""
    c = [width * 2**i for i in range(depth + 1)]
    convs = [(1, c[0]), (c[0], c[0])]
    for i in range(1, depth + 1):
        convs += [(c[i - 1], c[i]), (c[i], c[i])]
    for i in range(depth):
        convs += [(2 * c[i], c[i]), (c[i], c[i])]
    ups = [(c[i + 1], c[i]) for i in range(depth)]
    return sum(9 * i * o + o for i, o in convs) + sum(4 * i * o + o for i, o in ups) + c[0] + 1


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, SCRIPT, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=check)


def test_hand_count_matches_the_documented_unet():
    assert hand_count(4, 32) == 7_759_521  # docs/design.md §2


@needs_torch
def test_tiny_run_prints_a_consistent_table():
    out = run("--sizes=32", "--depth=2", "--width=4", "--batch=2", "--steps=2",
              "--peak_n=128", "--peak_reps=2").stdout  # fmt: skip
    lines = out.splitlines()
    params = next(line for line in lines if line.startswith("params:"))
    counts = [int(w.rstrip(",").replace(",", "")) for w in params.split() if w[0].isdigit()]
    n_jax, n_torch, n_hand = counts
    assert n_jax == n_torch == n_hand == hand_count(2, 4)

    check = next(line for line in lines if line.startswith("loss check 32²"))
    jax_loss = float(check.split("jax ")[1].split(",")[0])
    torch_loss = float(check.split("torch ")[1].split(",")[0])
    assert 0 < jax_loss < 1 and abs(jax_loss - torch_loss) <= 1e-4

    peak = float(next(line for line in lines if line.startswith("f32 matmul peak")).split()[3])
    table = [line for line in lines if line.startswith("|")]
    names = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [dict(zip(names, (c.strip() for c in r.strip("|").split("|")), strict=True))
            for r in table[2:]]  # fmt: skip
    assert [r["framework"] for r in rows] == ["torch", "jax"]
    by = {r["framework"]: r for r in rows}
    for r in rows:
        assert r["size"] == "32" and r["batch"] == "2"
        ms, ips = float(r["ms/step"]), float(r["images/s"])
        assert ms > 0 and abs(ips - 2 / (ms / 1e3)) / ips < 0.01
        gflop, gflops = float(r["XLA GFLOP/step"]), float(r["GFLOP/s"])
        assert gflop > 0 and abs(gflops - gflop / (ms / 1e3)) / gflops < 0.01
        assert abs(float(r["% peak"]) - 100 * gflops / peak) / float(r["% peak"]) < 0.01
        split = float(r["forward ms"]) + float(r["backward ms"]) + float(r["update ms"])
        assert float(r["forward ms"]) > 0 and abs(split - ms) <= 0.03
    assert by["jax"]["XLA GFLOP/step"] == by["torch"]["XLA GFLOP/step"]
    ratio = float(by["jax"]["images/s"]) / float(by["torch"]["images/s"])
    assert abs(float(by["jax"]["jax/torch"]) - ratio) / ratio < 0.005
    assert by["torch"]["jax/torch"] == ""


@needs_torch
def test_parameter_counts_at_the_real_size_agree_without_compute():
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import vs_pytorch as v; "
        "print(*v.count_params(4, 32), v.expected_params(4, 32))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=True).stdout  # fmt: skip
    assert [int(n) for n in out.split()] == [7_759_521] * 3


def test_missing_torch_exits_with_an_install_hint():
    code = (
        "import runpy, sys; sys.path.insert(0, 'benchmarks'); sys.modules['torch'] = None; "
        f"sys.argv = ['{SCRIPT}', '--sizes=32']; runpy.run_path('{SCRIPT}', run_name='__main__')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 1
    assert "needs torch" in out.stderr and "pip install torch" in out.stderr


def test_non_positive_flags_are_refused():
    out = run("--sizes=32", "--steps=0", check=False)
    assert out.returncode != 0 and "--steps=0" in out.stderr and "use positive values" in out.stderr
