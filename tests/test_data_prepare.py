"""Dataset preparation from the data config: preprocessing pipeline and padding."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest

from jaxseg import data
from jaxseg.data import fundus


@pytest.fixture(scope="module")
def small():
    return fundus.generate(4, image_size=32, seed=1)


def test_padding_shifts_centres_and_boxes_with_the_masks(small):
    padded = data.prepare(small, pad_multiple=48)  # 32 -> 48: 8 rows/cols before, 8 after
    a, b = small.arrays, padded.arrays
    assert b["image"].shape == (4, 48, 48, 1) and b["mask"].shape == (4, 48, 48, 1)
    assert np.array_equal(b["mask"][:, 8:40, 8:40], a["mask"]) and b["mask"][:, :8].sum() == 0
    np.testing.assert_allclose(b["center"], a["center"] + 8)
    np.testing.assert_allclose(b["box"], a["box"] + 8)
    for i in range(4):  # still the centroid of the padded mask
        rows, cols = np.nonzero(b["mask"][i, ..., 0])
        np.testing.assert_allclose(b["center"][i], [cols.mean(), rows.mean()], atol=1e-4)


def test_preprocessing_changes_images_only(small):
    out = data.prepare(small, steps="clahe,gamma:0.8,normalize")
    assert not np.allclose(out.arrays["image"], small.arrays["image"])
    np.testing.assert_allclose(out.arrays["image"].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    for key in ("mask", "center", "box", "label", "group"):
        assert np.array_equal(out.arrays[key], small.arrays[key])


def test_nothing_to_do_returns_the_same_dataset(small):
    assert data.prepare(small) is small


def test_load_applies_the_config_fields():
    config = ml_collections.ConfigDict(
        dict(source="fundus", num_images=2, image_size=32, seed=0, path="", preprocess="gamma:2",
             pad_multiple=0)
    )  # fmt: skip
    loaded = data.load(config)
    assert loaded.arrays["image"].min() >= 0 and loaded.arrays["image"].max() <= 1
    config.preprocess = "sharpen"
    with pytest.raises(ValueError, match="sharpen"):
        data.load(config)


@pytest.mark.parametrize(
    "source, steps, want",
    [
        ("npz", "", "normalize"),
        ("tfds", "ct_window:110:380", "ct_window:110:380,normalize"),
        ("npz", "grayscale,normalize", "grayscale,normalize"),
        ("kidneys", "ct_window:110:380,zscore", "ct_window:110:380,zscore"),
        ("kidneys", "", "normalize"),
        ("fundus", "", "normalize"),
        ("fundus", "gamma:2", "normalize,gamma:2"),
    ],
)
def test_pipeline_standardises_where_it_says_else_last(source, steps, want):
    assert data.pipeline(source, steps) == want


def test_generated_fundus_images_load_as_before():
    """The fundus pipeline starts standardised: the images are bit-identical to the
    generator's standardised ones, with and without further steps."""
    config = ml_collections.ConfigDict(
        dict(source="fundus", num_images=2, image_size=32, seed=0, path="", preprocess="")
    )
    want = fundus.generate(2, image_size=32, seed=0)
    assert np.array_equal(data.load(config).arrays["image"], want.arrays["image"])
    config.preprocess = "gamma:2"
    gamma = data.prepare(want, "gamma:2").arrays["image"]
    assert np.array_equal(data.load(config).arrays["image"], gamma)
