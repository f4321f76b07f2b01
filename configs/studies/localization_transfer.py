"""Method 1, localization → segmentation: a U-Net encoder + linear head regresses the target's
centre (MSE, RMSprop) on every training image; the head is dropped, the encoder frozen, and the
decoder trained on a label budget of masks (−log soft Dice, Adam), against the same net from
scratch, at ≥ 5 budgets × 5 folds with paired tests per budget.

    python -m jaxseg.main --config=configs/studies/localization_transfer.py:scale=cpu,busi \\
        --workdir=runs/localization_transfer

Arguments: scale=ci|cpu|paper (ci: seconds, tests; cpu: ~30 min on 2 cores at 64²; paper: 256²
and the published step counts for a GPU/TPU), busi | idrid | data=PATH (default: the built-in
fundus generator), pool=PATH (another .npz whose images form the cheap-label pool). Real data is
preprocessed as method 1 does (grayscale, CLAHE, gamma, normalisation). Centres come from the
file where it stores them and are the mask centroids elsewhere (BUSI has no centre labels);
images without a centre (BUSI's normal class: empty masks) are left out of the localization
pretext. A file whose images have masks for some (``has_mask``) is a masked set with a
cheap-label pool beside it: folds, budgets and test images come from the masked images, the
localizer trains on every image outside the fold's test groups (docs/data.md).

``idrid`` (../shared/data/idrid/idrid.npz: 81 optic-disc masks, 508 disc centres; method 1's
setting on real data): 5 folds over the 81 masked images grouped by ``dup_group`` (copies of
one photograph share a fold), not the official train/test ``split``: one fixed split of 30
test masks would give one paired difference per budget and no test; the group folds are
leak-safe as well (no test image, nor a copy of it, enters that fold's pretext). Budgets stop
at 64 (a fold's 64-65 training masks).
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
    args = configs.parse_args(arg, (*configs.STUDY_WORDS, "idrid", "pool=PATH"))
    s = dict(configs.scale(args, SCALES))
    if "idrid" in args and s["budgets"][-1] > 64:
        s["budgets"] = tuple(b for b in s["budgets"] if b <= 64)
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
    config.arms = ml_collections.ConfigDict(dict(pretrained="localize,segment", scratch="scratch"))
    config.compare = ("pretrained", "scratch")
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.explain = configs.explain()
    if s is SCALES["ci"]:
        configs.shrink(config, image_size=s["size"], steps=loc_steps)
    return config
