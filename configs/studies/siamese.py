"""Method 4, siamese self-supervision: a shared-weight dense encoder learns whether two crops
show the same side (left/right kidney; or, on 2-D data, the same class) with a contrastive
margin loss; one branch becomes the segmentation encoder, trained with weighted BCE + soft Dice
whose weights shift during training and a reconstruction branch as regulariser, against the
same net from scratch. Dice, HD95, boundary-length difference and validation curves.

    python -m jaxseg.main --config=configs/studies/siamese.py:scale=cpu --workdir=runs/siamese
    python -m jaxseg.main --config=configs/studies/siamese.py:scale=cpu,busi \\
        --workdir=runs/siamese_busi

Arguments: scale=ci|cpu|paper; default data: the built-in 3-D kidneys generator (CT-like
volumes, windowed to [−80, 300] HU, z-scored, pairs = crops around the kidney in each half of
a volume, label = side); busi | data=PATH: 2-D images, pairs by class label (BUSI: normal /
benign / malignant).

Time at scale=cpu (an estimate, not a measurement of this protocol): the s/step measured for
the earlier one-seed fixed-step protocol on BUSI (0.089 s/step, docs/results.md, 2-core box)
× the planned maximum steps of the 75 runs (3 seeds; every stage validated, up to its
``steps`` maximum; label-budget stages 100 epochs, at least 400 steps: 400 at 4 and 16 masks):
at most ~0.7 h (28,500 steps).
Early stopping (8 validations × 25 steps without a gain) ends most stages sooner.
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {
    "ci": dict(size=16, steps=(6, 6), folds=2, budgets=(4,), layers=(1, 1), growth=4, width=4),
    "cpu": dict(size=32, steps=(300, 600), folds=5, budgets=(4, 16), layers=(2, 2, 4),
                growth=8, width=8),
    "paper": dict(size=96, steps=(4000, 6000), folds=5, budgets=(8, 32), layers=(2, 2, 4, 8),
                  growth=16, width=16),
}  # fmt: skip


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, configs.STUDY_WORDS)
    s = configs.scale(args, SCALES)
    volumes = "busi" not in args and "data" not in args
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args, source="kidneys", num_images=60, image_size=s["size"])
    if volumes:
        config.data.preprocess = "ct_window:110:380,zscore"  # [−80, 300] HU
    else:
        config.data.update(preprocess="grayscale,normalize", image_size=2 * s["size"])
    config.protocol = configs.protocol(folds=s["folds"], run_folds=s["folds"], budgets=s["budgets"])
    model = models.config(name="densenet", width=s["width"], growth=s["growth"],
                          dense_layers=s["layers"], groups=4)  # fmt: skip
    seg_model = models.config(**{**model.to_dict(), "reconstruct": True})
    pre_steps, seg_steps = s["steps"]
    options = dict(margin=1.0, pair_by="side" if volumes else "label", same_fraction=0.5,
                   pairs_per_item=2, embedding=16)  # fmt: skip

    def segment(init: dict):
        return stage(
            "segmentation", examples="budget", steps=seg_steps, model=seg_model,
            loss="bce_dice", optimizer=dict(weight_decay=1e-2), init_from=init,
            task_options=dict(pos_weight=2.0, bce_dice_start=(0.6, 0.4), bce_dice_end=(0.2, 0.8),
                              recon_weight=0.1),
            batch_size=4,
        )  # fmt: skip

    config.stages = ml_collections.ConfigDict()
    config.stages.siamese = stage("siamese", examples="all", steps=pre_steps, model=model,
                                  task_options=options,
                                  optimizer=dict(weight_decay=1e-2),
                                  batch_size=4)  # fmt: skip
    config.stages.segment = segment(dict(stage="siamese", subtrees="encoder"))
    config.stages.scratch = segment({})
    config.arms = ml_collections.ConfigDict(dict(siamese="siamese,segment", scratch="scratch"))
    config.compare = ("siamese", "scratch")
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.report_metrics = ("dice", "hd95", "boundary_length_diff")
    config.explain = configs.explain(layers=r"^encoder/stage_\d+$")
    configs.converge(config, args.get("scale", "cpu"))
    if s is SCALES["ci"]:
        configs.shrink(config, image_size=config.data.image_size, steps=pre_steps)
        config.protocol.run_folds = 1  # one fold is enough to exercise every stage
        for name in ("segment", "scratch"):  # the tests' end-to-end run of the validated path
            config.stages[name].update(val_fraction=0.2, eval_every=3)
    return config
