"""Tests for jaxseg.explain.figures: channel maps, bilinear upsampling and the PNG grids."""

import matplotlib.image
import numpy as np
import pytest

from jaxseg import plotting
from jaxseg.explain import figures

TILE_PX = round(plotting.TILE_IN * plotting.DPI)


def png_shape(path) -> tuple[int, int]:
    """(height, width) in pixels of the PNG at ``path``; asserts it is not blank."""
    pixels = matplotlib.image.imread(path)
    assert pixels[..., :3].std() > 0
    return pixels.shape[:2]


@pytest.fixture
def images() -> np.ndarray:
    """Two normalised 16×16 single-channel images."""
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype(np.float32)
    return (x - x.mean(axis=(1, 2, 3), keepdims=True)) / x.std(axis=(1, 2, 3), keepdims=True)


def acts(seed: int, n: int = 2, size: int = 4, c: int = 3) -> np.ndarray:
    """Random activations [n,size,size,c]."""
    return np.random.default_rng(seed).normal(size=(n, size, size, c)).astype(np.float32)


def test_channel_maps_mean_is_channel_mean():
    a = acts(1)
    maps = figures.channel_maps(a, "mean")
    assert maps.shape == (2, 1, 4, 4)
    np.testing.assert_allclose(maps[:, 0], a.mean(axis=-1), rtol=1e-6)


def test_channel_maps_topk_picks_largest_mean_channels_in_order():
    # Constant per image and channel; image 1 alone would rank channel 4 first, but over both
    # images the means are [5, 1, 3, -2, 4.5] -> channels 0, 4, 2 for every image.
    per_image = np.array([[12.0, 1.0, 3.0, -2.0, 0.0], [-2.0, 1.0, 3.0, -2.0, 9.0]])
    a = np.broadcast_to(per_image[:, None, None], (2, 3, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(figures.top_channels(a, 3), [0, 4, 2])
    maps = figures.channel_maps(a, "topk", k=3)
    assert maps.shape == (2, 3, 3, 3)
    for j, ch in enumerate([0, 4, 2]):
        np.testing.assert_array_equal(maps[:, j], a[..., ch])


def test_channel_maps_topk_caps_k_at_channels():
    assert figures.channel_maps(acts(2, c=3), "topk", k=10).shape == (2, 3, 4, 4)


def test_channel_maps_rejects_unknown_mode():
    with pytest.raises(ValueError, match="max"):
        figures.channel_maps(acts(3), "max")


def test_upsample_keeps_constant_and_shape():
    up = figures.upsample(np.full((2, 3, 4, 5), 0.7, np.float32), (16, 20))
    assert up.shape == (2, 3, 16, 20)
    np.testing.assert_allclose(up, 0.7, rtol=1e-6)


def test_upsample_checkerboard_is_bilinear_with_corners_kept():
    board = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)[None, None]
    up = figures.upsample(board, (4, 4))[0, 0]
    np.testing.assert_allclose(up[[0, 0, -1, -1], [0, -1, 0, -1]], [0, 1, 1, 0], atol=1e-6)
    # Half-pixel bilinear, not nearest replication: the pixel next to a corner is blended.
    np.testing.assert_allclose(up[0, 1], 0.25, atol=1e-6)
    np.testing.assert_allclose(up[1, 1], 0.375, atol=1e-6)


def test_activation_grid_writes_png_of_tiles(images, tmp_path):
    runs = {
        "scratch": {"enc/a": acts(4, size=8), "enc/b": acts(5, size=4, c=5)},
        "pretrained": {"enc/a": acts(6, size=8), "enc/b": acts(7, size=4, c=5)},
    }
    out = tmp_path / "sub" / "mean.png"
    assert figures.activation_grid(images, runs, str(out)) == str(out)
    assert png_shape(out) == (2 * TILE_PX, (1 + 2 * 2) * TILE_PX)
    topk = figures.activation_grid(images, runs, str(tmp_path / "topk.png"), "topk", k=2)
    assert png_shape(topk) == (2 * TILE_PX, (1 + 2 * 2 * 2) * TILE_PX)


def test_activation_grid_rejects_mismatched_layers(images, tmp_path):
    runs = {"scratch": {"enc/a": acts(4), "enc/b": acts(5)}, "tuned": {"enc/a": acts(6)}}
    with pytest.raises(ValueError, match=r"'tuned'.*missing \['enc/b'\]"):
        figures.activation_grid(images, runs, str(tmp_path / "x.png"))


def test_activation_grid_rejects_batch_mismatch(images, tmp_path):
    runs = {"scratch": {"enc/a": acts(4, n=3)}}
    with pytest.raises(ValueError, match="2 images"):
        figures.activation_grid(images, runs, str(tmp_path / "x.png"))


def test_image_grid_size_follows_count_and_columns(tmp_path):
    x = acts(8, n=5, size=16, c=1)
    titles = [f"ch {i}" for i in range(5)]
    wide = figures.image_grid(x, titles, str(tmp_path / "wide.png"), title="enc/a")
    narrow = figures.image_grid(x, titles, str(tmp_path / "narrow.png"), columns=2)
    fewer = figures.image_grid(x[:3], titles[:3], str(tmp_path / "fewer.png"))
    assert png_shape(wide) == (TILE_PX, 5 * TILE_PX)
    assert png_shape(narrow) == (3 * TILE_PX, 2 * TILE_PX)
    assert png_shape(fewer) == (TILE_PX, 3 * TILE_PX)


def test_image_grid_rejects_title_count_mismatch(tmp_path):
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        figures.image_grid(acts(9, n=3, c=1), ["a", "b"], str(tmp_path / "x.png"))
