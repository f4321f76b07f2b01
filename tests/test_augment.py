"""Tests for jaxseg.data.augment: affine sampling, warps, geometry of centres/boxes, blur."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from jaxseg.data import augment as aug
from jaxseg.data import derive

S = 32  # image side
FULL = aug.AugmentConfig(shift=0.1, rotate=30, flip=True, vflip=True, shear=10, zoom=0.2, p=1.0)


@functools.partial(jax.jit, static_argnames="cfg")
def _jit_augment(key, batch, cfg):
    return aug.augment(key, batch, cfg)


def _discs(n: int, seed: int = 0, radius: float = 6.0) -> dict[str, np.ndarray]:
    """A contract batch of n discs (radius >= 5) well inside S x S, random centres and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:S, :S]
    cx, cy = rng.uniform(12, 19, n), rng.uniform(12, 19, n)
    fg = (xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2 <= radius**2
    mask = fg.astype(np.float32)[..., None]
    center, has_object = derive.centers_from_masks(mask)
    return {
        "image": rng.standard_normal((n, S, S, 2)).astype(np.float32),
        "mask": mask,
        "center": center,
        "box": derive.boxes_from_masks(mask),
        "has_object": has_object,
        "weight": np.ones(n, np.float32),
        "label": np.arange(n, dtype=np.int32),
    }


def _pattern() -> np.ndarray:
    """[1,S,S,2] image with no symmetry (distinct values everywhere)."""
    return np.arange(S * S * 2, dtype=np.float32).reshape(1, S, S, 2) ** 1.5 / 100


@pytest.mark.parametrize("jit", [False, True])
def test_identity_config_is_bit_identical(jit):
    batch = _discs(4)
    batch["image"][0, 0, 0, 0] = -0.0  # bit-level: -0.0 must survive
    batch["extra"] = np.full((4, 3), 7, np.int32)  # unknown key: passes through
    configs = [aug.AugmentConfig(), aug.AugmentConfig(p=0.0, rotate=45, flip=True), None]
    for cfg in configs:
        out = (
            _jit_augment(jax.random.key(0), batch, cfg)
            if jit
            else aug.augment(jax.random.key(0), batch, cfg)
        )
        assert set(out) == set(batch)
        for k, v in batch.items():
            got = np.asarray(out[k])
            assert got.dtype == v.dtype and got.shape == v.shape, k
            assert got.tobytes() == v.tobytes(), (cfg, k)


def test_identity_matrix_warps_bit_exact_even_with_blur_off():
    x = _discs(3)["image"]
    x[0, 0, 0, 0] = -0.0  # -0.0 + 0.0 would give +0.0: the identity must not interpolate at all
    x[1, 5, 5, 1] = np.nan
    x = jnp.asarray(x)
    eye = jnp.broadcast_to(jnp.eye(3), (3, 3, 3))
    for order in (0, 1):
        assert np.asarray(aug.warp(x, eye, order)).tobytes() == np.asarray(x).tobytes()
    assert np.asarray(aug.gaussian_blur(x, jnp.zeros(3))).tobytes() == np.asarray(x).tobytes()
    np.testing.assert_array_equal(aug.compose_affine(S), np.eye(3))


def test_rot90_matches_numpy_direction():
    img = _pattern()
    expected = np.rot90(img, k=1, axes=(1, 2))  # counter-clockwise as displayed
    A = jnp.asarray([[[0, -1, S - 1], [1, 0, 0], [0, 0, 1]]], jnp.float32)
    for order in (0, 1):
        np.testing.assert_array_equal(aug.warp(jnp.asarray(img), A, order), expected)
    # The same rotation from parameters: counter-clockwise is a negative angle (y points down).
    A2 = aug.compose_affine(S, rotate=-90.0)[None]
    np.testing.assert_allclose(A2, A, atol=1e-5)
    np.testing.assert_array_equal(aug.warp(jnp.asarray(img), A2, 0), expected)
    np.testing.assert_allclose(aug.warp(jnp.asarray(img), A2, 1), expected, rtol=1e-4, atol=1e-3)
    clockwise = aug.warp(jnp.asarray(img), aug.compose_affine(S, rotate=90.0)[None])
    np.testing.assert_allclose(clockwise, np.rot90(img, k=-1, axes=(1, 2)), rtol=1e-4, atol=1e-3)
    # Geometry follows: a point and a mask box.
    mask = np.zeros((1, S, S, 1), np.float32)
    mask[0, 3:7, 20:29] = 1  # rows 3-6, cols 20-28
    rotated = np.rot90(mask, axes=(1, 2))
    center, _ = derive.centers_from_masks(mask)
    np.testing.assert_allclose(
        aug.transform_points(center, A), derive.centers_from_masks(rotated)[0], atol=1e-5
    )
    box = derive.boxes_from_masks(mask)
    for a in (A, A2):
        np.testing.assert_array_equal(
            aug.transform_boxes(box, a, S), derive.boxes_from_masks(rotated)
        )


def test_integer_shift_matches_numpy_with_zero_fill():
    img = _pattern()
    A = aug.compose_affine(S, tx=3.0, ty=-2.0)[None]  # content moves right 3, up 2
    expected = np.zeros_like(img)
    expected[:, : S - 2, 3:] = img[:, 2:, : S - 3]
    for order in (0, 1):
        np.testing.assert_array_equal(aug.warp(jnp.asarray(img), A, order), expected)
    np.testing.assert_array_equal(aug.transform_points(np.array([[5.0, 7.0]]), A), [[8.0, 5.0]])


def test_flip_maps_x_to_w_minus_1_minus_x():
    batch = _discs(2)
    A = jnp.broadcast_to(aug.compose_affine(S, flip=True), (2, 3, 3))
    np.testing.assert_array_equal(aug.warp(batch["image"], A, 1), batch["image"][:, :, ::-1])
    np.testing.assert_array_equal(aug.warp(batch["mask"], A, 0), batch["mask"][:, :, ::-1])
    c = np.asarray(aug.transform_points(batch["center"], A))
    np.testing.assert_allclose(c[:, 0], S - 1 - batch["center"][:, 0], atol=1e-5)
    np.testing.assert_allclose(c[:, 1], batch["center"][:, 1], atol=1e-5)
    b = np.asarray(aug.transform_boxes(batch["box"], A, S))
    np.testing.assert_array_equal(b, derive.boxes_from_masks(batch["mask"][:, :, ::-1]))
    V = jnp.broadcast_to(aug.compose_affine(S, vflip=True), (2, 3, 3))
    np.testing.assert_array_equal(aug.warp(batch["image"], V, 1), batch["image"][:, ::-1])
    # Sampled flips: every example is either untouched or mirrored, and both happen.
    out = aug.augment(jax.random.key(1), _discs(16), aug.AugmentConfig(flip=True))
    src = _discs(16)
    same = [np.array_equal(out["image"][i], src["image"][i]) for i in range(16)]
    mirrored = [np.array_equal(out["image"][i], src["image"][i][:, ::-1]) for i in range(16)]
    assert all(s != m for s, m in zip(same, mirrored, strict=True))
    assert any(same) and any(mirrored)


@pytest.mark.parametrize("seed", [0, 1])
def test_center_tracks_warped_mask_centroid(seed):
    batch = _discs(24, seed)
    out = _jit_augment(jax.random.key(seed), batch, FULL)
    mask = np.asarray(out["mask"])
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert (mask.sum(axis=(1, 2, 3)) >= 40).all()  # discs stayed in view
    centroid, has = derive.centers_from_masks(mask)
    assert has.all()
    moved = np.asarray(out["center"])
    assert np.abs(moved - batch["center"]).max() > 2  # something actually moved
    np.testing.assert_allclose(moved, centroid, atol=0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_boxes_contain_warped_mask_extents(seed):
    batch = _discs(24, seed)
    out = _jit_augment(jax.random.key(seed + 10), batch, FULL)
    tight = derive.boxes_from_masks(np.asarray(out["mask"]))
    box = np.asarray(out["box"])
    assert (box[:, :2] <= tight[:, :2]).all() and (box[:, 2:] >= tight[:, 2:]).all()
    assert (box >= 0).all() and (box <= S - 1).all()
    np.testing.assert_array_equal(box, np.round(box))
    # Only looser than the bounding box of the rotated disc box (<= sqrt(2) growth + 1 px).
    span, tight_span = box[:, 2:] - box[:, :2], tight[:, 2:] - tight[:, :2]
    assert (span <= np.sqrt(2) * 1.25 * tight_span + 2).all()


def test_empty_masks_keep_zero_geometry_and_passthrough_keys():
    batch = _discs(3)
    batch["mask"][1] = 0
    batch["center"][1] = 0
    batch["box"][1] = 0
    batch["has_object"][1] = False
    out = aug.augment(jax.random.key(0), batch, FULL)
    np.testing.assert_array_equal(out["center"][1], [0, 0])
    np.testing.assert_array_equal(out["box"][1], [0, 0, 0, 0])
    for k in ("has_object", "weight", "label"):
        np.testing.assert_array_equal(out[k], batch[k])


def test_blur_sigma_zero_identity_and_variance_drops():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, S, S, 1)), jnp.float32)
    blurred = np.asarray(aug.gaussian_blur(x, jnp.array([0.0, 0.5, 1.0, 2.0]), max_sigma=2.0))
    np.testing.assert_array_equal(blurred[0], x[0])
    var = blurred.var(axis=(1, 2, 3))
    assert var[0] > var[1] > var[2] > var[3] and var[3] < 0.2 * var[0]
    np.testing.assert_allclose(blurred.mean(), np.asarray(x).mean(), atol=0.05)
    const = jnp.full((1, S, S, 1), 3.0)  # normalised kernel with edge padding keeps constants
    np.testing.assert_allclose(aug.gaussian_blur(const, jnp.array([1.5])), const, rtol=1e-6)
    # Matches scipy's Gaussian with edge-replicated borders, each example with its own sigma.
    for i, sigma in enumerate([0.5, 1.0, 2.0]):
        ref = ndimage.gaussian_filter(
            np.asarray(x[i + 1]), (sigma, sigma, 0), mode="nearest", radius=(6, 6, 0)
        )
        np.testing.assert_allclose(blurred[i + 1], ref, atol=1e-5)
    with pytest.raises(ValueError, match="max_sigma"):
        jax.jit(aug.gaussian_blur)(x, jnp.ones(4))


