"""Tests for jaxseg.plotting: Agg figures of the requested pixel size written as PNG, the grey
display of images and the annotated heat map."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from jaxseg import plotting


def test_new_figure_and_save_png_write_the_requested_pixels(tmp_path):
    fig = plotting.new_figure(2.0, 1.0)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    plotting.blank(ax)
    assert not ax.get_xticks().size and not any(s.get_visible() for s in ax.spines.values())
    path = plotting.save_png(fig, str(tmp_path / "new" / "dir" / "f.png"))
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (plotting.DPI, 2 * plotting.DPI)
    assert img[..., :3].std() > 0


def test_grey_is_the_channel_mean_scaled_per_image():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 5, 4, 3)).astype(np.float32)
    images[2] = 7.0  # constant image
    g = plotting.grey(images)
    assert g.shape == (3, 5, 4)
    mean = images[0].mean(-1)
    np.testing.assert_allclose(g[0], (mean - mean.min()) / np.ptp(mean), atol=1e-6)
    assert g[1].min() == 0 and g[1].max() == pytest.approx(1)
    np.testing.assert_array_equal(g[2], 0)


def test_heatmap(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 6))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    d[0, 3] = np.nan
    labels = ["localize", "segment", "scratch", "other"]
    img = matplotlib.image.imread(plotting.heatmap(d, labels, str(tmp_path / "h.png"), "w"))
    assert img.shape[0] >= 350 and img.shape[1] >= 450
    assert img[..., :3].std() > 0.02
    with pytest.raises(ValueError, match="3 labels"):
        plotting.heatmap(d, labels[:3], str(tmp_path / "b.png"), "t")
    with pytest.raises(ValueError, match="square"):
        plotting.heatmap(d[:3], labels, str(tmp_path / "b.png"), "t")
    assert not (tmp_path / "b.png").exists()
