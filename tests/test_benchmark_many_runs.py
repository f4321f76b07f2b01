"""benchmarks/many_runs.py runs at a tiny size, checks both together-strategies against
one-by-one, and prints a self-consistent table."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/many_runs.py"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, SCRIPT, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=check)


def _table(stdout: str) -> list[dict[str, str]]:
    table = [line for line in stdout.splitlines() if line.startswith("|")]
    names = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(names, (c.strip() for c in r.strip("|").split("|")), strict=True))
            for r in table[2:]]  # fmt: skip


def test_tiny_run_prints_a_consistent_table():
    """Over two forced host devices: R=1 runs the program on one device, R=2 on both."""
    import os

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    cmd = [sys.executable, SCRIPT, "--runs=1,2", "--size=32", "--depth=2", "--width=4",
           "--batch=2", "--steps=2"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = _table(out.stdout)
    assert [r["runs"] for r in rows] == ["1", "2"]
    for r in rows:
        R = int(r["runs"])
        assert r["size"] == "32" and r["batch/run"] == "2" and r["devices"] == "2"
        # the equality checks ran: both together-steps match the sequential params to rounding
        assert 0 <= float(r["max abs Δparams"]) <= 1e-5
        seq_ms = float(r["sequential ms"])
        seq_ips = float(r["sequential images/s"])
        assert abs(seq_ips - R * 2 / (seq_ms / 1e3)) / seq_ips < 0.01
        for name in ("vmap", "program"):
            ratio = seq_ms / float(r[f"{name} ms"])
            assert abs(float(r[f"{name}/sequential"]) - ratio) / ratio < 0.005


def test_non_positive_runs_are_refused():
    out = run("--runs=0,2", check=False)
    assert out.returncode != 0
    assert "--runs=0,2" in out.stderr and "use positive values" in out.stderr
