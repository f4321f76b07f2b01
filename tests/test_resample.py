"""The reshape/matmul resampling layers compute what flax's layers compute, gradients too."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _same_layer import assert_same_layer

from jaxseg.models.resample import UpConv, max_pool


@pytest.mark.parametrize("shape", [(2, 6, 10, 3), (2, 4, 6, 8, 3)])
def test_up_conv_matches_conv_transpose_values_and_gradients(shape):
    rank = len(shape) - 2
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    theirs = nn.ConvTranspose(5, (2,) * rank, strides=(2,) * rank)
    y = assert_same_layer(UpConv(5), theirs, x, 1e-5)
    assert y.shape == (shape[0], *(2 * s for s in shape[1:-1]), 5)


def test_up_conv_computes_in_its_dtype():
    x = jnp.ones((1, 2, 2, 3), jnp.float32)
    params = UpConv(4, dtype=jnp.bfloat16).init(jax.random.key(0), x)
    assert params["params"]["kernel"].dtype == jnp.float32  # parameters stay float32
    assert UpConv(4, dtype=jnp.bfloat16).apply(params, x).dtype == jnp.bfloat16


@pytest.mark.parametrize("shape", [(2, 8, 6, 3), (2, 7, 9, 3), (1, 4, 6, 8, 2)])
def test_max_pool_matches_flax_values_and_gradients(shape):
    rank = len(shape) - 2
    x = jnp.asarray(np.random.default_rng(2).standard_normal(shape), jnp.float32)  # no ties

    def flax_pool(x):
        return nn.max_pool(x, (2,) * rank, strides=(2,) * rank)

    y = max_pool(x)
    assert y.shape == (shape[0], *(s // 2 for s in shape[1:-1]), shape[-1])  # odd rows dropped
    np.testing.assert_array_equal(y, flax_pool(x))
    g = jax.grad(lambda x: jnp.sum(jnp.sin(max_pool(x))))(x)
    np.testing.assert_allclose(g, jax.grad(lambda x: jnp.sum(jnp.sin(flax_pool(x))))(x), atol=1e-7)


def test_max_pool_gradient_after_relu_ties_matches_flax():
    """Windows of ReLU zeros are ties; the ReLU stops their gradient, so the step is the same."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 8, 8, 4)), jnp.float32) - 1.0

    def through(pool):
        return jax.grad(lambda x: jnp.sum(jnp.sin(pool(nn.relu(x)))))(x)

    assert float(jnp.mean(nn.relu(x) == 0)) > 0.7  # most windows hold ties
    np.testing.assert_allclose(
        through(max_pool), through(lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))), atol=1e-7
    )
