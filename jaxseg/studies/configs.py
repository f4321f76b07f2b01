"""Builders shared by the study configs in ``configs/``: a stage, the data and protocol blocks,
the explain block and the ``NAME.py:arg`` argument parser, so every study has the same fields
(and command-line overrides reach all of them)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import ml_collections

BUSI = os.environ.get("JAXSEG_BUSI") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "busi", "busi.npz")
)

IDRID = os.environ.get("JAXSEG_IDRID") or os.path.normpath(
    os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "data", "idrid", "idrid.npz"
    )
)

DATA_WORDS = ("busi", "data=PATH")  # the data words every config file accepts
STUDY_WORDS = ("scale=ci|cpu|paper", *DATA_WORDS)  # ... and every study of configs/studies/


def parse_args(arg: str, accepted: Sequence[str]) -> dict[str, str]:
    """'tiny,data=PATH' -> {'tiny': '1', 'data': 'PATH'}, every word checked against the
    ``accepted`` ones of the config file: 'word' (a switch), 'word=VALUE' (any non-empty value;
    VALUE in capitals, e.g. PATH) or 'word=a|b' (one of those values; '|b' admits '' too). A word
    not accepted is a ValueError listing the accepted ones: a misspelt 'dta=PATH' must not fall
    back to the built-in data."""
    spec = dict(w.partition("=")[::2] for w in accepted)
    words = [w for w in arg.split(",") if w]
    listing = f"accepted: {', '.join(accepted)}"
    unknown = [w for w in words if w.partition("=")[0] not in spec]
    if unknown:
        raise ValueError(f"unknown config argument(s) {', '.join(map(repr, unknown))}; {listing}")
    args: dict[str, str] = {}
    for word in words:
        name = word.partition("=")[0]
        if name in args:
            raise ValueError(f"config argument {name!r} is given twice; {listing}")
        args[name] = _value(word, spec[name], listing)
    return args


def _value(word: str, values: str, listing: str) -> str:
    """The value of one ``word`` whose accepted form is ``name[=values]`` ('1' for a switch)."""
    name, eq, value = word.partition("=")
    free = values.isupper()
    if bool(eq) != bool(values) or (free and not value):
        form = f"{name}={values}" if values else name
        raise ValueError(f"config argument {word!r} must read {form!r}; {listing}")
    if values and not free and value not in values.split("|"):
        raise ValueError(f"config argument {name}={value!r} is not one of {values}")
    return value if eq else "1"


def scale(args: dict[str, str], scales: dict[str, dict]) -> dict:
    """The settings of ``scale=NAME`` (default 'cpu'; ``parse_args`` checked the name)."""
    return scales[args.get("scale", "cpu")]


def stage(
    task: str, *, examples: str, steps: int, epochs: float = 0, **kw
) -> ml_collections.ConfigDict:
    """A stage: ``task`` with its ``task_options`` (``jaxseg.tasks``) trained for ``steps``, or for
    ``epochs`` passes over its training examples (after the validation split) when ``epochs`` > 0,
    ``steps`` then being the maximum (0: none) and ``min_steps`` the least; the steps a run resolves
    to (``jaxseg.train.setup.resolve_steps``) are recorded in its result.json. ``examples`` 'all'
    trains on every image outside the fold's test groups (the cheap labels; with a pool beside the
    masked set, the pool too: docs/data.md), 'budget' on the label-budget subset of the fold's
    masked training images (the expensive masks). The optimizer is Adam at 1e-3 unless
    ``optimizer=dict(name=..., learning_rate=...)`` says otherwise. ``freeze`` is a preset of
    ``jaxseg.surgery.presets`` or a plan 'regex=rule,...'; progressive presets unfreeze one more
    block every ``unfreeze_every`` epochs or at the ``unfreeze_at`` steps. Frozen subtrees run in
    inference mode (dropout off); their BatchNorms use the stored statistics unless
    ``frozen_norm='adapt'`` (batch statistics, running averages updated; scale and bias stay
    frozen). ``val_fraction`` > 0 carves a group-aware validation split from the stage's training
    images, validated every ``eval_every`` steps (0: at checkpoints) on ``monitor`` ('' = the task's
    primary metric); ``patience`` evaluations without a ``min_delta`` gain stop the stage (0:
    never), and the best validated checkpoint is what the stage's test metrics and every later
    reader (transfer, weight distances, explain, predict) use. ``augment``
    (``jaxseg.data.augment``): shift (fraction), rotate/shear (degrees), flips, zoom (fraction),
    blur (max sigma), p. Keyword fields given as dicts merge into the defaults
    (``optimizer=dict(weight_decay=0.01)``). ``converge`` applies the scale's validation,
    early-stopping and epoch defaults."""
    cfg = ml_collections.ConfigDict(
        dict(
            task=task, loss="", task_options={}, steps=steps, epochs=epochs, min_steps=0,
            batch_size=8, examples=examples,
            optimizer=dict(name="adam", learning_rate=1e-3, schedule="constant",
                           warmup_steps=0, weight_decay=0.0, momentum=0.0),
            init_from=dict(stage="", path="", subtrees="", rename="", allow=""),
            freeze="none", unfreeze_every=0, unfreeze_at=(), frozen_norm="stored",
            val_fraction=0.0, eval_every=0, monitor="", patience=0, min_delta=0.0,
            augment=dict(shift=0.0, rotate=0.0, flip=False, vflip=False, shear=0.0, zoom=0.0,
                         blur=0.0, p=1.0),
            log_every=150, checkpoint_every=300,
        )
    )  # fmt: skip
    cfg.update(kw)
    return cfg


def localization_controls(config: ml_collections.ConfigDict) -> None:
    """Method 1's arms with its two controls, from ``config.stages`` 'localize', 'segment'
    (from localize's encoder + bottleneck, those frozen) and 'scratch': ``pretrained`` =
    localize → segment, ``scratch``, ``frozen_random`` (segment's freezing on a random,
    untrained encoder: a stage without segment's ``init_from``; its seed, hence its initial
    net, is scratch's) and ``finetune`` (localize → segment's ``init_from`` with nothing
    frozen; the localize run is the pretrained arm's). ``compare``: pretrained − scratch,
    pretrained − frozen_random (the pretext's share, freezing held equal) and finetune −
    scratch."""
    segment = {**config.stages.segment.to_dict(), "model": config.stages.segment.model}
    # the model block is segment's own object: a later change of it (``tiny``) reaches all three
    config.stages.frozen_random = stage(**{**segment, "init_from": {}})
    config.stages.finetune = stage(**{**segment, "freeze": "none"})
    config.arms = ml_collections.ConfigDict(
        dict(pretrained="localize,segment", scratch="scratch", frozen_random="frozen_random",
             finetune="localize,finetune")
    )  # fmt: skip
    config.compare = ("pretrained:scratch", "pretrained:frozen_random", "finetune:scratch")


def localizer() -> dict:
    """Method 1's localization stage settings (issue 15 §2), chosen by measurement on the
    built-in fundus data and BUSI at 64² (table in configs/studies/localization_transfer.py,
    ``benchmarks/localizer_sweep.py``): a linear head on the globally average-pooled bottleneck
    features (``head='pooled'``; method 1 puts its linear layer on the flattened features, which
    with RMSprop at 1e-3 diverged at step 2), RMSprop at 1e-3 after a 50-step linear warm-up,
    cosine decay over ``steps``; centres in [-1, 1] (the task's target scale). Fields for
    ``stage('localization', ..., **localizer())``."""
    return dict(
        task_options=dict(head="pooled"),
        optimizer=dict(name="rmsprop", learning_rate=1e-3, schedule="cosine", warmup_steps=50),
    )


def data(args: dict[str, str], source: str = "fundus", **fields) -> ml_collections.ConfigDict:
    """The data block: the built-in ``source`` unless ``busi``, ``idrid`` or ``data=PATH`` (an
    .npz, or a tfds folder) is given; ``pool=PATH`` adds another .npz as a cheap-label pool
    (``data.pool``: its masks dropped, see ``jaxseg.data.pool``). ``classes`` keeps only the
    examples of those class names (() = all), e.g. one structure per stage in the
    weight-distance study."""
    cfg = ml_collections.ConfigDict(
        dict(source=source, num_images=600, image_size=64, seed=0, path="", preprocess="",
             pad_multiple=0, classes=())
    )  # fmt: skip
    cfg.update(fields)
    given = [w for w in ("busi", "idrid", "data") if w in args]
    if len(given) > 1:
        raise ValueError(f"config arguments {' and '.join(given)} both name the data; give one")
    if given:
        path = os.path.abspath(args.get("data", IDRID if "idrid" in args else BUSI))
        cfg.source = "npz" if path.endswith(".npz") else "tfds"
        cfg.path = path
    if "pool" in args:
        if cfg.source != "npz":
            raise ValueError(
                f"config argument pool=PATH needs an .npz masked set (data=PATH.npz, busi or "
                f"idrid), not data.source={cfg.source!r}"
            )
        cfg.pool = os.path.abspath(args["pool"])
    return cfg


# Issue 15 §2, convergence by default: at scale=cpu and paper every stage validates on a
# group-aware split of its training images and stops early (``steps`` is then the maximum; the
# best validated checkpoint is what the stage's test metrics, transfers, distances and explain
# read); the label-budget segmentation stages train for a number of epochs (a larger budget gets
# proportionally more steps) up to their ``steps``, and at least twice the patience window
# (``patience`` × ``eval_every`` steps), so that early stopping can end even the smallest
# budget's run (measured: 100 epochs of 16 BUSI masks resolved to 200 steps, no longer than the
# window, and none of those runs stopped early); three seeds (pairs = folds × seeds). scale=ci
# and the demo's ``tiny`` keep fixed short steps without validation, for speed.
CONVERGENCE = {
    "ci": {},
    "cpu": dict(val_fraction=0.2, eval_every=25, patience=8),
    "paper": dict(val_fraction=0.1, eval_every=100, patience=5),
}
BUDGET_EPOCHS = {"ci": 0, "cpu": 100, "paper": 200}
BUDGET_MIN_STEPS = {"ci": 0, "cpu": 400, "paper": 1000}
SEEDS = {"ci": (0,), "cpu": (0, 1, 2), "paper": (0, 1, 2)}


def converge(config: ml_collections.ConfigDict, scale_name: str, floor: bool = True) -> None:
    """Apply the ``scale_name`` ('ci' | 'cpu' | 'paper') defaults above to every stage and the
    protocol of a study ``config``, in place: validation and early stopping for every stage,
    epochs and (``floor``) a minimum of steps for the stages that train on the label budget
    (``examples='budget'``: masks), seeds.
    Call it after building the stages and before ``shrink``."""
    for s in config.stages.values():
        s.update(CONVERGENCE[scale_name])
        if s.examples == "budget" and BUDGET_EPOCHS[scale_name]:
            s.epochs = BUDGET_EPOCHS[scale_name]
            s.min_steps = BUDGET_MIN_STEPS[scale_name] if floor else 0
    config.protocol.seeds = SEEDS[scale_name]


def protocol(**fields) -> ml_collections.ConfigDict:
    """Folds × budgets × seeds (see docs/design.md §5)."""
    cfg = ml_collections.ConfigDict(
        dict(folds=5, run_folds=5, budgets=(4, 16), seeds=(0,), split_seed=0)
    )
    cfg.update(fields)
    return cfg


def explain(**fields) -> ml_collections.ConfigDict:
    """What transferred: activation maps, maximisation and per-stage similarity of the first
    split (off unless ``enabled``)."""
    cfg = ml_collections.ConfigDict(
        dict(enabled=False, layers=r"^(encoder/stage_\d+|bottleneck)$", num_images=4, channels=8,
             steps=64)
    )  # fmt: skip
    cfg.update(fields)
    return cfg


def shrink(config: ml_collections.ConfigDict, image_size: int = 32, steps: int = 6) -> None:
    """The seconds-long ``tiny`` (demo) / ``scale=ci`` version of a study (tests): few images,
    2 folds, one budget, a few steps per stage. A pretext of a few steps need not beat its
    trivial baseline, so ``pretext_check`` becomes 'warn' (the report says so at the top)."""
    config.data.update(num_images=40, image_size=image_size)
    config.pretext_check = "warn"
    config.protocol.update(folds=2, run_folds=2, budgets=(4,))
    for s in config.stages.values():
        s.update(steps=steps, batch_size=4, log_every=3, checkpoint_every=3)
    config.explain.update(num_images=2, channels=2, steps=4)