def test_augment_blur_only_touches_image():
    batch = _discs(4)
    out = _jit_augment(jax.random.key(3), batch, aug.AugmentConfig(blur=2.0))
    assert np.asarray(out["image"]).var() < batch["image"].var()
    for k in ("mask", "center", "box"):
        np.testing.assert_array_equal(out[k], batch[k])


def test_determinism_keys_and_per_example_independence():
    cfg = aug.AugmentConfig(shift=0.1, rotate=20, zoom=0.1, blur=1.0)
    batch = _discs(1)
    batch = {k: np.repeat(v, 8, axis=0) for k, v in batch.items()}  # 8 identical examples
    a = _jit_augment(jax.random.key(5), batch, cfg)
    b = _jit_augment(jax.random.key(5), batch, cfg)
    c = _jit_augment(jax.random.key(6), batch, cfg)
    for k in batch:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.allclose(a["image"], c["image"])
    assert not np.allclose(a["center"], c["center"])
    centers = np.asarray(a["center"])
    assert len({tuple(np.round(p, 3)) for p in centers}) == 8  # every example moved differently
    A = np.asarray(aug.sample_affine(jax.random.key(5), cfg, 8, S))
    assert A.shape == (8, 3, 3) and len({a.tobytes() for a in A}) == 8


def test_probability_gate():
    A = np.asarray(aug.sample_affine(jax.random.key(0), aug.AugmentConfig(rotate=10, p=0.5), 64, S))
    eye = np.array([np.array_equal(a, np.eye(3)) for a in A])
    assert 10 < eye.sum() < 54
    A = aug.sample_affine(jax.random.key(0), aug.AugmentConfig(rotate=10, p=1.0), 64, (S, 2 * S))
    assert not np.asarray(aug.is_identity(A)).any()


