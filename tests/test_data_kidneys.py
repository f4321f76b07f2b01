"""Tests for jaxseg.data.kidneys: the procedural CT-like kidney volumes."""

import time

import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from jaxseg import data
from jaxseg.data import derive, kidneys
from jaxseg.data import preprocess as pp


@pytest.fixture(scope="module")
def ds():
    return kidneys.generate(40, image_size=32, seed=0)


def _sides(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(right kidney, left kidney) masks [D,H,W]: the columns [0, W//2) and [W - W//2, W)."""
    W = mask.shape[-1]
    right, left = np.zeros_like(mask), np.zeros_like(mask)
    right[..., : W // 2], left[..., W - W // 2 :] = mask[..., : W // 2], mask[..., W - W // 2 :]
    return right, left


def test_shapes_dtypes_and_metadata(ds):
    a = ds.arrays
    assert ds.name == "kidneys" and ds.class_names == ("no_lesion", "lesion") and len(ds) == 40
    assert a["image"].shape == a["mask"].shape == (40, 32, 32, 32, 1)
    assert a["center"].shape == (40, 3) and a["box"].shape == (40, 6)
    np.testing.assert_array_equal(a["spacing"], np.tile([3.22, 1.62, 1.62], (40, 1)).astype("f4"))
    assert set(np.unique(a["mask"])) == {0.0, 1.0} and a["has_object"].all()
    np.testing.assert_array_equal(a["group"], np.arange(40))
    assert set(a["label"]) == {0, 1} and 0.25 < a["label"].mean() < 0.75  # roughly balanced
    center, _ = derive.centers_from_masks(a["mask"])
    np.testing.assert_array_equal(a["center"], center)
    np.testing.assert_array_equal(a["box"], derive.boxes_from_masks(a["mask"]))


def test_tuple_size_and_odd_widths():
    a = kidneys.generate(3, image_size=(16, 24, 33), seed=2).arrays
    assert a["image"].shape == (3, 16, 24, 33, 1) and a["mask"].shape == (3, 16, 24, 33, 1)
    assert not a["mask"][..., 16, :].any()  # the middle column belongs to neither side


def test_deterministic_in_seed_and_index():
    a = kidneys.generate(3, 16, seed=7).arrays
    b = kidneys.generate(5, 16, seed=7).arrays
    for key in a:
        np.testing.assert_array_equal(a[key], b[key][:3], err_msg=key)
    c = kidneys.generate(3, 16, seed=8).arrays
    assert not np.array_equal(a["image"], c["image"])


def test_each_kidney_lies_wholly_inside_its_own_half(ds):
    W = 32
    for mask in ds.arrays["mask"][..., 0] > 0.5:
        labels, n = ndimage.label(mask, np.ones((3, 3, 3)))
        assert n == 2
        columns = [np.nonzero(labels == k)[2] for k in (1, 2)]
        right, left = sorted(columns, key=np.min)
        assert right.max() < W // 2 - 1 and left.min() > W - W // 2  # a column of margin


def test_left_kidney_sits_higher_and_is_larger(ds):
    z_right, z_left, v_right, v_left = [], [], [], []
    for mask in ds.arrays["mask"][..., 0] > 0.5:
        right, left = _sides(mask)
        z_right.append(np.nonzero(right)[0].mean())
        z_left.append(np.nonzero(left)[0].mean())
        v_right.append(right.sum())
        v_left.append(left.sum())
    z_right, z_left, v_right, v_left = map(np.array, (z_right, z_left, v_right, v_left))
    assert z_left.mean() < z_right.mean() - 1  # z = 0 is the most cranial slice
    assert v_left.mean() > 1.15 * v_right.mean()
    assert (z_left < z_right).mean() >= 0.8  # on average, with per-volume jitter
    assert (v_left > v_right).mean() >= 0.8


def test_intensities_are_hounsfield_like(ds):
    image, mask = ds.arrays["image"][..., 0], ds.arrays["mask"][..., 0] > 0.5
    assert np.median(image[:, 0, 0, :4]) < -900  # air in the corners
    assert (image.max(axis=(1, 2, 3)) > 500).all()  # bone in every volume
    assert 120 < np.median(image[mask]) < 200  # enhancing renal parenchyma


def test_the_ct_window_brings_out_the_kidneys(ds):
    image, mask = ds.arrays["image"], ds.arrays["mask"][..., 0] > 0.5
    outside = (image < -80) | (image > 300)
    assert (outside.mean(axis=(1, 2, 3, 4)) > 0.3).all()  # air and bone saturate

    def contrast(x):
        """|kidney mean - surrounding mean| / the volume's sd, per volume."""
        out = []
        for v, m in zip(x[..., 0], mask, strict=True):
            ring = ndimage.binary_dilation(m, iterations=3) & ~m
            out.append(abs(v[m].mean() - v[ring].mean()) / v.std())
        return np.array(out)

    raw = contrast(derive.normalize_images(image))
    windowed = contrast(derive.normalize_images(pp.ct_window(image, 110, 380)))
    assert (windowed > 3 * raw).all(), (raw.mean(), windowed.mean())


def test_lesion_label_marks_a_hypodense_spot_inside_a_kidney(ds):
    image, mask = ds.arrays["image"][..., 0], ds.arrays["mask"][..., 0] > 0.5
    dark = np.array(
        [((v < 70) & ndimage.binary_erosion(m)).sum() for v, m in zip(image, mask, strict=True)]
    )
    label = ds.arrays["label"]
    assert dark[label == 1].mean() > 5 * max(dark[label == 0].mean(), 0.5)


def test_fast():
    start = time.perf_counter()
    kidneys.generate(40, 32, seed=1)
    assert time.perf_counter() - start < 2.0  # ~0.2 s on an idle core


def test_load_from_config_with_the_ct_window():
    assert data.SOURCES["kidneys"] is kidneys.generate
    cfg = ml_collections.ConfigDict(
        dict(source="kidneys", num_images=2, image_size=16, seed=3, path="",
             preprocess="ct_window:110:380,normalize", pad_multiple=0)
    )  # fmt: skip
    got = data.load(cfg)
    raw = kidneys.generate(2, 16, seed=3)
    want = derive.normalize_images(pp.ct_window(raw.arrays["image"], 110, 380))
    np.testing.assert_allclose(got.arrays["image"], want, atol=1e-6)
    np.testing.assert_array_equal(got.arrays["mask"], raw.arrays["mask"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_images=0), "num_images"),
        (dict(image_size=8), "image_size"),
        (dict(image_size=(16, 16)), "image_size"),
        (dict(image_size=(16, 16, 15)), "image_size"),
        (dict(image_size=True), "image_size"),
        (dict(image_size=16.0), "image_size"),
        (dict(seed=-1), "seed"),
    ],
)
def test_errors(kwargs, match):
    args = dict(num_images=1, image_size=16, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        kidneys.generate(**args)
