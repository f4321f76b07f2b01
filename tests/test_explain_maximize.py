"""Activation maximisation on a tiny U-Net with real parameters.

The parameters are drawn with numpy into the shapes of ``jax.eval_shape(model.init)``:
``model.init`` itself compiles slowly on small CPUs (seconds for this tiny net).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import checkpoint
from jaxseg.explain import capture
from jaxseg.explain.maximize import maximize, total_variation
from jaxseg.models.unet import UNet

SHAPE = (16, 16, 1)
PATH = "encoder/stage_1"  # 8 channels at 8×8
CHANNELS = (0, 3, 5)


@pytest.fixture(scope="module")
def net():
    """(model, variables): He-normal kernels, random positive BatchNorm scales and variances,
    zero biases and means (as at init: no channel is dead at the near-zero starting images)."""
    model = UNet(depth=2, width=4)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, *SHAPE)))
    rng = np.random.default_rng(0)

    def draw(path: str, s: jax.ShapeDtypeStruct) -> np.ndarray:
        if path.endswith("kernel"):
            return rng.normal(0, np.sqrt(2 / np.prod(s.shape[:-1])), s.shape).astype(np.float32)
        if path.endswith(("scale", "var")):
            return rng.uniform(0.5, 2.0, s.shape).astype(np.float32)
        return np.zeros(s.shape, np.float32)

    flat = {p: draw(p, s) for p, s in checkpoint.flatten(shapes).items()}
    return model, checkpoint.unflatten(flat)


def run(net, **kw):
    kw = {"steps": 8, "jitter": 0, "l2": 1e-4, "tv": 1e-4, **kw}
    return maximize(*net, PATH, CHANNELS, SHAPE, **kw)


@pytest.fixture(scope="module")
def result(net):
    return run(net)


def spatial_means(net, images: np.ndarray) -> np.ndarray:
    """[n, c]: the mean over space of every channel at PATH."""
    return np.asarray(capture.layer_output(*net, PATH)(images)).mean(axis=(1, 2))


def test_shapes_and_dtypes(result):
    images, history = result
    assert images.shape == (len(CHANNELS), *SHAPE) and images.dtype == np.float32
    assert history.shape == (8 + 1, len(CHANNELS))


def test_target_activation_increases_every_step(result):
    _, history = result
    assert np.all(np.diff(history, axis=0) > 0), history
    assert np.all(history[-1] > 10 * np.abs(history[0]))


def test_history_is_the_unregularised_target_of_each_image(net, result):
    images, history = result
    means = spatial_means(net, images)
    np.testing.assert_allclose(history[-1], means[np.arange(len(CHANNELS)), CHANNELS], rtol=1e-5)


def test_deterministic_in_seed(net, result):
    again, history = run(net)
    np.testing.assert_array_equal(again, result[0])
    np.testing.assert_array_equal(history, result[1])
    other, _ = run(net, seed=1)
    assert not np.allclose(other, result[0])


def test_jitter_and_regularisers_change_the_result(net, result):
    jittered, history = run(net, jitter=1)
    assert not np.allclose(jittered, result[0])
    assert history[-1].min() > history[0].max()
    means = spatial_means(net, jittered)  # history is measured on the un-rolled images
    np.testing.assert_allclose(history[-1], means[np.arange(len(CHANNELS)), CHANNELS], rtol=1e-5)
    smooth, _ = run(net, tv=1.0, l2=1.0)
    assert np.all(total_variation(smooth) < total_variation(result[0]))
    assert np.all((smooth**2).mean(axis=(1, 2, 3)) < (result[0] ** 2).mean(axis=(1, 2, 3)))


def test_total_variation_by_hand():
    x = np.zeros((1, 2, 3, 1), np.float32)
    x[0, 0, 0, 0] = 6.0  # |dh| = 6 at one of 3 pairs, |dw| = 6 at one of 4 pairs
    np.testing.assert_allclose(total_variation(x), [6 / 3 + 6 / 4])


def test_channel_out_of_range_names_the_count(net):
    with pytest.raises(ValueError, match=r"\[8\].*'encoder/stage_1' has 8 channels"):
        maximize(*net, PATH, [1, 8], SHAPE, steps=1)


def test_unknown_path_lists_modules(net):
    with pytest.raises(ValueError, match=r"match no module.*encoder/stage_0"):
        maximize(*net, "encoder/stage_9", [0], SHAPE, steps=1)


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"steps": 0}, "steps=0"), ({"jitter": -1}, "jitter=-1"), ({"channels": []}, "empty")],
)
def test_bad_arguments(net, kw, message):
    args = {"channels": CHANNELS, **kw}
    with pytest.raises(ValueError, match=message):
        maximize(*net, PATH, args.pop("channels"), SHAPE, **args)
