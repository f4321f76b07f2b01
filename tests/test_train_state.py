"""Tests for jaxseg.train.state: TrainMetrics (masked mean loss, first non-finite step across
merges, the empty state, inside jit) and TrainState (a plain dict at runtime)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.train.state import TrainMetrics, TrainState


def summary(m: TrainMetrics) -> dict[str, float]:
    out = jax.device_get(m.compute())
    return {"loss": float(out["loss"]), "nonfinite_step": int(out["nonfinite_step"])}


def test_empty_has_no_loss_and_no_nonfinite_step():
    out = summary(TrainMetrics.empty())
    assert math.isnan(out["loss"]) and out["nonfinite_step"] == -1
    one = TrainMetrics.single_from_model_output(jnp.array([2.0]), jnp.array([True]), 0)
    assert summary(TrainMetrics.empty().merge(one)) == {"loss": 2.0, "nonfinite_step": -1}


def test_loss_is_the_mean_over_unmasked_examples_of_all_merged_steps():
    a = TrainMetrics.single_from_model_output(
        jnp.array([1.0, 3.0, 100.0]), jnp.array([True, True, False]), jnp.int32(0)
    )
    assert summary(a)["loss"] == 2.0  # the masked 100 is left out
    b = TrainMetrics.single_from_model_output(jnp.array([8.0, 7.0]), jnp.array([1, 0]), 1)
    assert summary(a.merge(b))["loss"] == (1 + 3 + 8) / 3  # per example, not mean of means
    per_pixel = TrainMetrics.single_from_model_output(
        jnp.array([[1.0, 3.0], [50.0, 50.0]]), jnp.array([True, False]), 0
    )  # a [B] mask broadcasts over trailing dimensions
    assert summary(per_pixel)["loss"] == 2.0


def test_first_nonfinite_step_survives_later_merges():
    ok = jnp.array([1.0, 1.0])
    every = jnp.array([True, True])
    acc = TrainMetrics.empty()
    for step, loss in enumerate([ok, jnp.array([1.0, jnp.nan]), ok, jnp.array([jnp.inf, 0.0])]):
        acc = acc.merge(TrainMetrics.single_from_model_output(loss, every, jnp.int32(step)))
    assert summary(acc)["nonfinite_step"] == 1
    masked_nan = TrainMetrics.single_from_model_output(
        jnp.array([1.0, jnp.nan]), jnp.array([True, False]), 5
    )  # a NaN in a padded (masked) example still counts: the network produced it
    assert summary(masked_nan) == {"loss": 1.0, "nonfinite_step": 5}


def test_merges_inside_jit_as_a_pytree():
    @jax.jit
    def step(acc: TrainMetrics, loss: jax.Array, step: jax.Array) -> TrainMetrics:
        return acc.merge(TrainMetrics.single_from_model_output(loss, loss > 0, step))

    acc = TrainMetrics.empty()
    for i, loss in enumerate([[1.0, 0.0], [2.0, 3.0], [np.inf, 1.0]]):
        acc = step(acc, jnp.array(loss), jnp.int32(i))
    assert summary(acc) == {"loss": math.inf, "nonfinite_step": 2}
    assert len(jax.tree.leaves(acc)) == 3


def test_train_state_is_a_plain_dict():
    state = TrainState(step=0, params={}, batch_stats={}, opt_state=(), rng=None)
    assert type(state) is dict and set(state) == set(TrainState.__annotations__)
