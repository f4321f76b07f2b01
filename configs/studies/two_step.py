"""Method 3, two-step pretraining: pretext (classifier or autoencoder) → box-derived masks →
the small segmentation set, against one step of either and none.

    python -m jaxseg.main --config=configs/studies/two_step.py:scale=cpu,busi \\
        --workdir=runs/two_step
    python -m jaxseg.main --config=configs/studies/two_step.py:scale=ci --workdir=/tmp/t   # seconds

Arguments (after ':', comma-separated):
  scale=ci|cpu|paper  ci: seconds (tests); cpu: 64², plain U-Net (time below);
                      paper: the published 9-fold protocol at 256², ResNet50, GPU/TPU.
  busi | data=PATH    BUSI (../shared/data/busi/busi.npz) or another .npz / tfds dataset;
                      default: the built-in fundus generator.
  model=unet|deeplabv3, backbone=vgg16|resnet50|resnext50 (''= plain U-Net blocks),
  pretext=autoencoder|classification|multilabel (image-level labels; multilabel = which mask
  channels hold foreground; DeepLabv3: not autoencoder),
  transfer=encoder|encoder_decoder (what a segmenter takes from the autoencoder, the paper
  compares both; and from the box stage: its encoder, or the whole box net, head included,
  which is method 3's "the exact same networks are trained on" the small set),
  imagenet=PATH       adds the arm ``imagenet``: the segmenter's encoder starts from ImageNet
                      weights (a torchvision ``.pth`` or ``.safetensors`` for the backbone, e.g.
                      backbone=resnet50) or any jaxseg run directory (``init_from.path``).

Arms: ``none`` (scratch), ``pretext`` (pretext → segment), ``boxes`` (box masks → segment),
``two_step`` (pretext → box masks → segment); ``compare``: two_step vs none, pretext and boxes
(method 3's claim), and pretext and boxes each vs none, Holm-corrected over the pairs ×
budgets. The box masks are the dataset's boxes rasterised (BUSI has none of its own: they are
derived from its masks, so the box stage sees every training image's lesion extent, the cheap
label the study assumes).

Time at scale=cpu, measured on BUSI (docs/results.md, 2-core AMD EPYC box, CPU only, 2 shard
workers, commit b3cbb94): the 99 runs trained 36,350 of 47,700 planned steps in 14,585 s of
run phases summed over the workers, 2.1 h of wall time (0.40 s per step per worker).
"""

from __future__ import annotations

import ml_collections

from jaxseg import models
from jaxseg.models.backbones import BACKBONES
from jaxseg.studies import configs
from jaxseg.studies.configs import stage

SCALES = {
    # image size, steps (pretext, boxes, segment), folds, budgets, model
    "ci": dict(size=32, steps=(6, 6, 6), folds=2, budgets=(4,), backbone="", depth=2, width=4),
    # a ResNet50 U-Net trains at ~5 images/s at 64² on 2 CPU cores (measured), hours for
    # this protocol: scale=cpu uses the plain U-Net; backbone=resnet50 selects it anyway
    "cpu": dict(size=64, steps=(300, 300, 1000), folds=3, budgets=(16, 64),
                backbone="", depth=4, width=16),
    "paper": dict(size=256, steps=(3000, 3000, 6000), folds=9, budgets=(10, 40, 80),
                  backbone="resnet50", depth=4, width=32),
}  # fmt: skip
WORDS = (
    *configs.STUDY_WORDS,
    "model=unet|deeplabv3",
    f"backbone=|{'|'.join(BACKBONES)}",  # '' = plain U-Net blocks
    "pretext=autoencoder|classification|multilabel",
    "transfer=encoder|encoder_decoder",
    "imagenet=PATH",
)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    args = configs.parse_args(arg, WORDS)
    s = configs.scale(args, SCALES)
    ci = s is SCALES["ci"]
    name = args.get("model", "unet")
    backbone = args.get("backbone", s["backbone"])
    if name == "deeplabv3" and not backbone:
        backbone = "resnet50"
    model = models.config(name=name, backbone=backbone, depth=s["depth"], width=s["width"])
    # DeepLabv3 has no mirrored decoder to reconstruct with: its pretext is the classifier
    pretext = args.get("pretext", "classification" if name == "deeplabv3" else "autoencoder")
    transfer = args.get("transfer", "encoder_decoder")
    # the encoder's subtrees: DeepLab has no bottleneck, its decoder is the ASPP head
    encoder = "encoder" if name == "deeplabv3" else "encoder+bottleneck"
    both = encoder + "+decoder"
    from_pretext = both if pretext == "autoencoder" and transfer == "encoder_decoder" else encoder
    # the whole box net: its start is validated, so fine-tuning that only loses keeps it
    from_boxes = both + "+head" if transfer == "encoder_decoder" else encoder

    config = ml_collections.ConfigDict()
    config.seed = 0
    config.data = configs.data(args, num_images=600, image_size=s["size"])
    if "busi" in args or "data" in args:
        config.data.preprocess = "normalize"
    config.protocol = configs.protocol(folds=s["folds"], run_folds=s["folds"], budgets=s["budgets"])
    p_steps, b_steps, s_steps = s["steps"]

    def segment(source: str, subtrees: str, task: str = "segmentation", steps: int = s_steps,
                examples: str = "budget"):  # fmt: skip
        init = dict(stage=source, subtrees=subtrees) if source else {}
        lr = 1e-3 if ci else 3e-4
        return stage(task, examples=examples, steps=steps, optimizer=dict(learning_rate=lr),
                     model=model, init_from=init)  # fmt: skip

    config.stages = ml_collections.ConfigDict()
    config.stages.pretext = stage(pretext, examples="all", steps=p_steps, model=model)
    config.stages.boxes = segment("pretext", from_pretext, "box_segmentation", b_steps, "all")
    config.stages.boxes_only = segment("", "", "box_segmentation", b_steps, "all")
    config.stages.seg_pretext = segment("pretext", from_pretext)
    config.stages.seg_boxes = segment("boxes", from_boxes)
    config.stages.seg_boxes_only = segment("boxes_only", from_boxes)
    config.stages.scratch = segment("", "")
    config.arms = ml_collections.ConfigDict(
        dict(none="scratch", pretext="pretext,seg_pretext", boxes="boxes_only,seg_boxes_only",
             two_step="pretext,boxes,seg_boxes")
    )  # fmt: skip
    # method 3's claim: two steps beat none and each single step; each single step vs none
    config.compare = (("two_step", "none"), ("two_step", "pretext"), ("two_step", "boxes"),
                      ("pretext", "none"), ("boxes", "none"))  # fmt: skip
    if "imagenet" in args:  # the encoder from ImageNet weights, straight to the masks
        config.stages.seg_imagenet = segment("", "")
        config.stages.seg_imagenet.init_from.update(path=args["imagenet"], subtrees="encoder")
        config.arms.imagenet = "seg_imagenet"
        config.compare = (*config.compare, ("imagenet", "none"))
    config.correction = "holm"  # of the p-values over pairs × budgets: holm | bh
    config.pretext_check = "stop"  # a pretext worse than its trivial baseline: stop | warn
    config.report_metrics = ("dice", "miou")  # method 3 reports mIoU
    config.explain = configs.explain()
    configs.converge(
        config, args.get("scale", "cpu")
    )  # method 3 trains every step to early stopping
    if ci:
        configs.shrink(config, image_size=s["size"], steps=p_steps)
    return config
