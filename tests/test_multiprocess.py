"""Multi-process (multi-host) training: the same tiny stage as 2 JAX processes on localhost (one
CPU device each, gloo collectives, one shared workdir) and as 1 process must end with the same
parameters and metrics. Also the environment parsing of ``jaxseg.train.distributed`` and the
mesh helpers in this (single) process.

The processes are ``tests/_mp_worker.py``. A 2-process probe runs first: if the processes
cannot even join on this machine (no localhost TCP, no gloo, ...), the multi-process tests skip
with the probe's output as the reason; if they join but then fail, the tests fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from conftest import REPO, read_variables, subprocess_env

from jaxseg.train import distributed
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.writers import read_jsonl

WORKER = str(REPO / "tests" / "_mp_worker.py")
TIMEOUT_S = 240  # for the training runs; a healthy one takes well under a minute
PROBE_TIMEOUT_S = 60
ENV_KEYS = (
    distributed.COORDINATOR,
    distributed.NUM_PROCESSES,
    distributed.PROCESS_ID,
    distributed.LOCAL_DEVICE_IDS,
    distributed.MODE,
)


# ---------------------------------------------------------------------------------------------
# Environment parsing and the mesh in this process (no subprocesses)


def test_no_setting_means_one_process():
    assert distributed.settings_from_env({}) is None
    assert distributed.settings_from_env({"JAXSEG_DISTRIBUTED": "off"}) is None
    off = {
        "JAXSEG_DISTRIBUTED": "off",
        "JAXSEG_COORDINATOR": "h:1",
        "JAXSEG_NUM_PROCESSES": "2",
        "JAXSEG_PROCESS_ID": "0",
    }
    assert distributed.settings_from_env(off) is None
    assert distributed.initialize_from_env({}) is False


def test_explicit_settings():
    env = {
        "JAXSEG_COORDINATOR": "node0:1234",
        "JAXSEG_NUM_PROCESSES": "4",
        "JAXSEG_PROCESS_ID": "3",
        "JAXSEG_LOCAL_DEVICE_IDS": "0, 1",
        "JAXSEG_INIT_TIMEOUT": "30",
    }
    assert distributed.settings_from_env(env) == {
        "coordinator_address": "node0:1234",
        "num_processes": 4,
        "process_id": 3,
        "local_device_ids": [0, 1],
        "initialization_timeout": 30,
    }


def test_auto_leaves_detection_to_jax():
    assert distributed.settings_from_env({"JAXSEG_DISTRIBUTED": "auto"}) == {
        "initialization_timeout": 300
    }


@pytest.mark.parametrize(
    "env, match",
    [
        ({"JAXSEG_COORDINATOR": "h:1", "JAXSEG_NUM_PROCESSES": "2"}, "JAXSEG_PROCESS_ID missing"),
        (
            {"JAXSEG_COORDINATOR": "h:1", "JAXSEG_NUM_PROCESSES": "2", "JAXSEG_PROCESS_ID": "2"},
            r"must lie in 0\.\.",
        ),
        (
            {"JAXSEG_COORDINATOR": "h", "JAXSEG_NUM_PROCESSES": "2", "JAXSEG_PROCESS_ID": "0"},
            "host:port",
        ),
        (
            {"JAXSEG_COORDINATOR": "h:1", "JAXSEG_NUM_PROCESSES": "two", "JAXSEG_PROCESS_ID": "0"},
            "not an integer",
        ),
        ({"JAXSEG_DISTRIBUTED": "slurm"}, "'auto'"),
        ({"JAXSEG_DISTRIBUTED": "auto", "JAXSEG_LOCAL_DEVICE_IDS": "gpu0"}, "e.g. '0'"),
    ],
)
def test_bad_settings_are_refused(env, match):
    with pytest.raises(ValueError, match=match):
        distributed.settings_from_env(env)


def test_initialize_after_jax_started_says_so():
    jax.devices()  # the backend is up in this process
    env = {
        "JAXSEG_COORDINATOR": "localhost:1",
        "JAXSEG_NUM_PROCESSES": "2",
        "JAXSEG_PROCESS_ID": "0",
    }
    with pytest.raises(RuntimeError, match="must run before"):
        distributed.initialize_from_env(env)


def test_one_process_mesh_and_batch_are_unchanged():
    mesh = mesh_lib.data_mesh()
    assert list(mesh.devices.flat) == jax.local_devices()
    assert distributed.is_primary()
    batch = {"x": np.arange(8 * mesh.devices.size, dtype=np.float32).reshape(-1, 2)}
    put = mesh_lib.put_batch(batch, mesh)
    assert put["x"].sharding == mesh_lib.batch_sharded(mesh)
    np.testing.assert_array_equal(np.asarray(put["x"]), batch["x"])
    state = {"w": jax.device_put(np.ones(3, np.float32), jax.local_devices()[0]), "n": 1}
    put = mesh_lib.put_replicated(state, mesh)
    assert all(x.sharding == mesh_lib.replicated(mesh) for x in jax.tree.leaves(put))
    np.testing.assert_array_equal(np.asarray(put["w"]), np.ones(3))
    two = SimpleNamespace(devices=np.empty(2, dtype=object))  # all check_batch_size reads
    with pytest.raises(ValueError, match="batch_size=5 is not divisible by the 2 devices"):
        mesh_lib.check_batch_size(5, two)


# ---------------------------------------------------------------------------------------------
# 2 processes vs 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = subprocess_env(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=1",  # as _dp_worker's 1-device run
        JAXSEG_INIT_TIMEOUT="60",
        **extra,
    )
    for key in ENV_KEYS:
        if key not in extra:
            env.pop(key, None)
    return env


def _start(args: list[str], n: int) -> list[subprocess.Popen]:
    """``n`` worker processes joined through a fresh localhost port (n=1: a plain process)."""
    port = _free_port()
    procs = []
    for i in range(n):
        extra = {}
        if n > 1:
            extra = {
                distributed.COORDINATOR: f"localhost:{port}",
                distributed.NUM_PROCESSES: str(n),
                distributed.PROCESS_ID: str(i),
            }
        # a file, not a pipe: a chatty process never blocks on it; closed by _output
        log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, WORKER, *args],
            cwd=REPO,
            env=_env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc.log = log
        procs.append(proc)
    return procs


def _output(proc: subprocess.Popen) -> str:
    proc.log.seek(0)
    text = proc.log.read()
    proc.log.close()
    return text


def _wait(
    groups: dict[str, list[subprocess.Popen]], timeout_s: float = TIMEOUT_S
) -> dict[str, list[tuple[int, str]]]:
    """(returncode, output) of every process. A process that fails leaves the others of its
    group waiting in a collective, so then (or at the deadline) the group is killed (SIGKILL:
    JAX's preemption notifier swallows SIGTERM)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for procs in groups.values():
            if any(p.poll() not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
        if all(p.poll() is not None for procs in groups.values() for p in procs):
            break
        time.sleep(0.2)
    for procs in groups.values():
        for p in procs:
            if p.poll() is None:
                p.kill()
    return {name: [(p.wait(), _output(p)) for p in procs] for name, procs in groups.items()}


def _line(output: str, prefix: str) -> dict | None:
    line = next((x for x in output.splitlines() if x.startswith(prefix + " ")), None)
    return None if line is None else json.loads(line.removeprefix(prefix + " "))


def _tail(outputs: list[tuple[int, str]]) -> str:
    return "\n".join(f"--- rc {rc}\n{out[-3000:]}" for rc, out in outputs)


@pytest.fixture(scope="module")
def multiprocess(tmp_path_factory):
    """{'one': [report], 'two': [report of process 0, of process 1], 'seconds': {...}}."""
    t = time.monotonic()
    probe = _wait({"probe": _start(["--probe"], 2)}, PROBE_TIMEOUT_S)["probe"]
    probe_s = time.monotonic() - t
    if not all("JOINED " in out for _, out in probe):  # the environment, not jaxseg
        pytest.skip(f"2 CPU JAX processes cannot join here:\n{_tail(probe)}")
    reports = [_line(out, "PROBE") for _, out in probe]
    assert all(rc == 0 for rc, _ in probe) and None not in reports, _tail(probe)
    for report in reports:
        assert report["sum"] == report["expected"] and report["devices"] == 2, reports

    root = tmp_path_factory.mktemp("mp")
    t = time.monotonic()
    groups = {"one": _start([str(root / "one")], 1), "two": _start([str(root / "two")], 2)}
    done = _wait(groups)
    seconds = {"probe": probe_s, "train": time.monotonic() - t}
    print(f"multi-process test: probe {probe_s:.1f}s, 1 + 2 processes {seconds['train']:.1f}s")
    out = {"seconds": seconds}
    for name, outputs in done.items():
        assert all(rc == 0 for rc, _ in outputs), f"{name} failed:\n{_tail(outputs)}"
        out[name] = [_line(o, "RESULT") for _, o in outputs]
    return out


def test_two_processes_form_one_mesh(multiprocess):
    (one,), two = multiprocess["one"], multiprocess["two"]
    assert (one["multi"], one["process_count"], one["devices"]) == (False, 1, 1)
    assert sorted(r["process_index"] for r in two) == [0, 1]
    for r in two:
        assert r["multi"] and r["process_count"] == 2
        assert (r["local_devices"], r["devices"], r["mesh_devices"]) == (1, 2, 2)


def test_processes_end_identical(multiprocess):
    a, b = multiprocess["two"]
    assert a["sha256"] == b["sha256"], "the replicated state differs between the processes"
    assert a["metrics"] == b["metrics"] and a["steps"] == b["steps"]


def test_two_processes_match_one_process(multiprocess):
    (one,), (two, _) = multiprocess["one"], multiprocess["two"]
    assert one["steps"] == two["steps"] == 6
    a = read_variables(Path(one["workdir"], "checkpoints"))
    b = read_variables(Path(two["workdir"], "checkpoints"))
    assert a.keys() == b.keys() and any(p.startswith("batch_stats/") for p in a)
    for p in a:
        np.testing.assert_allclose(a[p], b[p], rtol=1e-5, atol=1e-5, err_msg=p)
    assert one["metrics"].keys() == two["metrics"].keys()
    for name, value in one["metrics"].items():
        assert np.isclose(value, two["metrics"][name], rtol=1e-5, atol=1e-5), name


def test_shared_workdir_is_written_once(multiprocess):
    (one,), (two, _) = multiprocess["one"], multiprocess["two"]
    records = {
        name: read_jsonl(os.path.join(r["workdir"], "metrics.jsonl"))
        for name, r in (("one", one), ("two", two))
    }
    assert [(r["step"], sorted(r)) for r in records["two"]] == [
        (r["step"], sorted(r)) for r in records["one"]
    ], "metrics.jsonl of the 2-process run is not one record per logging step"
    with open(os.path.join(two["workdir"], "result.json")) as f:
        saved = json.load(f)
    assert saved["metrics"] == pytest.approx(two["metrics"])
    events = os.listdir(os.path.join(two["workdir"], "tb"))
    assert len(events) == 1, events
    leftovers = [n for n in os.listdir(two["workdir"]) if ".tmp" in n]
    assert not leftovers, leftovers
