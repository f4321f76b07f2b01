"""jaxseg.infer.postprocess: thresholds, the largest connected component and fold means."""

from __future__ import annotations

import numpy as np
import pytest

from jaxseg.infer.postprocess import binarize, largest_component, mean_probabilities


def test_binarize_is_inclusive_uint8():
    probs = np.array([[[0.2, 0.5], [0.7, 0.49]]])
    out = binarize(probs)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[[0, 1], [1, 0]]])
    np.testing.assert_array_equal(binarize(probs, threshold=0.6), [[[0, 0], [1, 0]]])


def two_blobs():
    """[8, 8] with a 3x3 blob (9 px) and a 2x2 blob (4 px)."""
    m = np.zeros((8, 8), np.uint8)
    m[0:3, 0:3] = 1
    m[5:7, 5:7] = 1
    return m


def test_largest_component_keeps_the_bigger_blob():
    mask = two_blobs()
    out = largest_component(mask[..., None])[..., 0]
    expected = np.zeros_like(mask)
    expected[0:3, 0:3] = 1
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8


def test_largest_component_channels_are_independent_and_empty_stays_empty():
    small_only = np.zeros((8, 8), np.uint8)
    small_only[5:7, 5:7] = 1  # alone in its channel, so it is that channel's largest
    mask = np.stack([two_blobs(), small_only, np.zeros((8, 8), np.uint8)], axis=-1)
    out = largest_component(mask)
    np.testing.assert_array_equal(out[..., 0], largest_component(two_blobs()[..., None])[..., 0])
    np.testing.assert_array_equal(out[..., 1], small_only)
    assert not out[..., 2].any()


def test_largest_component_uses_full_connectivity_and_first_label_on_ties():
    diagonal = np.eye(4, dtype=np.uint8)  # corners touch: one component of 4 pixels
    mask = np.zeros((8, 8), np.uint8)
    mask[:4, :4] = diagonal
    mask[5:7, 5:7] = 1  # 4 pixels too: a tie, the first in scan order wins
    out = largest_component(mask[..., None])[..., 0]
    expected = np.zeros_like(mask)
    expected[:4, :4] = diagonal
    np.testing.assert_array_equal(out, expected)


def test_largest_component_3d_bool():
    mask = np.zeros((5, 6, 6, 1), bool)
    mask[0, 0, 0] = True
    mask[1, 1, 1] = True  # touches (0,0,0) only through a corner
    mask[3:5, 3:6, 3:6] = True  # 18 voxels
    out = largest_component(mask)
    assert out.dtype == bool
    np.testing.assert_array_equal(np.argwhere(out[..., 0]), np.argwhere(mask[3:5, 3:6, 3:6, 0]) + 3)
    mask[3:5, 3:6, 3:6] = False
    np.testing.assert_array_equal(largest_component(mask), mask)  # the corner-joined pair


def test_mean_probabilities():
    a = np.full((2, 3, 1), 0.2)
    b = np.full((2, 3, 1), 0.6)
    out = mean_probabilities([a, b])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, np.full((2, 3, 1), 0.4), rtol=1e-6)
    np.testing.assert_array_equal(mean_probabilities([b]), b.astype(np.float32))


def test_mean_probabilities_refuses_mismatched_shapes_naming_both():
    with pytest.raises(ValueError, match=r"\(2, 3, 1\) and \(3, 2, 1\)"):
        mean_probabilities([np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), np.zeros((3, 2, 1))])
    with pytest.raises(ValueError, match="at least one"):
        mean_probabilities([])
