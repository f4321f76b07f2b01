"""Method 1, localization → segmentation: a U-Net encoder + linear head (on the pooled features,
see below) regresses the target's centre (MSE, RMSprop) on every training image; the head is
dropped, the encoder frozen, and the decoder trained on a label budget of masks (−log soft
Dice, Adam), against the same net from scratch, at ≥ 5 budgets × 5 folds × 3 seeds with paired
tests per budget.

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

    python -m jaxseg.main --config=configs/studies/localization_transfer.py:scale=cpu,busi \\
        --workdir=runs/localization_transfer

Arguments: scale=ci|cpu|paper (ci: seconds, tests; cpu: 64² on 2 cores, see below; paper: 256²
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

Localizer settings (``configs.localizer``), chosen by measurement with
``benchmarks/localizer_sweep.py``: the localize stage at scale=cpu (64², depth-4 width-16
encoder, batch 8), fold 0 of 5, 200 steps, no validation; 2-core AMD EPYC box, CPU only, jax
0.10.2, 2026-12-01. Held-out centre error in pixels, beside the trivial baselines on the same
held-out images (mean centre: of the training images); in brackets the largest training loss
of steps 1-20 (the targets are centres in [-1, 1], so a loss ≫ 1 is a divergence):

| data | mean centre | image centre | vector 1e-3 (old) | vector 3e-4 wu50 | pooled 1e-3 wu50 |
|---|---:|---:|---:|---:|---:|
| fundus | 12.64 | 12.54 | 15.19 (117) | 9.07 (1.6) | **4.07** (0.29) |
| BUSI | 9.40 | 13.11 | 11.64 (107) | 14.12 (1.2) | **7.87** (0.18) |

(wu50: 50 warm-up steps; fundus also: vector 1e-4 wu50: 11.54.) Method 1's linear layer on
the 4,096 flattened bottleneck features diverges with RMSprop at 1e-3 (loss 0.3 → ~100 in the first
steps) and stays worse than the mean training centre; a smaller rate with warm-up trains but
does not beat it on BUSI. A linear layer on the globally average-pooled features (256) with
RMSprop at 1e-3, a 50-step linear warm-up and cosine decay beats both baselines on both data
sets: the default. Deviation from method 1: the features are averaged over positions before the
linear layer (``task_options.head='vector'`` restores method 1's). One fold and 200 steps:
a choice between settings, not the study's result.

Time at scale=cpu, measured on BUSI with 1 seed (docs/results.md; 2 shard workers, 2-core AMD
EPYC box, CPU only, partly shared): 105 runs, 117 min wall, 12,458 s of run phases; early
stopping (8 validations × 25 steps without a gain) trained 39,100 of the 60,000 planned steps
(1 localize + 5 budgets × 4 arms per fold × seed; label-budget stages 100 epochs, at least 400
steps: 400, 400, 400, 700 and 1000 steps at most at 8 … 128 masks). The default 3 seeds take
three times as long (~6 h); the two controls are half of it.
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {
    "ci": dict(size=32, steps=(6, 6), folds=2, budgets=(4,), depth=2, width=4),
    "cpu": dict(size=64, steps=(400, 1000), folds=5, budgets=(8, 16, 32, 64, 128), depth=4,
                width=16),
    "paper": dict(size=256, steps=(5000, 6000), folds=5, budgets=(8, 16, 32, 64, 128, 256),
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
        model=model,
        **configs.localizer(),  # head, optimizer, warm-up: measured, see above
    )
    config.stages.segment = stage(
        "segmentation", examples="budget", steps=seg_steps, model=model, freeze="encoder",
        init_from=dict(stage="localize", subtrees="encoder+bottleneck"),
    )  # fmt: skip
    config.stages.scratch = stage("segmentation", examples="budget", steps=seg_steps, model=model)
    configs.localization_controls(config)
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.explain = configs.explain()
    configs.converge(config, args.get("scale", "cpu"))
    if args.get("scale", "cpu") == "ci":  # (s is a copy of the scale's settings)
        configs.shrink(config, image_size=s["size"], steps=loc_steps)
    return config