def test_shift_is_a_fraction_of_each_side():
    H, W = S, 2 * S
    A = np.asarray(aug.sample_affine(jax.random.key(2), aug.AugmentConfig(shift=0.1), 256, (H, W)))
    np.testing.assert_array_equal(A[:, :2, :2], np.broadcast_to(np.eye(2), (256, 2, 2)))
    tx, ty = -A[:, 0, 2], -A[:, 1, 2]  # pure shift: the inverse map subtracts it
    assert np.abs(tx).max() <= 0.1 * W + 1e-4 and np.abs(tx).max() > 0.09 * W
    assert np.abs(ty).max() <= 0.1 * H + 1e-4 and np.abs(ty).max() > 0.09 * H


def test_non_square_flip_and_center():
    A = aug.compose_affine((S, 2 * S), flip=True, vflip=True)[None]
    moved = aug.transform_points(np.array([[3.0, 4.0]]), A)
    np.testing.assert_allclose(moved, [[2 * S - 1 - 3, S - 1 - 4]], atol=1e-5)


def test_config_parsing_and_validation():
    cd = ml_collections.ConfigDict({"rotate": 15.0, "flip": True})
    assert aug.AugmentConfig.from_config(cd) == aug.AugmentConfig(rotate=15.0, flip=True)
    assert aug.AugmentConfig.from_config({"zoom": 0.1}).zoom == 0.1
    assert not aug.AugmentConfig().affine and not aug.AugmentConfig(rotate=5, p=0).affine
    with pytest.raises(ValueError, match="unknown augment fields"):
        aug.AugmentConfig.from_config({"rotation": 10})
    for bad in ({"zoom": 1.0}, {"p": 1.5}, {"rotate": -1}, {"flip": 1}, {"shear": 90}):
        with pytest.raises(ValueError):
            aug.AugmentConfig(**bad)
    with pytest.raises(ValueError, match="order"):
        aug.warp(jnp.zeros((1, 4, 4, 1)), jnp.eye(3)[None], order=3)
