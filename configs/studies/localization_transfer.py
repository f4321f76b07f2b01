"""Method 1, localization → segmentation: a U-Net encoder + linear head regresses the target's
centre (MSE, RMSprop) on every training image; the head is dropped, the encoder frozen, and the
decoder trained on a label budget of masks (−log soft Dice, Adam), against the same net from
scratch, at ≥ 5 budgets × 5 folds with paired tests per budget.

Arms (``studies.configs.localization_controls``): ``pretrained`` (localize, then segment with
encoder + bottleneck frozen), ``scratch`` (nothing transferred or frozen) and two controls:
``frozen_random`` (the same freezing of encoder + bottleneck on a random, untrained encoder:
what the freezing alone does) and ``finetune`` (from the localizer's encoder + bottleneck,
nothing frozen; its localize run is the pretrained arm's). All segmentation stages share
scratch's seed, so frozen_random starts from scratch's very net and the arms differ only in
what is transferred and what is frozen. frozen_random's frozen BatchNorms keep their initial
statistics (mean 0, variance 1) as the pretrained arm keeps the localizer's: the same treatment
(``--config.stages.frozen_random.frozen_norm=adapt`` lets them follow the batches instead).
``compare``: pretrained − scratch (the method's claim), pretrained − frozen_random (the
pretext's own share, the freezing held equal) and finetune − scratch (the localizer as an
initialisation); the p-values are corrected over these three pairs × the budgets, and masks
saved is given per pair against its reference arm.

The controls double the segmentation runs: at ``scale=cpu`` about 45 min on 2 cores instead of
24 (estimated, not measured: BENCHMARKS.md's 24.4 min spend 1,297 s in training steps, ~88 %
of them in segmentation stages by the per-step times of frozen and unfrozen segmentation runs
and of the localizer measured on one fold of the demo; the controls add as much again).

    python -m jaxseg.main --config=configs/studies/localization_transfer.py:scale=cpu,busi \\
        --workdir=runs/localization_transfer

Arguments: scale=ci|cpu|paper (ci: seconds, tests; cpu: ~45 min on 2 cores at 64²; paper: 256²
and the published step counts for a GPU/TPU), busi | data=PATH (default: the built-in fundus
generator). Real data is preprocessed as method 1 does (grayscale, CLAHE, gamma,
normalisation); centres are the mask centroids (BUSI has no centre labels) and images with
empty masks (BUSI's normal class) are left out of the localization pretext.
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {
    "ci": dict(size=32, steps=(6, 6), folds=2, budgets=(4,), depth=2, width=4),
    "cpu": dict(size=64, steps=(400, 150), folds=5, budgets=(8, 16, 32, 64, 128), depth=4,
                width=16),
    "paper": dict(size=256, steps=(5000, 2000), folds=5, budgets=(8, 16, 32, 64, 128, 256),
                  depth=4, width=32),
}  # fmt: skip


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, configs.STUDY_WORDS)
    s = configs.scale(args, SCALES)
    model = models.config(depth=s["depth"], width=s["width"], norm="batch", dropout=0.1)
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args, image_size=s["size"])
    if config.data.source != "fundus":
        config.data.preprocess = "grayscale,clahe,gamma:0.8,normalize"
    config.protocol = configs.protocol(folds=s["folds"], run_folds=s["folds"], budgets=s["budgets"])
    loc_steps, seg_steps = s["steps"]
    config.stages = ml_collections.ConfigDict()
    config.stages.localize = stage(
        "localization",
        examples="all",
        steps=loc_steps,
        optimizer=dict(name="rmsprop"),
        model=model,
    )
    config.stages.segment = stage(
        "segmentation", examples="budget", steps=seg_steps, model=model, freeze="encoder",
        init_from=dict(stage="localize", subtrees="encoder+bottleneck"),
    )  # fmt: skip
    config.stages.scratch = stage("segmentation", examples="budget", steps=seg_steps, model=model)
    configs.localization_controls(config)
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.explain = configs.explain()
    if s is SCALES["ci"]:
        configs.shrink(config, image_size=s["size"], steps=loc_steps)
    return config
