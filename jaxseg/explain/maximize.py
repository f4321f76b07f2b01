"""Activation maximisation: synthesise the inputs that maximise chosen channels of one layer.

Gradient ascent on a batch of images, one per channel, all optimised together in one jitted
``lax.scan``. The model runs in inference mode (``train=False``: BatchNorm uses its running
averages), so the images of the batch do not interact.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg.explain import capture

NOISE = 0.01  # standard deviation of the starting images


def total_variation(x: jax.Array) -> jax.Array:
    """[n,H,W,C] -> [n]: mean |x[h+1,w] - x[h,w]| + mean |x[h,w+1] - x[h,w]| per image."""
    dh = jnp.abs(jnp.diff(x, axis=1)).mean(axis=(1, 2, 3))
    dw = jnp.abs(jnp.diff(x, axis=2)).mean(axis=(1, 2, 3))
    return dh + dw


@functools.partial(
    jax.jit, static_argnames=("model", "path", "channels", "shape", "steps", "jitter")
)
def _ascend(
    variables: dict,
    key: jax.Array,
    lr: float,
    l2: float,
    tv: float,
    *,
    model: nn.Module,
    path: str,
    channels: tuple[int, ...],
    shape: tuple[int, int, int],
    steps: int,
    jitter: int,
) -> tuple[jax.Array, jax.Array]:
    """(images [n,H,W,C], history [steps+1, n]) of ``maximize``; compiled once per setting."""
    layer = capture.layer_output(model, variables, path)
    n = len(channels)
    pick = (jnp.arange(n), jnp.asarray(channels))

    def target(x: jax.Array) -> jax.Array:  # [n]: image i's spatial mean of channels[i]
        out = layer(x)
        return out.reshape(n, -1, out.shape[-1]).mean(axis=1)[pick]

    def loss(x: jax.Array, offset: jax.Array) -> jax.Array:
        gain = target(jnp.roll(x, offset, axis=(1, 2)))
        penalty = l2 * jnp.mean(x**2, axis=(1, 2, 3)) + tv * total_variation(x)
        return jnp.sum(penalty - gain)  # a sum: each image gets its own objective's gradient

    opt = optax.adam(lr)

    def step(carry: tuple, k: jax.Array) -> tuple[tuple, jax.Array]:
        x, state = carry
        offset = jax.random.randint(k, (2,), -jitter, jitter + 1)
        grads = jax.grad(loss)(x, offset)  # taken through the roll, so it comes back un-rolled
        updates, state = opt.update(grads, state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), target(x)

    init_key, key = jax.random.split(key)
    x0 = NOISE * jax.random.normal(init_key, (n, *shape), jnp.float32)
    (x, _), history = jax.lax.scan(step, (x0, opt.init(x0)), jax.random.split(key, steps))
    return x, jnp.concatenate([target(x0)[None], history])


def maximize(
    model: nn.Module,
    variables: dict,
    path: str,
    channels: Sequence[int],
    shape: tuple[int, int, int],
    steps: int = 64,
    lr: float = 0.05,
    l2: float = 1e-3,
    tv: float = 1e-2,
    jitter: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The images [n,H,W,C] (n = len(channels)) that maximise channel ``channels[i]`` of the
    layer at module ``path`` (image i), and the history [steps+1, n] of those activations.

    Starting from N(0, 0.01²) noise drawn from ``PRNGKey(seed)``, each of ``steps`` Adam(``lr``)
    steps ascends, per image i, the spatial mean of channel ``channels[i]`` at ``path`` minus
    ``l2``·mean(x²) minus ``tv``·``total_variation(x)``. Before each step the batch is rolled by
    a random offset in [-jitter, jitter] along H and W (0 disables) and the gradient is rolled
    back. ``history[0]`` is the unregularised target activation of the starting images and
    ``history[k]`` that after step k, both on the un-rolled images. Deterministic in ``seed``.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    if jitter < 0:
        raise ValueError(f"jitter={jitter} must be at least 0")
    channels = tuple(int(c) for c in channels)
    if not channels:
        raise ValueError("channels is empty: name at least one channel to maximise")
    probe = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    count = jax.eval_shape(capture.layer_output(model, variables, path), probe).shape[-1]
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise ValueError(f"channels {bad} out of range: layer {path!r} has {count} channels")
    x, history = _ascend(
        variables,
        jax.random.PRNGKey(seed),
        lr,
        l2,
        tv,
        model=model,
        path=path,
        channels=channels,
        shape=tuple(shape),
        steps=steps,
        jitter=jitter,
    )
    return np.asarray(x, np.float32), np.asarray(history, np.float32)
