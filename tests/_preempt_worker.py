"""Child process of the preemption tests: train the tiny 'scratch' stage (augmentation on, one
progress line per step) into WORKDIR, as a launcher would.

    python tests/_preempt_worker.py WORKDIR [--steps N] [--checkpoint-every N] [--delay S]

``--delay`` sleeps S seconds before each step's batch, so that a signal sent after the progress
line of step k reliably lands during the run. Prints the loop's progress lines, then either
"RESULT {json}" (the result's metrics and steps) and exits 0, or "PREEMPTED <step>" and exits
with ``Preempted.EXIT_CODE`` (143) when SIGTERM stopped the run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from configs import demo  # noqa: E402
from jaxseg.studies import plan  # noqa: E402
from jaxseg.train import batches  # noqa: E402
from jaxseg.train.loop import Preempted, train_and_evaluate  # noqa: E402

AUGMENT = dict(rotate=15.0, flip=True, zoom=0.1, blur=0.5)


def run_config(workdir: str, steps: int, checkpoint_every: int):
    """The tiny scratch stage of fold 0, seed 0, with augmentation and one log line a step."""
    run = plan.stage_run(demo.get_config("tiny"), workdir, "scratch", 0, 0, 0, 4)
    run.config.update(steps=steps, checkpoint_every=checkpoint_every, log_every=1)
    run.config.augment.update(AUGMENT)
    assert run.config.model.dropout > 0  # dropout randomness is part of what must resume exactly
    return run


def slow_down(delay: float) -> None:
    """Sleep ``delay`` seconds in every training batch's host gather."""
    take = batches.take

    def slow_take(*args, **kwargs):
        time.sleep(delay)
        return take(*args, **kwargs)

    batches.take = slow_take


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--checkpoint-every", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    run = run_config(args.workdir, args.steps, args.checkpoint_every)
    if args.delay:
        slow_down(args.delay)
    try:
        result = train_and_evaluate(run.config, run.workdir)
    except Preempted as err:
        print(f"PREEMPTED {err.step}", flush=True)
        return Preempted.EXIT_CODE
    report = {"workdir": run.workdir, "steps": result["steps"], "metrics": result["metrics"]}
    print("RESULT " + json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
