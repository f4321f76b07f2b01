"""Tests for jaxseg.data.derive (centres, boxes, normalisation) and jaxseg.data.resize."""

import numpy as np
import pytest

from jaxseg.data import derive, resize


def _rect_masks() -> np.ndarray:
    """[3,12,16]: a 3x5 rectangle (rows 2-4, cols 6-10), an L of three pixels, an empty mask."""
    m = np.zeros((3, 12, 16), np.uint8)
    m[0, 2:5, 6:11] = 1
    m[1, 0, 0] = m[1, 0, 1] = m[1, 1, 0] = 1
    return m


def test_centers_from_masks_known_shapes():
    center, has_object = derive.centers_from_masks(_rect_masks())
    assert center.dtype == np.float32 and center.shape == (3, 2)
    np.testing.assert_allclose(center[0], [8.0, 3.0])  # (x, y) = (mean col, mean row)
    np.testing.assert_allclose(center[1], [1 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_array_equal(center[2], [0.0, 0.0])
    np.testing.assert_array_equal(has_object, [True, True, False])
    assert has_object.dtype == np.bool_


def test_boxes_from_masks_known_shapes():
    box = derive.boxes_from_masks(_rect_masks())
    assert box.dtype == np.float32 and box.shape == (3, 4)
    np.testing.assert_array_equal(box, [[6, 2, 10, 4], [0, 0, 1, 1], [0, 0, 0, 0]])


def test_box_touching_the_far_border():
    m = np.zeros((1, 5, 7), np.float32)
    m[0, 3:, 4:] = 1
    np.testing.assert_array_equal(derive.boxes_from_masks(m), [[4, 3, 6, 4]])


def test_channel_axis_is_unioned():
    m = np.zeros((1, 8, 8, 2), np.float32)
    m[0, 1, 1, 0] = 1
    m[0, 5, 7, 1] = 1
    center, has_object = derive.centers_from_masks(m)
    np.testing.assert_allclose(center, [[4.0, 3.0]])
    assert has_object.all()
    np.testing.assert_array_equal(derive.boxes_from_masks(m), [[1, 1, 7, 5]])


def test_single_channel_axis_matches_no_channel_axis():
    m = _rect_masks()
    np.testing.assert_array_equal(derive.boxes_from_masks(m[..., None]), derive.boxes_from_masks(m))


@pytest.mark.parametrize("fn", [derive.centers_from_masks, derive.boxes_from_masks])
def test_mask_rank_error(fn):
    with pytest.raises(ValueError, match=r"shape \(4, 4\)"):
        fn(np.zeros((4, 4)))


def test_normalize_images_per_image():
    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5, 3, (6, 6, 2)), rng.normal(-2, 0.1, (6, 6, 2))])
    z = derive.normalize_images(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1, atol=1e-5)


def test_normalize_constant_image_is_zero_not_nan():
    x = np.full((2, 4, 4, 1), 7, np.uint8)
    x[1, 0, 0, 0] = 9
    z = derive.normalize_images(x)
    np.testing.assert_array_equal(z[0], 0)
    assert np.isfinite(z).all() and z[1].std() == pytest.approx(1, abs=1e-5)


def test_normalize_rank_error():
    with pytest.raises(ValueError, match=r"\[N,H,W,C\]"):
        derive.normalize_images(np.zeros((2, 4, 4)))


def test_contract_arrays_keys_dtypes_and_defaults():
    masks = _rect_masks()[..., None]
    images = np.arange(3 * 12 * 16, dtype=np.uint8).reshape(3, 12, 16, 1)
    out = derive.contract_arrays(images, masks, np.array([0, 2, 1]))
    expected = {
        "image": np.float32,
        "mask": np.float32,
        "center": np.float32,
        "box": np.float32,
        "has_object": np.bool_,
        "label": np.int32,
        "group": np.int32,
    }
    assert {k: v.dtype for k, v in out.items()} == expected
    np.testing.assert_array_equal(out["group"], [0, 1, 2])
    np.testing.assert_array_equal(out["label"], [0, 2, 1])
    np.testing.assert_array_equal(out["box"][0], [6, 2, 10, 4])
    np.testing.assert_array_equal(out["has_object"], [True, True, False])
    grouped = derive.contract_arrays(images, masks, np.zeros(3), groups=np.array([7, 7, 3]))
    np.testing.assert_array_equal(grouped["group"], [7, 7, 3])


# --- resize ---------------------------------------------------------------------------------


def test_downsample_block_mean_and_mask_threshold():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    masks = np.zeros((1, 4, 4, 1), np.uint8)
    masks[0, 0:2, 0:2, 0] = [[1, 1], [0, 0]]  # exactly half -> kept (>= 0.5)
    masks[0, 0:2, 2:4, 0] = [[1, 0], [0, 0]]  # a quarter -> dropped
    masks[0, 2:4, 0:2] = 1
    small_images, small_masks = resize.downsample(images, masks, 2)
    np.testing.assert_allclose(small_images[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(small_masks[0, ..., 0], [[1, 0], [1, 0]])
    assert small_images.dtype == np.float32 and small_masks.dtype == np.float32


def test_downsample_keeps_channels_and_identity_size():
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 8, 8, 3))
    masks = (rng.uniform(size=(2, 8, 8, 1)) > 0.5).astype(np.float32)
    a, b = resize.downsample(images, masks, 4)
    assert a.shape == (2, 4, 4, 3) and b.shape == (2, 4, 4, 1)
    same_images, same_masks = resize.downsample(images, masks, 8)
    np.testing.assert_allclose(same_images, images.astype(np.float32))
    np.testing.assert_array_equal(same_masks, masks)


def test_downsample_errors():
    images = np.zeros((1, 12, 12, 1))
    masks = np.zeros((1, 12, 12, 1))
    with pytest.raises(ValueError, match=r"one of \[1, 2, 3, 4, 6, 12\]"):
        resize.downsample(images, masks, 5)
    with pytest.raises(ValueError, match="square"):
        resize.downsample(np.zeros((1, 12, 8, 1)), np.zeros((1, 12, 8, 1)), 4)
    with pytest.raises(ValueError, match="differ"):
        resize.downsample(images, np.zeros((1, 6, 6, 1)), 6)
    with pytest.raises(ValueError, match=r"\[N,H,W,C\]"):
        resize.downsample(images[..., 0], masks[..., 0], 6)
