"""Early stopping on a validation metric: patience counted in evaluations, a minimum change,
and the direction of the metric. Its state is plain data so it is saved beside checkpoints."""

from __future__ import annotations

import dataclasses
import math

# Metrics where lower is better; every other metric is maximised.
LOWER_IS_BETTER = frozenset(
    {"loss", "center_error", "pixel_error", "hd", "hd95", "boundary_length_diff", "mse", "nll"}
)


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

    @property
    def mode(self) -> str:
        return "min" if self.monitor in LOWER_IS_BETTER else "max"

    def update(self, step: int, value: float) -> bool:
        """Record the validation ``value`` at ``step``; True when it is a new best."""
        sign = -1.0 if self.mode == "min" else 1.0
        improved = math.isnan(self.best) or sign * (value - self.best) > self.min_delta
        if improved:
            self.best, self.best_step, self.bad_evals = float(value), step, 0
        else:
            self.bad_evals += 1
        self.step = step
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_evals >= self.patience

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
