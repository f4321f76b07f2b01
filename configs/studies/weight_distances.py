"""Method 5, weight distances: a scratch U-Net per structure (conv kernels He-initialised, as
the paper), each fine-tuned onto every other structure; the average Euclidean (L2) distance
between the conv kernels of a scratch net and its fine-tuned copy, over the whole net and per
depth with encoder and decoder stage i apart, in both directions (d(X(s), Y|X(s)) vs d(Y(s),
X|Y(s))), and whether fine-tuning beats scratch on the target structure.

Equal training: the paper trains every net, scratch or fine-tuned, with the same early stopping
on its target tissue. Here "equal" means equal steps *on the target structure*: fine-tuning
runs as many steps as a scratch net (one ``steps`` per scale for both stages), so arm ``X_to_Y``
and arm ``Y`` (compared on Y) both train ``steps`` steps on Y, and ``X_to_Y`` starts from
``X``'s trained net (its chain is twice as long; those extra steps on X are the treatment).
Scratch is not lengthened to the chain's total: ``X`` is also the start of ``X_to_Y``, as the
paper's A(s) is both the baseline and the source; equal totals would need a second, longer
scratch net per structure.

At ``scale=cpu`` each stage trains 300 steps (formerly 400 scratch + 200 fine-tuning: with two
structures the same 1,200 steps per fold, so about the same wall time); ``paper`` 4,000 each.

Deviations from the paper that remain: a U-Net of 3 (cpu) / 4 (paper) poolings, where the
paper's figure names encoder levels up to enc_layer6; 2-D BUSI lesion classes (benign,
malignant) or the fundus generator's cup sizes instead of knee-MRI tissues; fixed step counts
unless the stages' ``val_fraction``/``patience`` are set (the paper stops early on the
validation soft-Dice loss); a *kernel* is taken as one conv layer's whole weight tensor (the
paper does not say whether its average runs over layers or single filters); He initialisation
covers the U-Net's conv kernels (blocks, up-sampling, 1×1 head), BatchNorm starts at scale 1,
bias 0.

    python -m jaxseg.main --config=configs/studies/weight_distances.py:scale=cpu,busi \\
        --workdir=runs/weight_distances

Arguments: scale=ci|cpu|paper; busi | data=PATH (default: the fundus generator);
structures=A+B+... class names to treat as structures (default: BUSI's benign+malignant
lesions, or every class of the dataset); lr=depth fine-tunes with depth-dependent learning
rates (``depth_lr:0.5``: stage i at 0.5^i, method 5) instead of one rate.

Time at scale=cpu (an estimate, not a measurement of this protocol): the s/step measured for
the earlier one-seed fixed-step protocol on BUSI (0.130 s/step, docs/results.md, 2-core box)
× the planned maximum steps of the 36 runs (3 seeds; every stage validated, up to its
``steps`` maximum): at most ~0.4 h (10,800 steps).
Early stopping (8 validations × 25 steps without a gain) ends most stages sooner.
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {  # steps: of every stage, scratch and fine-tuning alike (equal training, above)
    "ci": dict(size=32, steps=6, folds=2, depth=2, width=4),
    "cpu": dict(size=64, steps=300, folds=3, depth=3, width=16),
    "paper": dict(size=256, steps=4000, folds=5, depth=4, width=32),
}  # fmt: skip
WORDS = (*configs.STUDY_WORDS, "structures=A+B+...", "lr=depth")
DEFAULT_STRUCTURES = {"fundus": ("small_cup", "large_cup"), "npz": ("benign", "malignant")}


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, WORDS)
    s = configs.scale(args, SCALES)
    model = models.config(depth=s["depth"], width=s["width"], norm="batch", kernel_init="he")
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args, image_size=s["size"])
    if config.data.source != "fundus":
        config.data.preprocess = "grayscale,normalize"
    default = DEFAULT_STRUCTURES.get(config.data.source, ())
    structures = tuple(args["structures"].split("+")) if "structures" in args else default
    if len(structures) < 2:
        raise ValueError("weight_distances: give structures=A+B[+...] (at least two class names)")
    config.protocol = configs.protocol(folds=s["folds"], run_folds=s["folds"], budgets=(1.0,))
    steps = s["steps"]
    freeze = "depth_lr:0.5" if args.get("lr") == "depth" else "none"

    def on(structure: str) -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({**config.data.to_dict(), "classes": (structure,)})

    config.stages = ml_collections.ConfigDict()
    arms = {}
    for x in structures:
        config.stages[f"scratch_{x}"] = stage(
            "segmentation", examples="all", steps=steps, model=model, data=on(x)
        )
        arms[x] = f"scratch_{x}"
    for x in structures:
        for y in structures:
            if x != y:
                init = dict(stage=f"scratch_{x}", subtrees="encoder+bottleneck+decoder+head")
                config.stages[f"{x}_to_{y}"] = stage(
                    "segmentation", examples="all", steps=steps, model=model, data=on(y),
                    init_from=init, freeze=freeze,
                )  # fmt: skip
                arms[f"{x}_to_{y}"] = f"scratch_{x},{x}_to_{y}"
    config.arms = ml_collections.ConfigDict(arms)
    # each fine-tuned arm X_to_Y against Y from scratch, in both directions
    config.compare = tuple(f"{x}_to_{y}:{y}" for x in structures for y in structures if x != y)
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.analysis = ml_collections.ConfigDict(dict(weight_distances=structures))
    config.explain = configs.explain()
    configs.converge(config, args.get("scale", "cpu"))
    if s is SCALES["ci"]:
        configs.shrink(config, image_size=s["size"], steps=steps)
        config.protocol.run_folds = 1  # one fold is enough to exercise every stage
        config.protocol.budgets = (1.0,)
        for st in config.stages.values():
            st.data.update(num_images=40, image_size=s["size"])
    return config
