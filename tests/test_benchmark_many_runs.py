"""benchmarks/many_runs.py runs at a tiny size, checks vmap against one-by-one, and prints a
self-consistent table."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/many_runs.py"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, SCRIPT, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=check)


def test_tiny_run_prints_a_consistent_table():
    out = run("--runs=1,2", "--size=32", "--depth=2", "--width=4", "--batch=2", "--steps=2")
    table = [line for line in out.stdout.splitlines() if line.startswith("|")]
    names = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [dict(zip(names, (c.strip() for c in r.strip("|").split("|")), strict=True))
            for r in table[2:]]  # fmt: skip
    assert [r["runs"] for r in rows] == ["1", "2"]
    for r in rows:
        R = int(r["runs"])
        assert r["size"] == "32" and r["batch/run"] == "2"
        # the equality check ran: vmapped and sequential params differ by rounding at most
        assert 0 <= float(r["max abs Δparams"]) <= 1e-5
        vmap_ips, seq_ips = float(r["vmap images/s"]), float(r["sequential images/s"])
        assert abs(vmap_ips - R * 2 / (float(r["vmap ms"]) / 1e3)) / vmap_ips < 0.01
        assert abs(seq_ips - R * 2 / (float(r["sequential ms"]) / 1e3)) / seq_ips < 0.01
        ratio = vmap_ips / seq_ips
        assert abs(float(r["vmap/sequential"]) - ratio) / ratio < 0.005


def test_non_positive_runs_are_refused():
    out = run("--runs=0,2", check=False)
    assert out.returncode != 0
    assert "--runs=0,2" in out.stderr and "use positive values" in out.stderr
