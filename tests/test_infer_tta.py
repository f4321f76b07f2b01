"""jaxseg.infer.tta: flip test-time augmentation against equivariant and position-dependent
models, hand-computed."""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from jaxseg.infer.tta import flip_tta


def batch(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def pointwise(x):
    """Flip-equivariant: sigmoid(3x) per voxel."""
    return jax.nn.sigmoid(3 * x)


def index(x, axis):
    """Each voxel's index along spatial ``axis`` of a [B, *S, C] batch, broadcastable to it."""
    shape = [1] * x.ndim
    shape[axis + 1] = x.shape[axis + 1]
    return np.arange(x.shape[axis + 1], dtype=np.float32).reshape(shape)


@pytest.mark.parametrize("shape", [(2, 5, 7, 1), (2, 3, 4, 5, 1)], ids=["2d", "3d"])
def test_equivariant_model_is_unchanged(shape):
    x = batch(shape)
    np.testing.assert_allclose(flip_tta(pointwise, len(shape) - 2)(x), pointwise(x), rtol=1e-6)


def test_position_dependent_model_is_the_mean_over_flips_2d():
    # predict = x + row + col²: a row flip maps row to H-1-row, a column flip col to W-1-col;
    # each is flipped in half of the 4 subsets, and x is restored by flipping back.
    x = batch((2, 5, 7, 1))
    h, w = 5, 7
    tta = flip_tta(lambda b: b + index(b, 0) + index(b, 1) ** 2, rank=2)
    col = index(x, 1)
    expected = x + (h - 1) / 2 + (col**2 + (w - 1 - col) ** 2) / 2
    np.testing.assert_allclose(tta(x), expected, rtol=1e-6)


def test_flip_only_the_given_axes():
    x = batch((1, 5, 7, 1))
    model = lambda b: b + index(b, 0)  # noqa: E731
    np.testing.assert_allclose(flip_tta(model, 2, axes=(1,))(x), model(x), rtol=1e-6)
    np.testing.assert_allclose(flip_tta(model, 2, axes=(0,))(x), x + 2.0, rtol=1e-6)


def test_rank_3_calls_the_model_for_every_subset_of_flips():
    calls = []

    def model(b):
        calls.append(b)
        return b * 0 + index(b, 0)  # the depth index: only the depth flip changes it

    x = batch((1, 4, 3, 2, 1))
    out = flip_tta(model, rank=3)(x)
    np.testing.assert_allclose(out, np.full_like(x, 1.5), rtol=1e-6)
    assert len(calls) == 8
    for n in range(4):  # every subset of the spatial axes 1..3 of the batch is flipped once
        for axes in itertools.combinations((1, 2, 3), n):
            assert sum(np.array_equal(c, np.flip(x, axes)) for c in calls) == 1, axes


def test_tta_jits_as_one_program():
    x = batch((2, 6, 6, 1))
    np.testing.assert_allclose(jax.jit(flip_tta(pointwise, 2))(x), pointwise(x), rtol=1e-6)


@pytest.mark.parametrize(("rank", "axes"), [(2, (2,)), (2, (0, 0)), (3, (-1,)), (0, None)])
def test_refuses_axes_that_are_not_distinct_spatial_axes(rank, axes):
    with pytest.raises(ValueError, match="flip axes"):
        flip_tta(pointwise, rank, axes)
