"""One process of the multi-process test: join the JAX processes described by the environment
(JAXSEG_COORDINATOR / JAXSEG_NUM_PROCESSES / JAXSEG_PROCESS_ID; none of them: a lone process),
train the tiny 'scratch' stage into WORKDIR and report what happened as JSON.

    python tests/_mp_worker.py WORKDIR
    python tests/_mp_worker.py --probe

``--probe`` only checks that the processes can join ("JOINED i of n") and compute together (a
sum over a batch sharded across them), then prints "PROBE {json}"; the test skips when they
cannot join here.

Prints one line "RESULT {json}": process index/count, local and global device counts, mesh size,
workdir, metrics, steps, and a digest of the final checkpoint's variables as every process reads
it back: {path: [sum, sum of squares]} in float64 and a sha256 of all the bytes.

All processes share WORKDIR, as they must: orbax saves one checkpoint collectively (each process
its part, process 0 finalising), and separate directories deadlock its barriers. The run's
other files (config.json, metrics.jsonl, tb/, early_stopping.json, result.json) are written by
process 0 only (``train_and_evaluate``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxseg.train import distributed  # noqa: E402

T0 = time.perf_counter()
MULTI = distributed.initialize_from_env()  # before anything below touches a JAX backend

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import demo  # noqa: E402
from jaxseg import checkpoint  # noqa: E402
from jaxseg.studies import plan  # noqa: E402
from jaxseg.train import mesh  # noqa: E402
from jaxseg.train.loop import train_and_evaluate  # noqa: E402


def digest(ckpt_dir: str) -> tuple[dict[str, list[float]], str]:
    flat = checkpoint.flatten(checkpoint.load_variables(ckpt_dir))
    sha = hashlib.sha256()
    stats = {}
    for path in sorted(flat):
        value = np.asarray(flat[path])
        sha.update(path.encode() + value.tobytes())
        x = value.astype(np.float64)
        stats[path] = [float(x.sum()), float((x * x).sum())]
    return stats, sha.hexdigest()


def probe() -> None:
    """Join, then sum a batch sharded over every process's devices (the cheapest collective),
    scaled by a value replicated from an array committed to this process's first device (as a
    leaf restored from a checkpoint is)."""
    print(f"JOINED {jax.process_index()} of {jax.process_count()}", flush=True)
    m = mesh.data_mesh()
    batch = {"x": np.arange(4 * m.devices.size, dtype=np.float32).reshape(-1, 2)}
    scale = mesh.put_replicated(jax.device_put(np.float32(3), jax.local_devices()[0]), m)
    total = jax.jit(lambda s, b: s * b["x"].sum(), out_shardings=mesh.replicated(m))(
        scale, mesh.put_batch(batch, m)
    )
    report = {
        "multi": MULTI,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "sum": float(total),
        "expected": 3 * float(batch["x"].sum()),
        "init_s": round(time.perf_counter() - T0, 2),
    }
    print("PROBE " + json.dumps(report), flush=True)


def main(workdir: str) -> None:
    init_s = time.perf_counter() - T0
    study = demo.get_config("tiny")
    run = plan.stage_run(study, workdir, "scratch", 0, 0, 0, 4)
    assert run.config.batch_size == 4
    t = time.perf_counter()
    result = train_and_evaluate(run.config, run.workdir)
    train_s = time.perf_counter() - t
    stats, sha = digest(os.path.join(run.workdir, "checkpoints"))
    report = {
        "multi": MULTI,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "local_devices": jax.local_device_count(),
        "devices": jax.device_count(),
        "mesh_devices": int(mesh.data_mesh().devices.size),
        "workdir": run.workdir,
        "metrics": result["metrics"],
        "steps": result["steps"],
        "params": stats,
        "sha256": sha,
        "init_s": round(init_s, 2),
        "train_s": round(train_s, 2),
    }
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    probe() if sys.argv[1] == "--probe" else main(sys.argv[1])
