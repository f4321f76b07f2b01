"""Tests for jaxseg.losses against numpy references (float64) and hand-computed values."""

import numpy as np
import pytest

from jaxseg import losses


def _random(seed: int, shape=(3, 8, 8, 2)):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, shape).astype(np.float32)
    mask = (rng.random(shape) < 0.3).astype(np.float32)
    return logits, mask


def _soft_dice_ref(logits, mask, smooth=1.0):
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    p, m = p.reshape(len(p), -1), mask.reshape(len(mask), -1).astype(np.float64)
    return (2 * (p * m).sum(1) + smooth) / (p.sum(1) + m.sum(1) + smooth)


def test_soft_dice_matches_numpy_reference():
    logits, mask = _random(0)
    out = np.asarray(losses.soft_dice(logits, mask))
    assert out.shape == (3,)
    np.testing.assert_allclose(out, _soft_dice_ref(logits, mask), rtol=1e-5)


def test_soft_dice_hand_computed():
    # One image of 4 pixels: probabilities 0.5 everywhere (logits 0), mask has 2 ones.
    # Dice = (2·(0.5+0.5) + 1) / (2 + 2 + 1) = 3/5.
    logits = np.zeros((1, 2, 2, 1), np.float32)
    mask = np.array([1, 0, 1, 0], np.float32).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(losses.soft_dice(logits, mask), [0.6], rtol=1e-6)
    np.testing.assert_allclose(losses.dice_loss(logits, mask), [0.4], rtol=1e-6)
    np.testing.assert_allclose(losses.neg_log_dice(logits, mask), [-np.log(0.6)], rtol=1e-6)


def test_soft_dice_perfect_prediction_is_one():
    _, mask = _random(1)
    logits = np.where(mask > 0, 50.0, -50.0).astype(np.float32)
    np.testing.assert_allclose(losses.soft_dice(logits, mask), 1.0, atol=1e-6)
    np.testing.assert_allclose(losses.dice_loss(logits, mask), 0.0, atol=1e-6)
    np.testing.assert_allclose(losses.neg_log_dice(logits, mask), 0.0, atol=1e-6)


def test_soft_dice_empty_mask_and_empty_prediction_is_one():
    mask = np.zeros((2, 8, 8, 1), np.float32)
    logits = np.full(mask.shape, -50.0, np.float32)
    np.testing.assert_allclose(losses.soft_dice(logits, mask), 1.0, atol=1e-6)
    # Empty mask, everything predicted: 1 / (64 + 1).
    np.testing.assert_allclose(losses.soft_dice(-logits, mask), 1 / 65, rtol=1e-5)


def test_soft_dice_pools_classes_and_is_per_example():
    logits, mask = _random(2)
    out = np.asarray(losses.soft_dice(logits, mask))
    # Pooling classes = the Dice of the image with its class channels laid side by side.
    side = np.concatenate([logits[..., 0], logits[..., 1]], axis=2)[..., None]
    side_mask = np.concatenate([mask[..., 0], mask[..., 1]], axis=2)[..., None]
    np.testing.assert_allclose(out, losses.soft_dice(side, side_mask), rtol=1e-6)
    # Changing image 1 leaves the others' values alone.
    logits2 = logits.copy()
    logits2[1] += 5.0
    out2 = np.asarray(losses.soft_dice(logits2, mask))
    np.testing.assert_array_equal(out2[[0, 2]], out[[0, 2]])
    assert out2[1] != out[1]


def test_neg_log_dice_and_dice_loss_relations():
    logits, mask = _random(3)
    ref = _soft_dice_ref(logits, mask)
    np.testing.assert_allclose(losses.neg_log_dice(logits, mask), -np.log(ref), rtol=1e-5)
    np.testing.assert_allclose(losses.dice_loss(logits, mask), 1 - ref, rtol=1e-5, atol=1e-6)


def test_bce_matches_numpy_reference():
    logits, mask = _random(4)
    z, y = logits.astype(np.float64), mask.astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    ref = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    ref = ref.reshape(len(z), -1).mean(1)
    out = np.asarray(losses.bce(logits, mask))
    assert out.shape == (3,)
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_bce_hand_computed_and_stable_for_large_logits():
    # logit 0 -> log 2 whatever the label.
    np.testing.assert_allclose(
        losses.bce(np.zeros((1, 2, 2, 1), np.float32), np.ones((1, 2, 2, 1), np.float32)),
        [np.log(2)],
        rtol=1e-6,
    )
    big = np.full((1, 4, 4, 1), 200.0, np.float32)
    out = np.asarray(losses.bce(big, np.zeros_like(big)))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [200.0], rtol=1e-5)
    np.testing.assert_allclose(losses.bce(big, np.ones_like(big)), [0.0], atol=1e-6)


def test_mse_per_example():
    rng = np.random.default_rng(5)
    pred, target = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    out = np.asarray(losses.mse(pred.astype(np.float32), target.astype(np.float32)))
    assert out.shape == (4,)
    np.testing.assert_allclose(out, ((pred - target) ** 2).mean(axis=1), rtol=1e-5)
    # Higher-rank inputs: mean over every non-batch axis.
    a = np.zeros((2, 3, 3, 1), np.float32)
    b = np.zeros_like(a)
    b[1, 0, 0, 0] = 3.0
    np.testing.assert_allclose(losses.mse(a, b), [0.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("mse", losses.mse),
        ("dice", losses.dice_loss),
        ("neg_log_dice", losses.neg_log_dice),
        ("bce", losses.bce),
    ],
)
def test_get_by_name(name, fn):
    assert losses.get(name) is fn


def test_get_unknown_name_lists_known():
    with pytest.raises(ValueError, match="focal") as err:
        losses.get("focal")
    for name in ("mse", "dice", "neg_log_dice", "bce"):
        assert name in str(err.value)
