"""Tests for jaxseg.eval.metrics against numpy references and hand-made cases."""

import numpy as np
import pytest

from jaxseg.eval.metrics import center_error, dice_at


def _dice_ref(logits, mask, threshold=0.5):
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pred = (prob >= threshold).reshape(len(logits), -1)
    m = mask.reshape(len(mask), -1) > 0.5
    out = []
    for p, t in zip(pred, m, strict=True):
        total = p.sum() + t.sum()
        out.append(1.0 if total == 0 else 2 * (p & t).sum() / total)
    return np.array(out)


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.2])
def test_dice_at_matches_numpy_reference(threshold):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (5, 8, 8, 2)).astype(np.float32)
    mask = (rng.random((5, 8, 8, 2)) < 0.4).astype(np.float32)
    out = np.asarray(dice_at(logits, mask, threshold))
    assert out.shape == (5,)
    np.testing.assert_allclose(out, _dice_ref(logits, mask, threshold), rtol=1e-6)


def test_dice_at_hand_computed():
    # Prediction {0, 1}, mask {1, 2}: Dice = 2·1 / (2 + 2) = 0.5.
    logits = np.array([5, 5, -5, -5], np.float32).reshape(1, 2, 2, 1)
    mask = np.array([0, 1, 1, 0], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(dice_at(logits, mask), [0.5])
    np.testing.assert_allclose(dice_at(np.where(mask > 0, 5.0, -5.0), mask), [1.0])


def test_dice_at_threshold_is_inclusive():
    # sigmoid(0) = 0.5 exactly: predicted positive at threshold 0.5 (prob >= threshold).
    logits = np.array([0.0, -5.0], np.float32).reshape(1, 1, 2, 1)
    mask = np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1)
    np.testing.assert_array_equal(dice_at(logits, mask, 0.5), [1.0])


def test_dice_at_empty_cases():
    empty = np.zeros((1, 4, 4, 1), np.float32)
    full = np.ones_like(empty)
    neg, pos = np.full_like(empty, -5.0), np.full_like(empty, 5.0)
    np.testing.assert_array_equal(dice_at(neg, empty), [1.0])  # both empty
    np.testing.assert_array_equal(dice_at(pos, empty), [0.0])  # prediction only
    np.testing.assert_array_equal(dice_at(neg, full), [0.0])  # mask only
    np.testing.assert_array_equal(dice_at(pos, full), [1.0])
    # Per example, in one batch.
    batch = dice_at(np.concatenate([neg, pos, neg]), np.concatenate([empty, empty, full]))
    np.testing.assert_array_equal(batch, [1.0, 0.0, 0.0])


def test_dice_at_soft_masks_thresholded_at_half():
    logits = np.full((1, 1, 2, 1), 5.0, np.float32)
    mask = np.array([0.6, 0.4], np.float32).reshape(1, 1, 2, 1)  # -> {1, 0}
    np.testing.assert_allclose(dice_at(logits, mask), [2 * 1 / 3])


def test_center_error_matches_hypot():
    rng = np.random.default_rng(1)
    pred, center = rng.uniform(0, 32, (6, 2)), rng.uniform(0, 32, (6, 2))
    out = np.asarray(center_error(pred.astype(np.float32), center.astype(np.float32)))
    assert out.shape == (6,)
    ref = np.hypot(pred[:, 0] - center[:, 0], pred[:, 1] - center[:, 1])
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    np.testing.assert_allclose(center_error(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])), [5])
