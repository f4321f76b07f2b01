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


def stage(task: str, *, examples: str, steps: int, **kw) -> ml_collections.ConfigDict:
    """A stage: ``task`` with its ``task_options`` (``jaxseg.tasks``) trained for ``steps``;
    ``examples`` 'all' trains on every image outside the fold's test groups (the cheap labels;
    with a pool beside the masked set, the pool too: docs/data.md), 'budget' on the label-budget
    subset of the fold's masked training images (the expensive masks). The optimizer is Adam at
    1e-3 unless ``optimizer=dict(name=..., learning_rate=...)`` says otherwise. ``freeze`` is a
    preset of ``jaxseg.surgery.presets`` or a plan 'regex=rule,...'; progressive presets
    unfreeze one more block every ``unfreeze_every`` epochs or at the ``unfreeze_at`` steps.
    Frozen subtrees run in inference mode (dropout off); their BatchNorms use the stored
    statistics unless ``frozen_norm='adapt'`` (batch statistics, running averages updated; scale
    and bias stay frozen). ``val_fraction`` > 0 carves a group-aware validation split from the
    stage's training images, validated every ``eval_every`` steps (0: at checkpoints) on
    ``monitor`` ('' = the task's primary metric); ``patience`` evaluations without a
    ``min_delta`` gain stop the stage (0: never), and the test metrics come from the best
    validation checkpoint. ``augment`` (``jaxseg.data.augment``): shift (fraction), rotate/shear
    (degrees), flips, zoom (fraction), blur (max sigma), p. Keyword fields given as dicts merge
    into the defaults (``optimizer=dict(weight_decay=0.01)``)."""
    cfg = ml_collections.ConfigDict(
        dict(
            task=task, loss="", task_options={}, steps=steps, batch_size=8, examples=examples,
            optimizer=dict(name="adam", learning_rate=1e-3, schedule="constant",
                           warmup_steps=0, weight_decay=0.0, momentum=0.0),
            init_from=dict(stage="", subtrees="", rename="", allow=""),
            freeze="none", unfreeze_every=0, unfreeze_at=(), frozen_norm="stored",
            val_fraction=0.0, eval_every=0, monitor="", patience=0, min_delta=0.0,
            augment=dict(shift=0.0, rotate=0.0, flip=False, vflip=False, shear=0.0, zoom=0.0,
                         blur=0.0, p=1.0),
            log_every=150, checkpoint_every=300,
        )
    )  # fmt: skip
    cfg.update(kw)
    return cfg


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
    2 folds, one budget, a few steps per stage."""
    config.data.update(num_images=40, image_size=image_size)
    config.protocol.update(folds=2, run_folds=2, budgets=(4,))
    for s in config.stages.values():
        s.update(steps=steps, batch_size=4, log_every=3, checkpoint_every=3)
    config.explain.update(num_images=2, channels=2, steps=4)
