"""Checks of a stage's loop settings that need no data or model (run before anything trains)."""

from __future__ import annotations

import ml_collections

from jaxseg.surgery.freeze import FROZEN_NORMS

POSITIVE_INTS = ("steps", "batch_size", "log_every", "checkpoint_every")


def eval_every(config: ml_collections.ConfigDict) -> int:
    """The steps between a stage's validations: ``eval_every``, or 0 = its ``checkpoint_every``
    (the trainer validates then and at the last step; reports count from it)."""
    return config.get("eval_every", 0) or config.checkpoint_every


def check_settings(config: ml_collections.ConfigDict) -> None:
    """Raise one ValueError naming the stage and key for a loop setting out of range. ``steps``
    may be 0 (no maximum) when the stage gives ``epochs`` > 0."""
    epochs = config.get("epochs", 0)
    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not epochs >= 0:
        raise ValueError(f"stage {config.name!r}: epochs={epochs!r} must be a number >= 0")
    for key in POSITIVE_INTS:
        least = 0 if key == "steps" and epochs else 1
        if not isinstance(config[key], int) or config[key] < least:
            raise ValueError(
                f"stage {config.name!r}: {key}={config[key]!r} must be an int >= {least}"
            )
    if not 0 <= config.val_fraction < 1:
        raise ValueError(
            f"stage {config.name!r}: val_fraction={config.val_fraction} must be in [0, 1)"
        )
    for key in ("eval_every", "patience", "unfreeze_every", "min_steps"):
        if config.get(key, 0) < 0:
            raise ValueError(f"stage {config.name!r}: {key}={config[key]} must be >= 0")
    if config.frozen_norm not in FROZEN_NORMS:
        raise ValueError(
            f"stage {config.name!r}: frozen_norm={config.frozen_norm!r} must be one of "
            f"{', '.join(FROZEN_NORMS)}"
        )
