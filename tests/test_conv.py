"""``Conv`` computes what ``nn.Conv`` (padding 'SAME') computes, in 2-D and 3-D, gradients too."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _same_layer import assert_same_layer

from jaxseg.models.conv import Conv, conv_same


@pytest.mark.parametrize(
    "shape,kernel,stride",
    [
        ((2, 6, 5, 7, 3), 3, 1),
        ((2, 6, 5, 7, 3), 3, 2),  # odd sizes: the extra padding goes at the end, as in lax
        ((1, 5, 4, 4, 2), 1, 1),
        ((2, 8, 6, 3), 3, 1),
        ((2, 7, 6, 3), 3, 2),
    ],
)
def test_conv_matches_nn_conv_values_and_gradients(shape, kernel, stride):
    rank = len(shape) - 2
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    assert_same_layer(
        Conv(4, kernel, stride), nn.Conv(4, (kernel,) * rank, strides=(stride,) * rank), x, 1e-4
    )


def test_conv_computes_in_its_dtype_with_float32_parameters():
    x = jnp.ones((1, 4, 4, 4, 2), jnp.float32)
    params = Conv(3, dtype=jnp.bfloat16).init(jax.random.key(0), x)
    assert params["params"]["kernel"].dtype == jnp.float32
    assert Conv(3, dtype=jnp.bfloat16).apply(params, x).dtype == jnp.bfloat16


def test_conv_same_refuses_other_ranks():
    with pytest.raises(ValueError, match=r"\[B,D,H,W,C\], got shape \(2, 3, 4\)"):
        conv_same(jnp.ones((2, 3, 4)), jnp.ones((3, 4, 4)), 1)
