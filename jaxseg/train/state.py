"""The training state as a plain dict (what checkpoints hold) and the metrics of a step."""

from typing import Any, Self, TypedDict

import flax
import jax
import jax.numpy as jnp


class TrainState(TypedDict):
    """What a checkpoint holds; a plain dict at runtime, so checkpoints stay dict trees."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array


@flax.struct.dataclass
class TrainMetrics:
    """Training metrics merged inside the jitted step over a logging interval: the mean loss over
    the unmasked examples and the first step whose loss was NaN/inf (-1 while none).

    A pytree of scalars, so it is carried through ``jit`` and replicated like the state."""

    loss_total: jax.Array  # float32: sum of the unmasked examples' losses
    loss_count: jax.Array  # int32: number of unmasked examples
    nonfinite_step: jax.Array  # int32: first step with a NaN/inf loss (any example), or -1

    @classmethod
    def empty(cls) -> Self:
        """No examples yet: ``compute()['loss']`` is NaN (0/0), no non-finite step."""
        return cls(
            jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32)
        )

    @classmethod
    def single_from_model_output(cls, loss: jax.Array, mask: jax.Array, step: jax.Array) -> Self:
        """The metrics of one step: per-example ``loss`` [B] (or [B,...]) counted where ``mask``
        [B] is true; the step is non-finite if any example's loss is, masked or not."""
        loss, mask = jnp.atleast_1d(jnp.asarray(loss)), jnp.asarray(mask, bool)
        mask = mask.reshape(mask.shape + (1,) * (loss.ndim - mask.ndim))
        mask = jnp.broadcast_to(mask, loss.shape)
        return cls(
            jnp.where(mask, loss, 0).sum().astype(jnp.float32),
            mask.sum().astype(jnp.int32),
            jnp.where(jnp.all(jnp.isfinite(loss)), -1, step).astype(jnp.int32),
        )

    def merge(self, other: Self) -> Self:
        """Totals add; the earlier (``self``'s) non-finite step wins."""
        return type(self)(
            self.loss_total + other.loss_total,
            self.loss_count + other.loss_count,
            jnp.where(self.nonfinite_step >= 0, self.nonfinite_step, other.nonfinite_step),
        )

    def compute(self) -> dict[str, jax.Array]:
        """{'loss': mean loss of the merged examples, 'nonfinite_step': first bad step or -1}."""
        return {"loss": self.loss_total / self.loss_count, "nonfinite_step": self.nonfinite_step}
