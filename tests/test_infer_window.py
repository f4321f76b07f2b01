"""jaxseg.infer.window: tile origins, the Gaussian importance map, sliding-window and whole-image
inference against pointwise and position-dependent models."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.infer.window import gaussian_weights, sliding_window, tile_starts


def pointwise(batch):
    """A position-independent model: [B, *T, 1] -> [B, *T, 2] = (sigmoid(3x), sigmoid(-x))."""
    x = np.asarray(batch)
    return np.concatenate([1 / (1 + np.exp(-3 * x)), 1 / (1 + np.exp(x))], axis=-1)


def local_coordinate(axis):
    """A model whose output is each voxel's index along spatial ``axis`` inside its tile."""

    def predict(batch):
        shape = [1] * batch.ndim
        shape[axis + 1] = batch.shape[axis + 1]
        return np.broadcast_to(np.arange(batch.shape[axis + 1]).reshape(shape), batch.shape)

    return predict


class Counting:
    """Wraps a model and records the shape of every batch it is called on."""

    def __init__(self, predict):
        self.predict, self.shapes = predict, []

    def __call__(self, batch):
        self.shapes.append(batch.shape)
        return self.predict(batch)


def image(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(*shape, 1)).astype(np.float32)


# ---- tile_starts -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 8, 9, 16, 23, 40])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75, 0.95])
def test_tile_starts_cover_every_index_and_end_flush(size, overlap):
    window = 8
    starts = tile_starts(size, window, overlap)
    covered = np.zeros(max(size, window), bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()
    assert starts == sorted(set(starts)) and starts[0] == 0
    assert starts[-1] == max(size - window, 0)


def test_tile_starts_short_axis_is_one_tile():
    assert tile_starts(5, 8, 0.5) == [0]
    assert tile_starts(8, 8, 0.5) == [0]


def test_tile_starts_step_and_disjoint_tiles_without_overlap():
    assert tile_starts(32, 8, 0.0) == [0, 8, 16, 24]  # disjoint, flush
    assert tile_starts(30, 8, 0.0) == [0, 8, 16, 22]  # only the flush last tile overlaps
    assert tile_starts(20, 8, 0.5) == [0, 4, 8, 12]
    assert tile_starts(11, 8, 0.99) == [0, 1, 2, 3]  # step never below 1


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_tile_starts_refuses_overlap_outside_unit_interval(overlap):
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(16, 8, overlap)


# ---- gaussian_weights ------------------------------------------------------------------------


@pytest.mark.parametrize("window", [(8, 8), (7, 10), (4, 6, 5), (64, 64, 64)])
def test_gaussian_weights_peak_one_positive_symmetric(window):
    weights = gaussian_weights(window)
    assert weights.shape == window and weights.dtype == np.float32
    assert weights.max() == pytest.approx(1.0) and weights.min() > 0
    for axis in range(len(window)):
        np.testing.assert_allclose(weights, np.flip(weights, axis), rtol=1e-6)
    centre = tuple(w // 2 for w in window)
    corner = (0,) * len(window)
    assert weights[centre] > weights[corner]


def test_gaussian_weights_follow_sigma_scale():
    narrow, wide = gaussian_weights((16,), 0.125), gaussian_weights((16,), 0.5)
    assert narrow[0] < wide[0]
    x = np.arange(16) - 7.5
    np.testing.assert_allclose(wide, np.exp(-0.5 * (x / 8) ** 2) / np.exp(-0.5 * 0.5**2 / 64))


# ---- sliding_window: equals the model applied to the whole image when it is pointwise --------


@pytest.mark.parametrize("weighting", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize(
    ("shape", "window"),
    [((20, 13), (8, 8)), ((5, 19), (8, 6)), ((9, 5, 11), (4, 8, 4)), ((6, 6, 6), (4, 4, 4))],
    ids=["2d", "2d-short-axis", "3d-short-axis", "3d"],
)
def test_pointwise_model_equals_whole_image(shape, window, overlap, weighting):
    x = image(shape)
    out = sliding_window(pointwise, x, window, overlap, batch_size=4, weighting=weighting)
    assert out.shape == (*shape, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, pointwise(x[None])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weighting", ["gaussian", "constant"])
def test_batch_size_does_not_change_the_result(weighting):
    x = image((21, 14))

    def predict(batch):  # position-dependent, so tiles disagree and the averaging matters
        return pointwise(batch) + local_coordinate(0)(batch)

    outs = [
        sliding_window(predict, x, (8, 8), 0.5, batch_size=b, weighting=weighting)
        for b in (1, 3, 8, 100)
    ]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


# ---- sliding_window: the weighting -----------------------------------------------------------


def test_gaussian_weighting_favours_the_tile_whose_centre_is_near():
    # Width 12, window 8, overlap 0.5: tiles at columns 0 and 4 overlap on columns 4..7.
    # The model outputs the tile-local column: tile A says c, tile B says c - 4.
    x = image((8, 12))
    gauss = sliding_window(local_coordinate(1), x, (8, 8), 0.5)[..., 0]
    const = sliding_window(local_coordinate(1), x, (8, 8), 0.5, weighting="constant")[..., 0]
    cols = np.arange(12)
    np.testing.assert_allclose(
        const[0], np.select([cols < 4, cols < 8], [cols, cols - 2], cols - 4)
    )
    # Column 4 is near A's centre (3.5) and on B's border: the average sits near A's value 4.
    assert gauss[0, 4] > 3.5 and const[0, 4] == 2
    assert gauss[0, 7] < 3.5 and const[0, 7] == 5  # column 7: near B's centre (7.5), B says 3
    w = gaussian_weights((8, 8))[0]  # the map is separable: one row is the column profile
    expected = (w[4:] * cols[4:8] + w[:4] * (cols[4:8] - 4)) / (w[4:] + w[:4])
    np.testing.assert_allclose(gauss[:, 4:8], np.broadcast_to(expected, (8, 4)), rtol=1e-5)
    for single in (slice(0, 4), slice(8, 12)):  # one tile only: its own value
        np.testing.assert_allclose(gauss[:, single], const[:, single], rtol=1e-6)


# ---- sliding_window: padding and batching ----------------------------------------------------


def test_short_axis_is_padded_centred():
    # 5 rows in an 8-row window: 3 rows of zeros, 1 above and 2 below; the output is cropped.
    out = sliding_window(local_coordinate(0), image((5, 8)), (8, 8))
    np.testing.assert_array_equal(out[:, 0, 0], [1, 2, 3, 4, 5])


def test_batches_are_padded_to_batch_size_and_counted():
    # 32 x 32 = 4 windows per axis. Overlap 0.5: 7 x 7 = 49 tiles -> 7 batches of 8.
    counting = Counting(pointwise)
    x = image((32, 32))
    out = sliding_window(counting, x, (8, 8), 0.5, batch_size=8)
    assert counting.shapes == [(8, 8, 8, 1)] * 7
    np.testing.assert_allclose(out, pointwise(x[None])[0], rtol=1e-5, atol=1e-6)
    counting.shapes.clear()
    sliding_window(counting, x, (8, 8), 0.0, batch_size=5)  # 16 tiles -> 4 batches of 5
    assert counting.shapes == [(5, 8, 8, 1)] * 4


def test_padding_tiles_are_discarded():
    # 3 tiles in batches of 2: the padding tile (zeros) must not leak into the average.
    def predict(batch):
        padding = np.all(batch == 0, axis=(1, 2, 3), keepdims=True)
        return np.broadcast_to(np.where(padding, 100.0, 1.0), batch.shape)

    out = sliding_window(predict, image((16, 8)) + 5, (8, 8), 0.5, batch_size=2)
    np.testing.assert_array_equal(out, np.ones((16, 8, 1)))


def test_jitted_model_compiles_once():
    traces = []

    @jax.jit
    def predict(batch):
        traces.append(batch.shape)
        return jax.nn.sigmoid(3 * batch)

    x = image((23, 17))
    out = sliding_window(predict, x, (8, 8), 0.5, batch_size=4)
    assert traces == [(4, 8, 8, 1)]
    np.testing.assert_allclose(out, jax.nn.sigmoid(3 * jnp.asarray(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": (8,)}, "window"),
        ({"window": (8, 8, 8)}, "window"),
        ({"window": (0, 8)}, "window"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.5}, "overlap"),
        ({"batch_size": 0}, "batch_size"),
        ({"weighting": "linear"}, "weighting"),
    ],
)
def test_sliding_window_refuses_bad_arguments(kwargs, message):
    args = {"window": (8, 8), **kwargs}
    with pytest.raises(ValueError, match=message):
        sliding_window(pointwise, image((16, 16)), **args)


@pytest.mark.parametrize("shape", [(16, 1), (2, 2, 2, 2, 1)])
def test_sliding_window_refuses_images_without_two_or_three_spatial_axes(shape):
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        sliding_window(pointwise, np.zeros(shape), (8,) * (len(shape) - 1))


def test_sliding_window_refuses_a_model_with_the_wrong_output_shape():
    with pytest.raises(ValueError, match="predict returned shape"):
        sliding_window(lambda b: b[:, :4], image((16, 16)), (8, 8))


def test_windows_are_enumerated_in_order():
    # The tile origins (from the local coordinates of a model that reports them) form the
    # product of the per-axis starts: every tile is predicted exactly once.
    seen = []

    def predict(batch):
        seen.extend(tuple(int(v) for v in t[0, 0, :2]) for t in batch)
        return np.zeros((*batch.shape[:-1], 1))

    rows, cols = np.meshgrid(np.arange(20), np.arange(12), indexing="ij")
    x = np.stack([rows, cols], axis=-1).astype(np.float32)
    sliding_window(predict, x, (8, 8), 0.5, batch_size=len(tile_starts(20, 8, 0.5)) * 2)
    assert seen == list(itertools.product(tile_starts(20, 8, 0.5), tile_starts(12, 8, 0.5)))
