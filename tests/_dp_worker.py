"""Child process of the data-parallel test: train the tiny 'scratch' stage on however many CPU
devices XLA_FLAGS gives this process, and report what happened as JSON.

    python tests/_dp_worker.py WORKDIR [--indivisible]

Prints one line "RESULT {json}": device count, mesh size, workdir and metrics; with
``--indivisible`` also "indivisible_error", the message of the ValueError raised for a batch
size of n + 1 (null if none was raised).
"""

from __future__ import annotations

import json
import os
import sys

import jax

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configs import demo  # noqa: E402
from jaxseg.studies import plan  # noqa: E402
from jaxseg.train import mesh  # noqa: E402
from jaxseg.train.loop import train_and_evaluate  # noqa: E402


def main(workdir: str, indivisible: bool) -> None:
    study = demo.get_config("tiny")
    run = plan.stage_run(study, workdir, "scratch", 0, 0, 0, 4)
    assert run.config.batch_size == 4
    result = train_and_evaluate(run.config, run.workdir)
    report = {
        "devices": jax.device_count(),
        "mesh_devices": int(mesh.data_mesh().devices.size),
        "workdir": run.workdir,
        "metrics": result["metrics"],
        "steps": result["steps"],
    }
    if indivisible:
        bad = plan.stage_run(study, os.path.join(workdir, "odd"), "scratch", 0, 0, 0, 4).config
        bad.batch_size = jax.device_count() + 1
        try:
            train_and_evaluate(bad, os.path.join(workdir, "odd"))
            report["indivisible_error"] = None
        except ValueError as err:
            report["indivisible_error"] = str(err)
    print("RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], "--indivisible" in sys.argv[2:])
