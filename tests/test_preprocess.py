"""Tests for jaxseg.data.preprocess: host-side intensity transforms, padding, pipelines."""

import numpy as np
import pytest
from scipy import ndimage

from jaxseg.data import derive
from jaxseg.data import preprocess as pp


def _low_contrast(n: int = 2, size: int = 32) -> np.ndarray:
    """[n,size,size,1] in [0.5, 0.56]: a slow ramp plus a faint checkerboard and noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    base = 0.5 + 0.05 * xx / (size - 1) + 0.01 * ((xx // 4 + yy // 4) % 2)
    x = base + 0.005 * rng.standard_normal((n, size, size))
    return x.astype(np.float32)[..., None]


def _local_contrast(images: np.ndarray) -> float:
    """Mean absolute deviation from the 3x3 local mean."""
    x = images[..., 0]
    return float(np.abs(x - ndimage.uniform_filter(x, (1, 3, 3), mode="reflect")).mean())


def test_grayscale_weights_and_identity():
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[0, ..., 1] = 100
    rgb[1] = 50
    g = pp.grayscale(rgb)
    assert g.shape == (2, 4, 4, 1) and g.dtype == np.float32
    np.testing.assert_allclose(g[0], 71.54, rtol=1e-5)
    np.testing.assert_allclose(g[1], 50.0, rtol=1e-5)  # weights sum to 1
    one = np.random.default_rng(0).random((2, 4, 4, 1)).astype(np.float32)
    np.testing.assert_array_equal(pp.grayscale(one), one)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        pp.grayscale(np.zeros((1, 4, 4, 2)))


def test_normalize_is_the_derive_implementation():
    assert pp.normalize is derive.normalize_images
    assert pp.PREPROCESSORS["normalize"] is derive.normalize_images


def test_clahe_range_and_local_contrast():
    x = _low_contrast()
    out = pp.clahe(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1 and out.max() - out.min() > 0.9
    # More local contrast than a plain global stretch of the same image.
    assert _local_contrast(out) > 2 * _local_contrast(pp.minmax(x))
    # Arguments reach skimage: a higher clip limit gives more contrast (8-pixel tiles).
    weak, strong = pp.clahe(x, 0.01, kernel_size=8), pp.clahe(x, 0.05, kernel_size=8)
    assert _local_contrast(strong) > 1.1 * _local_contrast(weak)


def test_gamma_monotone_and_identity():
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(pp.gamma(x, 1.0), x)
    for g in (0.5, 0.8, 2.0):
        y = pp.gamma(x, g)
        order = np.argsort(x.ravel())
        assert (np.diff(y.ravel()[order]) >= 0).all()  # monotone
        np.testing.assert_allclose(y, x**g, rtol=1e-6)
    assert (pp.gamma(x, 0.5) >= x).all() and (pp.gamma(x, 2.0) <= x).all()
    wide = x * 100 - 20  # outside [0,1]: min-max scaled per image first
    np.testing.assert_allclose(pp.gamma(wide, 1.0), pp.minmax(wide), atol=1e-6)
    with pytest.raises(ValueError):
        pp.gamma(x, 0.0)


def test_ct_window_hand_values():
    hu = np.array([-1000.0, -160.0, 40.0, 140.0, 240.0, 3000.0])
    np.testing.assert_allclose(pp.ct_window(hu, 40, 400), [0, 0, 0.5, 0.75, 1, 1], atol=1e-7)
    np.testing.assert_allclose(pp.ct_window(hu, 0, 100), [0, 0, 0.9, 1, 1, 1], atol=1e-7)
    with pytest.raises(ValueError):
        pp.ct_window(hu, 0, 0)


def test_zscore_dataset_level():
    x = np.random.default_rng(2).normal(5, 3, (4, 8, 8, 1))
    z = pp.zscore(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(), 1, atol=1e-5)
    assert abs(z[0].mean()) > 1e-3 or abs(z[1].mean()) > 1e-3  # not per image
    np.testing.assert_allclose(pp.zscore(x, mean=5, std=2), (x - 5) / 2, rtol=1e-5)
    np.testing.assert_array_equal(pp.zscore(np.full((1, 2, 2, 1), 3.0)), 0)


@pytest.mark.parametrize(
    ("h", "w", "m", "shape", "pads"),
    [
        (32, 32, 16, (32, 32), (0, 0, 0, 0)),
        (30, 17, 16, (32, 32), (1, 1, 7, 8)),
        (33, 8, 8, (40, 8), (3, 4, 0, 0)),
        (5, 7, 1, (5, 7), (0, 0, 0, 0)),
    ],
)
def test_pad_to_multiple_shapes_and_round_trip(h, w, m, shape, pads):
    x = np.random.default_rng(3).random((2, h, w, 3)).astype(np.float32) + 1
    padded, got = pp.pad_to_multiple(x, m)
    assert padded.shape == (2, *shape, 3) and got == pads and padded.dtype == x.dtype
    top, _, left, _ = pads
    assert padded.sum() == pytest.approx(x.sum(), rel=1e-6)  # zero fill
    np.testing.assert_array_equal(padded[:, top : top + h, left : left + w], x)
    np.testing.assert_array_equal(pp.unpad(padded, got), x)
    filled, _ = pp.pad_to_multiple(x, m, value=-1)
    assert (filled == -1).sum() == 2 * 3 * (shape[0] * shape[1] - h * w)
    with pytest.raises(ValueError):
        pp.pad_to_multiple(x, 0)


def test_pipeline_parsing_and_apply():
    assert pp.parse("grayscale, clahe ,gamma:0.8,normalize") == [
        ("grayscale", ()),
        ("clahe", ()),
        ("gamma", (0.8,)),
        ("normalize", ()),
    ]
    assert pp.parse("ct_window:40:400,clahe:0.02:8") == [
        ("ct_window", (40, 400)),
        ("clahe", (0.02, 8)),
    ]
    assert pp.parse("") == [] and pp.parse("  ") == []
    rgb = np.random.default_rng(4).random((2, 32, 32, 3)).astype(np.float32)
    out = pp.apply(rgb, "grayscale,clahe,gamma:0.8,normalize")
    by_hand = pp.normalize(pp.gamma(pp.clahe(pp.grayscale(rgb)), 0.8))
    assert out.shape == (2, 32, 32, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out, by_hand)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-5)
    np.testing.assert_array_equal(pp.apply(rgb, ""), rgb)


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ("grayscale,sharpen", r"unknown preprocessing step 'sharpen'.*known steps: \[.*clahe"),
        ("grayscale,,normalize", "unknown preprocessing step ''"),
        ("gamma", "usage gamma:g"),
        ("gamma:abc", "usage gamma:g"),
        ("gamma:0.8:2", "usage gamma:g"),
        ("normalize:1", "usage normalize"),
        ("ct_window:40", "usage ct_window:center:width"),
    ],
)
def test_pipeline_errors(steps, match):
    with pytest.raises(ValueError, match=match):
        pp.parse(steps)
    with pytest.raises(ValueError, match=match):
        pp.apply(np.zeros((1, 4, 4, 1)), steps)
