"""Tests for jaxseg.eval.distances against scipy/sklearn references and hand-made cases."""

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist, directed_hausdorff
from sklearn.metrics import adjusted_rand_score

from jaxseg.eval.distances import (
    adjusted_rand,
    boundary_length,
    boundary_length_difference,
    hausdorff,
    host_metrics,
)


def _blob(rng, shape, sigma=2.0, level=0.6):
    """A random smooth blob mask (thresholded smoothed noise), never empty."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    mask = field > np.quantile(field, level)
    return mask


def _boundary_points(mask, spacing):
    """Coordinates (scaled by spacing) of foreground voxels with a background 4/6-neighbour,
    the image outside counting as background (computed with shifts, not erosion)."""
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    edge = np.zeros_like(mask)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            edge |= ~np.roll(padded, step, axis=axis)[inner]
    return np.argwhere(mask & edge) * np.asarray(spacing, float)


def _reference(pred, gt, spacing):
    """(HD, HD95) from the boundary point sets with scipy."""
    p, g = _boundary_points(pred, spacing), _boundary_points(gt, spacing)
    hd = max(directed_hausdorff(p, g)[0], directed_hausdorff(g, p)[0])
    d = cdist(p, g)
    pooled = np.concatenate([d.min(axis=1), d.min(axis=0)])
    return hd, np.percentile(pooled, 95)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "shape,spacing", [((40, 36), (1, 1)), ((40, 36), (0.7, 1.9)), ((14, 16, 12), (2.5, 1, 0.8))]
)
def test_hausdorff_matches_scipy_on_random_blobs(seed, shape, spacing):
    rng = np.random.default_rng(seed)
    pred, gt = _blob(rng, shape), _blob(rng, shape)
    hd_ref, hd95_ref = _reference(pred, gt, spacing)
    hd = hausdorff(pred, gt, spacing)
    hd95 = hausdorff(pred, gt, spacing, percentile=95)
    np.testing.assert_allclose(hd, hd_ref, rtol=1e-9)
    np.testing.assert_allclose(hd95, hd95_ref, rtol=1e-9)
    assert hd95 <= hd
    assert hausdorff(gt, pred, spacing) == pytest.approx(hd)  # symmetric
    assert hausdorff(pred.astype(np.float32), gt.astype(np.float32), spacing) == hd


def test_hausdorff_spacing_scales_single_points():
    pred, gt = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    pred[1, 2], gt[4, 6] = True, True  # offset (3, 4) voxels
    assert hausdorff(pred, gt) == pytest.approx(5.0)
    assert hausdorff(pred, gt, spacing=(2.0, 0.5)) == pytest.approx(math.hypot(6.0, 2.0))
    assert hausdorff(pred, gt, spacing=3.0) == pytest.approx(15.0)  # scalar = isotropic
    vp, vg = np.zeros((5, 8, 8), bool), np.zeros((5, 8, 8), bool)
    vp[0, 1, 2], vg[2, 4, 6] = True, True
    assert hausdorff(vp, vg, spacing=(3.0, 1.0, 0.5)) == pytest.approx(math.hypot(6, 3, 2))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff(vp, vg, spacing=(1.0, 1.0))


def test_hd95_equals_hd_when_distances_are_uniform():
    # Two full-width one-pixel lines 3 rows apart: every boundary pixel is 3 from the other.
    pred, gt = np.zeros((10, 12), bool), np.zeros((10, 12), bool)
    pred[5], gt[2] = True, True
    assert hausdorff(pred, gt) == hausdorff(pred, gt, percentile=95) == pytest.approx(3.0)
    # One outlier pixel: HD jumps to it, HD95 (pooled percentile) stays near the bulk.
    pred[9, 0] = True
    assert hausdorff(pred, gt) == pytest.approx(7.0)
    assert hausdorff(pred, gt, percentile=95) < 3.5


def test_hausdorff_is_boundary_based():
    # A filled disc vs the same disc: 0; a filled square vs its own outline: 0 (same boundary).
    square = np.zeros((12, 12), bool)
    square[2:10, 2:10] = True
    outline = square & ~ndimage.binary_erosion(square)
    assert hausdorff(square, square) == 0.0
    assert hausdorff(square, outline) == 0.0


def test_hausdorff_empty_conventions():
    empty, blob = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    blob[2:4, 2:4] = True
    for percentile in (100, 95):
        assert hausdorff(empty, empty, percentile=percentile) == 0.0
        assert hausdorff(blob, empty, percentile=percentile) == math.inf
        assert hausdorff(empty, blob, percentile=percentile) == math.inf


def _square(n, size=24, corner=4):
    mask = np.zeros((size, size), bool)
    mask[corner : corner + n, corner : corner + n] = True
    return mask


@pytest.mark.parametrize("n", [1, 5, 10])
def test_boundary_length_of_square(n):
    # Marching squares through pixel-edge midpoints with cut corners: 4(n-1) + 2·sqrt(2).
    expected = 4 * (n - 1) + 2 * math.sqrt(2)
    assert boundary_length(_square(n)) == pytest.approx(expected)
    # Same on the image edge (the mask is zero-padded, so the contour closes).
    assert boundary_length(_square(n, corner=0)) == pytest.approx(expected)
    # Anisotropic (row, col) spacing (2, 1): sides 2(n-1)·(2+1), corners 4·0.5·sqrt(2²+1²).
    aniso = 2 * (n - 1) * 3 + 2 * math.sqrt(5)
    assert boundary_length(_square(n), spacing=(2.0, 1.0)) == pytest.approx(aniso)
    assert boundary_length(np.zeros((5, 5))) == 0.0


def test_boundary_area_of_cube():
    n = 10
    cube = np.zeros((14, 14, 14), bool)
    cube[2:12, 2:12, 2:12] = True
    expected = 6 * (n - 1) ** 2 + 6 * math.sqrt(2) * (n - 1) + math.sqrt(3)
    assert boundary_length(cube) == pytest.approx(expected, rel=1e-6)
    # Spacing (2, 1, 1): faces 81 + 4·162; edges 4·18·sqrt(0.5) + 8·9·sqrt(1.25); corners 8·0.375.
    aniso = 810 + 72 * math.sqrt(0.5) + 72 * math.sqrt(1.25) + 3
    assert boundary_length(cube, spacing=(2, 1, 1)) == pytest.approx(aniso, rel=1e-6)


def test_boundary_length_difference():
    lp, lg = 4 * 9 + 2 * math.sqrt(2), 4 * 19 + 2 * math.sqrt(2)
    diff = boundary_length_difference(_square(10), _square(20))
    assert diff == pytest.approx(100 * abs(lp - lg) / lg)
    assert boundary_length_difference(_square(20), _square(20)) == 0.0
    empty = np.zeros((24, 24), bool)
    assert boundary_length_difference(empty, _square(5)) == pytest.approx(100.0)
    assert boundary_length_difference(empty, empty) == 0.0
    assert boundary_length_difference(_square(5), empty) == math.inf


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("labels", [(2, 2), (3, 5), (7, 4)])
def test_adjusted_rand_matches_sklearn(seed, labels):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, labels[0], (20, 24))
    b = np.where(rng.random((20, 24)) < 0.7, a, rng.integers(0, labels[1], (20, 24)))
    ref = adjusted_rand_score(a.ravel(), b.ravel())
    assert adjusted_rand(a, b) == pytest.approx(ref, abs=1e-12)
    assert adjusted_rand(a, rng.integers(0, labels[1], (20, 24))) < 0.05  # chance level


def test_adjusted_rand_special_cases():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (10, 10))
    assert adjusted_rand(labels, labels) == 1.0
    assert adjusted_rand(labels, (labels + 7) * 3) == pytest.approx(1.0)  # renamed labels
    zeros, ones = np.zeros((6, 6), bool), np.ones((6, 6), bool)
    for a, b in [(zeros, zeros), (zeros, ones), (zeros, labels[:6, :6] > 1), (ones, ones)]:
        ref = adjusted_rand_score(a.ravel(), b.ravel())
        assert adjusted_rand(a, b) == pytest.approx(ref, abs=1e-12)
    singletons = np.arange(16).reshape(4, 4)
    assert adjusted_rand(singletons, singletons[::-1]) == 1.0
    assert adjusted_rand(np.zeros((1, 1)), np.zeros((1, 1))) == 1.0


@pytest.mark.parametrize("shape,spacing", [((3, 20, 18, 2), (1.0, 0.5)), ((2, 8, 10, 9, 1), None)])
def test_host_metrics_shapes_and_values(shape, spacing):
    rng = np.random.default_rng(3)
    pred = np.stack([_blob(rng, shape[1:], sigma=1.5) for _ in range(shape[0])])
    gt = np.stack([_blob(rng, shape[1:], sigma=1.5) for _ in range(shape[0])]).astype(np.float32)
    pred[0], gt[1] = False, 0.0  # empty prediction; empty ground truth
    out = host_metrics(pred, gt, spacing)
    assert set(out) == {"hd", "hd95", "boundary_length_diff", "ari", "diagonal"}
    for name, values in out.items():
        assert values.shape == (shape[0],) and values.dtype == np.float64, name
    p, g = pred.any(-1), gt.any(-1)
    for i in range(shape[0]):
        assert out["hd"][i] == hausdorff(p[i], g[i], spacing)
        assert out["hd95"][i] == pytest.approx(hausdorff(p[i], g[i], spacing, percentile=95))
        assert out["boundary_length_diff"][i] == boundary_length_difference(p[i], g[i], spacing)
        assert out["ari"][i] == pytest.approx(adjusted_rand_score(p[i].ravel(), g[i].ravel()))
    assert out["hd"][0] == out["hd"][1] == math.inf
    assert out["boundary_length_diff"][0] == 100.0 and out["boundary_length_diff"][1] == math.inf
    assert np.isfinite(out["hd"][2:]).all()
    extent = np.array(shape[1:-1]) * (spacing or 1.0)
    np.testing.assert_allclose(out["diagonal"], np.hypot.reduce(extent))


def test_host_metrics_on_volumes_with_per_example_spacing():
    # 2×2×2 cubes one voxel apart along W: every voxel is boundary; the 4 voxels of each cube
    # that the other lacks are one W-step away, the 4 shared ones 0 -> HD = HD95 = W spacing.
    pred = np.zeros((2, 4, 4, 5, 1), bool)
    gt = np.zeros_like(pred)
    pred[:, 1:3, 1:3, 1:3] = True
    gt[:, 1:3, 1:3, 2:4] = True
    spacing = np.array([[1.0, 1.0, 1.0], [3.22, 1.62, 2.5]])
    out = host_metrics(pred, gt, spacing)
    np.testing.assert_allclose(out["hd"], [1.0, 2.5])
    np.testing.assert_allclose(out["hd95"], [1.0, 2.5])
    np.testing.assert_array_equal(out["boundary_length_diff"], [0.0, 0.0])  # equal areas
    # ARI of 8 vs 8 voxels sharing 4 in 80: from the pair counts.
    ref = adjusted_rand_score(pred[0].ravel(), gt[0].ravel())
    np.testing.assert_allclose(out["ari"], [ref, ref])
    np.testing.assert_allclose(out["diagonal"], np.linalg.norm([4, 4, 5] * spacing, axis=1))
    # A bigger gt cube: boundary area difference in %, from the cube formula with unit spacing.
    big = np.zeros_like(pred)
    big[:, 0:3, 0:3, 0:3] = True
    area = [6 * (n - 1) ** 2 + 6 * math.sqrt(2) * (n - 1) + math.sqrt(3) for n in (2, 3)]
    diff = host_metrics(pred, big, [1.0, 1.0, 1.0])["boundary_length_diff"]
    np.testing.assert_allclose(diff, 100 * (area[1] - area[0]) / area[1], rtol=1e-6)
    with pytest.raises(ValueError, match=r"per-example spacing has shape \(2, 2\)"):
        host_metrics(pred, gt, np.ones((2, 2)))
