"""Method 2, which layers to fine-tune: a U-Net pretrained on a different segmentation source
(the built-in fundus generator's optic discs) is fine-tuned on the target set with only the
contracting path trainable, only the expanding path, everything, or only the k blocks nearest
the input (shallow→deep curve) or the output (deep→shallow curve), against scratch. Dice, pixel
error and adjusted Rand index; augmentation by shift, rotation, flip, shear and zoom.

    python -m jaxseg.main --config=configs/studies/which_layers.py:scale=cpu,busi \\
        --workdir=runs/which_layers

Arguments: scale=ci|cpu|paper, busi | data=PATH (default target: the fundus generator with
another seed — then source and target are alike; use real data for the real question).
A block is the two convolutions between consecutive pooling/up-sampling layers: a depth-L
U-Net has 2·L+1 of them (surgery.presets). Note: in this U-Net the contracting path holds ~61%
of the parameters (method 2's text says the expanding path is about twice the contracting one).

Time at scale=cpu on BUSI, measured (docs/results.md; 2-core AMD EPYC box, 2 shard workers):
153 runs, 76,000 of the 104,400 planned maximum steps (early stopping ended 117 of the 144
64-mask runs), 24,115 s of run phases summed over the workers: ~3.3 h of wall time.
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {
    "ci": dict(size=32, steps=(6, 6), folds=2, budgets=(8,), depth=2, width=4),
    "cpu": dict(size=64, steps=(400, 1000), folds=3, budgets=(64,), depth=3, width=16),
    "paper": dict(size=256, steps=(6000, 6000), folds=5, budgets=(1.0,), depth=4, width=64),
}  # fmt: skip


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, configs.STUDY_WORDS)
    s = configs.scale(args, SCALES)
    # method 2 up-samples in the expanding path (resize + conv) instead of transposed convs
    model = models.config(depth=s["depth"], width=s["width"], norm="batch", upsample="resize")
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args, image_size=s["size"], seed=1)
    if config.data.source != "fundus":
        config.data.preprocess = "grayscale,normalize"
    config.protocol = configs.protocol(folds=s["folds"], run_folds=s["folds"], budgets=s["budgets"])
    pre_steps, tune_steps = s["steps"]
    augment = dict(shift=0.1, rotate=10.0, flip=True, vflip=False, shear=5.0, zoom=0.1, blur=0.0,
                   p=1.0)  # fmt: skip
    source = configs.data({}, source="fundus", image_size=s["size"], seed=0)
    config.stages = ml_collections.ConfigDict()
    config.stages.pretrain = stage(
        "segmentation", examples="all", steps=pre_steps, model=model, data=source, augment=augment
    )

    def tune(freeze: str, pretrained: bool = True):
        init = dict(stage="pretrain", subtrees="encoder+bottleneck+decoder+head")
        init = init if pretrained else {}
        return stage("segmentation", examples="budget", steps=tune_steps, model=model,
                     freeze=freeze, augment=augment, init_from=init)  # fmt: skip

    config.stages.scratch = tune("none", pretrained=False)
    config.stages.full = tune("none")
    config.stages.contracting = tune(
        "decoder"
    )  # decoder + head frozen: the contracting path trains
    config.stages.expanding = tune("encoder")  # encoder + bottleneck frozen
    arms = dict(scratch="scratch", full="pretrain,full", contracting="pretrain,contracting",
                expanding="pretrain,expanding")  # fmt: skip
    blocks = 2 * s["depth"] + 1
    for end in ("shallow", "deep"):
        for k in range(1, blocks):  # k = blocks is "full"
            config.stages[f"{end}_{k}"] = tune(f"{end}:{k}")
            arms[f"{end}_{k}"] = f"pretrain,{end}_{k}"
    config.arms = ml_collections.ConfigDict(arms)
    # method 2's two claims (contracting over expanding; shallow→deep over deep→shallow at equal
    # k) and the control it lacks: does the source pretraining beat scratch at all?
    curves = (f"shallow_{k}:deep_{k}" for k in range(1, blocks))
    config.compare = ("contracting:expanding", *curves, "full:scratch", "contracting:scratch")
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.report_metrics = ("dice", "pixel_error", "ari")  # method 2's three
    config.explain = configs.explain()
    configs.converge(config, args.get("scale", "cpu"))
    if s is SCALES["ci"]:
        configs.shrink(config, image_size=s["size"], steps=pre_steps)
        config.protocol.run_folds = 1  # one fold is enough to exercise every stage
        config.protocol.budgets = s["budgets"]
        config.stages.pretrain.data.update(num_images=40, image_size=s["size"])
    return config
