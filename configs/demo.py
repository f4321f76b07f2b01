"""Main job (method 1): centre-localization pretext → frozen-encoder segmentation vs scratch.

    python -m jaxseg.main --config=configs/demo.py --workdir=runs/demo
    python -m jaxseg.main --config=configs/demo.py:busi --workdir=runs/busi   # BUSI .npz
    python -m jaxseg.main --config=configs/demo.py:tiny --workdir=/tmp/t     # seconds (tests)

Arguments (after ':', comma-separated): 'busi' reads ../shared/data/busi/busi.npz (or
``data=PATH`` for another .npz of that layout, ``pool=PATH`` for another .npz as its cheap-label
pool); 'tiny' shrinks everything for tests.

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
    args = configs.parse_args(arg, ("tiny", *configs.DATA_WORDS, "pool=PATH"))
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args)
    if config.data.source == "fundus" and "tiny" not in args:
        config.data.update(num_images=POOL + MASKED, num_masked=MASKED)
    config.protocol = configs.protocol()
    model = unet()
    config.stages = ml_collections.ConfigDict()
    config.stages.localize = stage(
        "localization", examples="all", steps=600, optimizer=dict(name="rmsprop"), model=model
    )
    segment = dict(model=model, freeze="encoder")  # preset: encoder + bottleneck frozen
    config.stages.segment = stage(
        "segmentation", examples="budget", steps=150,
        init_from=dict(stage="localize", subtrees="encoder+bottleneck"), **segment,
    )  # fmt: skip
    config.stages.scratch = stage("segmentation", examples="budget", steps=150, model=model)
    config.arms = ml_collections.ConfigDict(dict(pretrained="localize,segment", scratch="scratch"))
    config.compare = ("pretrained", "scratch")
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.explain = configs.explain()
    if "tiny" in args:
        model.update(depth=2, width=4)
        configs.shrink(config)
    return config
