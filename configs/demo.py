"""Main job (method 1): centre-localization pretext → frozen-encoder segmentation vs scratch.

    python -m jaxseg.main --config=configs/demo.py --workdir=runs/demo
    python -m jaxseg.main --config=configs/demo.py:busi --workdir=runs/busi   # BUSI .npz
    python -m jaxseg.main --config=configs/demo.py:tiny --workdir=/tmp/t     # seconds (tests)

Arguments (after ':', comma-separated): 'busi' reads ../shared/data/busi/busi.npz (or
``data=PATH`` for another .npz of that layout); 'tiny' shrinks everything for tests.
"""

from __future__ import annotations

import os

import ml_collections

BUSI = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "busi", "busi.npz")


def unet() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(name="unet", depth=3, width=8, norm="batch", dropout=0.1, upsample="transpose",
             dtype="float32")
    )  # fmt: skip


def stage(task: str, optimizer: str, lr: float, steps: int, labels: str, **kw):
    """A stage: ``labels`` 'all' trains on every training image of the fold (the cheap labels),
    'budget' on the label-budget subset (the expensive masks). ``freeze`` is a preset of
    ``jaxseg.surgery.presets`` or a plan 'regex=rule,...'; progressive presets unfreeze one more
    block every ``unfreeze_every`` epochs or at the ``unfreeze_at`` steps. ``val_fraction`` > 0
    carves a group-aware validation split from the stage's training images, validated every
    ``eval_every`` steps (0: at checkpoints) on ``monitor`` ('' = the task's primary metric);
    ``patience`` evaluations without a ``min_delta`` gain stop the stage (0: never), and the test
    metrics come from the best validation checkpoint. ``augment`` (``jaxseg.data.augment``):
    shift (fraction), rotate/shear (degrees), flips, zoom (fraction), blur (max sigma), p."""
    cfg = ml_collections.ConfigDict(
        dict(
            task=task, loss="", steps=steps, batch_size=8, labels=labels,
            optimizer=dict(name=optimizer, learning_rate=lr, schedule="constant",
                           warmup_steps=0, weight_decay=0.0, momentum=0.0),
            init_from=dict(stage="", subtrees="", rename="", allow=""),
            freeze="none", unfreeze_every=0, unfreeze_at=(),
            val_fraction=0.0, eval_every=0, monitor="", patience=0, min_delta=0.0,
            augment=dict(shift=0.0, rotate=0.0, flip=False, vflip=False, shear=0.0, zoom=0.0,
                         blur=0.0, p=1.0),
            log_every=150, checkpoint_every=300,
        )
    )  # fmt: skip
    cfg.update(kw)
    return cfg


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = dict(a.split("=", 1) if "=" in a else (a, "1") for a in arg.split(",") if a)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = ml_collections.ConfigDict(
        dict(
            source="fundus",
            num_images=600,
            image_size=64,
            seed=0,
            path="",
            preprocess="",
            pad_multiple=0,
        )
    )
    if "busi" in args or "data" in args:
        config.data.source = "npz"
        config.data.path = os.path.abspath(args.get("data", BUSI))
        config.data.image_size = 64
    config.protocol = ml_collections.ConfigDict(
        dict(folds=5, run_folds=5, budgets=(4, 16), seeds=(0,), split_seed=0)
    )
    model = unet()
    config.stages = ml_collections.ConfigDict()
    config.stages.localize = stage("localization", "rmsprop", 1e-3, 600, "all", model=model)
    segment = dict(model=model, freeze="encoder")  # preset: encoder + bottleneck frozen
    config.stages.segment = stage(
        "segmentation", "adam", 1e-3, 150, "budget",
        init_from=dict(stage="localize", subtrees="encoder+bottleneck"), **segment,
    )  # fmt: skip
    config.stages.scratch = stage("segmentation", "adam", 1e-3, 150, "budget", model=model)
    config.arms = ml_collections.ConfigDict(dict(pretrained="localize,segment", scratch="scratch"))
    config.compare = ("pretrained", "scratch")
    # What transferred: activation maps, maximisation and per-stage similarity of the first split.
    config.explain = ml_collections.ConfigDict(
        dict(enabled=False, layers=r"^(encoder/stage_\d+|bottleneck)$", num_images=4, channels=8,
             steps=64)
    )  # fmt: skip
    if "tiny" in args:
        config.data.num_images, config.data.image_size = 40, 32
        config.protocol.update(folds=2, run_folds=2, budgets=(4,))
        model.update(depth=2, width=4)
        for s in config.stages.values():
            s.update(steps=6, batch_size=4, log_every=3, checkpoint_every=3)
        config.explain.update(num_images=2, channels=2, steps=4)
    return config
