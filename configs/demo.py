"""Main job (method 1): centre-localization pretext → frozen-encoder segmentation vs scratch.

    python -m jaxseg.main --config=configs/demo.py --workdir=runs/demo
    python -m jaxseg.main --config=configs/demo.py:busi --workdir=runs/busi   # BUSI .npz
    python -m jaxseg.main --config=configs/demo.py:tiny --workdir=/tmp/t     # seconds (tests)

Arguments (after ':', comma-separated): 'busi' reads ../shared/data/busi/busi.npz (or
``data=PATH`` for another .npz of that layout, ``pool=PATH`` for another .npz as its cheap-label
pool); 'tiny' shrinks everything for tests;
'controls' adds method 1's control arms ``frozen_random`` (the pretrained arm's freezing on a
random encoder) and ``finetune`` (the localizer's encoder, nothing frozen) with their
comparisons (``studies.configs.localization_controls``, as configs/studies/
localization_transfer.py). They are not in the default demo: they add two segmentation runs per
fold and budget, about 65 % more training (one fold of the earlier fixed-step demo, timed under
load: localize 82 s, the two frozen segment runs 46 s, the two scratch runs 114 s), which would
take the demo past its 10 minutes.

Without 'tiny' the stages follow the scale=cpu defaults of ``jaxseg.studies.configs.converge``
(validation split, early stopping, the segmentation stages 100 epochs of their masks, at most
1000 steps: 100 steps at 4 masks, 200 at 16; without the studies' floor of 400 steps, which
would let early stopping end the small budgets' runs) with one seed (the studies run 3).
Measured: 8 min 37 s wall on the 2-core AMD EPYC box (CPU only, jax 0.10.2, quiet, 2026-12-01),
1.26 GB peak RSS; the localizer beat both trivial baselines in 5 of 5 folds (2.2 px against
12.8 px).

The default data is method 1's setting in small: the built-in fundus generator's 2,400 images,
of which 200 keep their disc mask and 2,200 form a centre-only pool. The masked 200 give the 5
folds, the label budgets and the test images; the localizer trains on the pool plus the fold's
masked training images. 'tiny' keeps 40 fully masked images (seconds).
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

MASKED, POOL = 200, 2200  # the demo's masked set and its centre-only pool (fundus generator)


def unet() -> ml_collections.ConfigDict:
    return models.config(name="unet", depth=3, width=8, norm="batch", dropout=0.1)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, ("tiny", "controls", *configs.DATA_WORDS, "pool=PATH"))
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args)
    if config.data.source == "fundus" and "tiny" not in args:
        config.data.update(num_images=POOL + MASKED, num_masked=MASKED)
    config.protocol = configs.protocol()
    model = unet()
    config.stages = ml_collections.ConfigDict()
    config.stages.localize = stage(
        "localization", examples="all", steps=600, model=model, **configs.localizer()
    )
    segment = dict(model=model, freeze="encoder")  # preset: encoder + bottleneck frozen
    config.stages.segment = stage(
        "segmentation", examples="budget", steps=1000,
        init_from=dict(stage="localize", subtrees="encoder+bottleneck"), **segment,
    )  # fmt: skip
    config.stages.scratch = stage("segmentation", examples="budget", steps=1000, model=model)
    config.arms = ml_collections.ConfigDict(dict(pretrained="localize,segment", scratch="scratch"))
    config.compare = ("pretrained", "scratch")
    if "controls" in args:
        configs.localization_controls(config)
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.explain = configs.explain()
    # the demo (~10 min): no floor of steps (100 steps at 4 masks) and one seed; studies run 3
    configs.converge(config, "ci" if "tiny" in args else "cpu", floor=False)
    config.protocol.seeds = (0,)
    if "tiny" in args:
        model.update(depth=2, width=4)
        configs.shrink(config)
    return config
