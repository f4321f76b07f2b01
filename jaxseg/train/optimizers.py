"""Optimizers by name, with a learning-rate schedule, from a stage's ``optimizer`` config."""

from __future__ import annotations

import ml_collections
import optax

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
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


def build(cfg: ml_collections.ConfigDict, steps: int) -> optax.GradientTransformation:
    """The trainable-leaf optimizer (freezing wraps it, see ``surgery.freeze``)."""
    lr = schedule(cfg, steps)
    if cfg.name == "adam":
        return optax.adam(lr)
    if cfg.name == "adamw":
        return optax.adamw(lr, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return optax.rmsprop(lr, decay=0.9)
    if cfg.name == "sgd":
        return optax.sgd(lr, momentum=cfg.momentum or None)
    raise ValueError(f"optimizer.name={cfg.name!r} is unknown; use one of {OPTIMIZERS}")
