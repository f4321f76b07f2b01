"""The training state as a plain dict (what checkpoints hold) and the clu metrics of a step."""

from typing import Any, Self

import flax
import jax
import jax.numpy as jnp
from clu import metrics

TrainState = dict[str, Any]  # {'step', 'params', 'batch_stats', 'opt_state', 'rng'}


@flax.struct.dataclass
class FirstNonFinite(metrics.Metric):
    """The first step whose loss was NaN/inf (-1 while none): merged over a logging interval."""

    step: jax.Array

    @classmethod
    def empty(cls) -> Self:
        return cls(jnp.full((), -1, jnp.int32))

    @classmethod
    def from_model_output(cls, loss: jax.Array, step: jax.Array, **_) -> Self:
        return cls(jnp.where(jnp.all(jnp.isfinite(loss)), -1, step).astype(jnp.int32))

    def merge(self, other: Self) -> Self:
        return type(self)(jnp.where(self.step >= 0, self.step, other.step))

    def compute(self) -> jax.Array:
        return self.step


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
    loss: metrics.Average.from_output("loss")
    nonfinite_step: FirstNonFinite
