"""Shared check: a jaxseg layer is a drop-in for the flax layer it replaces."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def assert_same_layer(ours: nn.Module, theirs: nn.Module, x: jax.Array, grad_atol: float):
    """Same parameter shapes and initial kernel from the same key, then (with a non-zero bias)
    the same outputs and the same gradients of a loss in parameters and input; returns ours' y."""
    params = ours.init(jax.random.key(1), x)
    reference = theirs.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, reference)
    np.testing.assert_array_equal(params["params"]["kernel"], reference["params"]["kernel"])
    params = jax.tree.map(lambda p: p + 0.1, params)  # a non-zero bias

    def loss(module):
        return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))

    y, y_ref = ours.apply(params, x), theirs.apply(params, x)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    grads = jax.grad(loss(ours), argnums=(0, 1))(params, x)
    grads_ref = jax.grad(loss(theirs), argnums=(0, 1))(params, x)
    for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=grad_atol)
    return y
