"""Optimizers by name, with a learning-rate schedule, from a stage's ``optimizer`` config.

``weight_decay`` follows PyTorch: for ``adam``, ``rmsprop`` and ``sgd`` it is coupled L2
(``wd · param`` added to the gradient before the optimizer's moments, as
``torch.optim.Adam(weight_decay=...)``; method 4's Adam); ``adamw`` decays decoupled
(``lr · wd · param`` subtracted after the Adam step). ``momentum`` is the heavy-ball momentum of
``sgd`` and ``rmsprop``; Adam's first moment is fixed (b1 = 0.9), so adam/adamw refuse it.
"""

from __future__ import annotations

import math

import ml_collections
import optax

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
WITH_MOMENTUM = ("rmsprop", "sgd")
SCHEDULES = ("constant", "cosine")


def schedule(cfg: ml_collections.ConfigDict, steps: int) -> optax.Schedule:
    """Constant, or linear warm-up then cosine decay to 0 over ``steps``."""
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0, cfg.learning_rate, min(cfg.warmup_steps, steps - 1), max(steps, 1)
        )
    raise ValueError(f"optimizer.schedule={cfg.schedule!r} is unknown; use one of {SCHEDULES}")


def check(cfg: ml_collections.ConfigDict) -> None:
    """Raise one ValueError naming the key for a setting out of range or without effect."""
    if cfg.name not in OPTIMIZERS:
        raise ValueError(f"optimizer.name={cfg.name!r} is unknown; use one of {OPTIMIZERS}")
    if not math.isfinite(cfg.learning_rate) or cfg.learning_rate <= 0:  # <= 0 ascends or stalls
        raise ValueError(f"optimizer.learning_rate={cfg.learning_rate} must be finite and > 0")
    if cfg.warmup_steps < 0:
        raise ValueError(f"optimizer.warmup_steps={cfg.warmup_steps} must be >= 0")
    if cfg.weight_decay < 0:
        raise ValueError(f"optimizer.weight_decay={cfg.weight_decay} must be >= 0")
    if not 0 <= cfg.momentum < 1:
        raise ValueError(f"optimizer.momentum={cfg.momentum} must be in [0, 1)")
    if cfg.momentum and cfg.name not in WITH_MOMENTUM:
        raise ValueError(
            f"optimizer.momentum={cfg.momentum} has no effect with {cfg.name} (its first moment "
            f"is fixed at b1=0.9); set it to 0 or use one of {WITH_MOMENTUM}"
        )


def build(cfg: ml_collections.ConfigDict, steps: int) -> optax.GradientTransformation:
    """The trainable-leaf optimizer (freezing wraps it, see ``surgery.freeze``), checked."""
    check(cfg)
    lr = schedule(cfg, steps)
    if cfg.name == "adamw":
        return optax.adamw(lr, weight_decay=cfg.weight_decay)
    momentum = cfg.momentum or None
    if cfg.name == "adam":
        tx = optax.adam(lr)
    elif cfg.name == "rmsprop":
        tx = optax.rmsprop(lr, decay=0.9, momentum=momentum)
    else:
        tx = optax.sgd(lr, momentum=momentum)
    if not cfg.weight_decay:
        return tx
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay), tx)  # coupled L2
