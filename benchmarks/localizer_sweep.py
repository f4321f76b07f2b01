"""Method 1's localizer at ``scale=cpu`` (64², depth-4 width-16 U-Net encoder): held-out centre
error of a few optimizer/head candidates against the trivial baselines, on one fold.

Each candidate trains the study's ``localize`` stage (``configs/studies/localization_transfer.py``)
for ``--steps`` steps without validation (the plain fixed-step run, so candidates compare at equal
steps) with the loss logged every step; the table gives its held-out centre error (pixels), the
largest training loss of the first 20 steps (the issue's 0.58 -> 146 jump shows there) and the
baselines on the same held-out images: the mean training centre and the image centre.

    .venv/bin/python benchmarks/localizer_sweep.py --data=fundus,busi --steps=300
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import jaxseg  # noqa: F401  (sets the XLA CPU flags first)
from jaxseg import data, tasks
from jaxseg.studies import plan
from jaxseg.train import loop, setup
from jaxseg.train.writers import read_jsonl

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "studies")
CANDIDATES = {  # name: (head, learning rate, warm-up steps; 0 = constant rate)
    "vector 1e-3": ("vector", 1e-3, 0),
    "vector 1e-4": ("vector", 1e-4, 0),
    "vector 1e-4 wu50": ("vector", 1e-4, 50),
    "vector 3e-4 wu50": ("vector", 3e-4, 50),
    "pooled 1e-3 wu50": ("pooled", 1e-3, 50),
    "pooled 3e-4 wu50": ("pooled", 3e-4, 50),
}


def study_config(words: str):
    """The localization study's config for ``words`` (e.g. 'scale=cpu,busi')."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "lt", os.path.join(CONFIG, "localization_transfer.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(words)


def baselines(run_config, dataset: data.Dataset) -> dict[str, float]:
    """Held-out centre error (pixels) of the mean training centre and of the image centre."""
    task = tasks.for_config(run_config, dataset.arrays, dataset.class_names)
    train, test = setup.split_indices(run_config, dataset, task)
    centres = dataset.arrays["center"]
    size = np.array(dataset.arrays["image"].shape[1:-1][::-1], np.float32)
    error = lambda guess: float(np.linalg.norm(centres[test] - guess, axis=1).mean())  # noqa: E731
    return {"mean_centre": error(centres[train].mean(0)), "image_centre": error(size / 2)}


def candidate(run_config, head: str, lr: float, warmup: int, steps: int):
    """``run_config`` with one candidate's head and optimizer, ``steps`` steps, no validation."""
    cfg = run_config.copy_and_resolve_references()
    cfg.unlock()
    cfg.update(steps=steps, epochs=0, val_fraction=0.0, eval_every=0, patience=0, log_every=1,
               checkpoint_every=steps)  # fmt: skip
    cfg.task_options = {"head": head}
    cfg.optimizer.update(learning_rate=lr, schedule="cosine" if warmup else "constant",
                         warmup_steps=warmup)  # fmt: skip
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fundus,busi")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    a = p.parse_args()
    names = [n for n in CANDIDATES if not a.only or n in a.only.split(",")]
    print("| data | candidate | held-out error px | max loss, steps 1-20 | final loss | s |")
    print("|---|---|---:|---:|---:|---:|")
    for source in a.data.split(","):
        words = "scale=cpu" + ("" if source == "fundus" else f",{source}")
        config = study_config(words)
        base = plan.stage_run(
            config, "/tmp", "pretrained", 0, a.fold, 0, config.protocol.budgets[0]
        )
        dataset = data.load(base.config.data)
        b = baselines(base.config, dataset)
        print(f"| {source} | mean training centre | {b['mean_centre']:.2f} | | | |")
        print(f"| {source} | image centre | {b['image_centre']:.2f} | | | |", flush=True)
        for name in names:
            cfg = candidate(base.config, *CANDIDATES[name], a.steps)
            with tempfile.TemporaryDirectory() as work:
                t0 = time.time()
                result = loop.train_and_evaluate(cfg, work, dataset)
                seconds = time.time() - t0
                losses = [r["train/loss"] for r in read_jsonl(os.path.join(work, "metrics.jsonl"))
                          if "train/loss" in r]  # fmt: skip
            first = max(losses[:20]) if losses else float("nan")
            err = result["metrics"]["center_error"]
            print(f"| {source} | {name} | {err:.2f} | {first:.3g} | {losses[-1]:.3g} | "
                  f"{seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
