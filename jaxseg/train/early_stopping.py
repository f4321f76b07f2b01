"""Early stopping on a validation metric: patience counted in evaluations, a minimum change,
and the direction of the metric. Its state is plain data so it is saved beside checkpoints.

A run whose metric has never improved on its first validation is not stopped: it has not begun
to learn. A segmentation net that predicts nothing scores Dice 0 until it leaves that plateau,
which can take longer than the patience: on BUSI (method 4's scratch arm, 16 masks, 64²) the
validation Dice was 0 at every validation up to step 375 and 0.27 at step 400; patience 8 × 25
steps had ended it at step 225 with a test Dice of 0, a figure that said nothing about scratch.
Unless that first value is perfect (an error of 0, a score in [0, 1] at 1): it cannot improve,
and waiting for a gain trains to the maximum for nothing (method 4's kidney-side pretext reached
a validation AUC of 1 at its first validation, step 25, and then trained on to step 300).
"""

from __future__ import annotations

import dataclasses
import math

from jaxseg.eval import summary

# Metrics where lower is better; every other metric is maximised. Derived names follow their
# base metric ('hd_all', 'hd[benign]', 'hd_inf': lower is better; ``summary.base_name``).
LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "center_error",
        "pixel_error",
        "hd",
        "hd95",
        "boundary_length_diff",
        "empty_fp_rate",
        "mse",
        "nll",
    }
)
# Maximised metrics whose values lie in [0, 1], so 1 is perfect (errors are perfect at 0).
UNIT_SCORES = frozenset(
    {"dice", "iou", "miou", "mask_dice", "auc", "accuracy", "label_accuracy", "ari"}
)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better (its base name is in ``LOWER_IS_BETTER``)."""
    return summary.base_name(metric) in LOWER_IS_BETTER


def perfect(metric: str) -> float | None:
    """The best value ``metric`` can take (0 for an error, 1 for a unit score), None if unknown."""
    if lower_is_better(metric):
        return 0.0
    return 1.0 if summary.base_name(metric) in UNIT_SCORES else None


@dataclasses.dataclass
class EarlyStopping:
    """Tracks the best value; ``patience`` 0 never stops (but the best step is still kept)."""

    monitor: str
    patience: int = 0
    min_delta: float = 0.0
    best: float = math.nan
    best_step: int = -1
    bad_evals: int = 0
    step: int = -1  # the step of the last update
    first_step: int = -1  # the step of the first update (-1: none, or recorded before it)

    @property
    def mode(self) -> str:
        return "min" if lower_is_better(self.monitor) else "max"

    def update(self, step: int, value: float) -> bool:
        """Record the validation ``value`` at ``step``; True when it is a new best."""
        sign = -1.0 if self.mode == "min" else 1.0
        improved = math.isnan(self.best) or sign * (value - self.best) > self.min_delta
        if improved:
            self.best, self.best_step, self.bad_evals = float(value), step, 0
        else:
            self.bad_evals += 1
        if self.step < 0:  # the first update (a record saved before first_step keeps -1)
            self.first_step = step
        self.step = step
        return improved

    @property
    def should_stop(self) -> bool:
        """``patience`` evaluations without a gain, after a gain on the first validation or a
        perfect value (which no gain can follow)."""
        learned = self.best_step != self.first_step or self.best == perfect(self.monitor)
        return self.patience > 0 and self.bad_evals >= self.patience and learned

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
