"""Tests for jaxseg.eval.metrics against numpy references and hand-made cases."""

import jax
import numpy as np
import pytest

from jaxseg import tasks
from jaxseg.eval import summary
from jaxseg.eval.metrics import (
    center_error,
    dice_at,
    iou_at,
    mean_iou_at,
    pixel_error,
    segmentation_metrics,
    sensitivity,
    specificity,
)


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


# --- iou / miou / pixel error / sensitivity / specificity ------------------------------------


def _counts_ref(logits, mask, threshold=0.5, per_class=False):
    """(tp, fp, fn, tn) in float64 per example ([B] or [B,K] with ``per_class``)."""
    prob = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pred, m = prob >= threshold, mask > 0.5
    shape = (len(mask), -1, mask.shape[-1]) if per_class else (len(mask), -1)
    pred, m = pred.reshape(shape), m.reshape(shape)
    return tuple(
        np.sum(x, axis=1).astype(np.float64) for x in (pred & m, pred & ~m, ~pred & m, ~pred & ~m)
    )


def _safe(num, den):
    return np.where(den == 0, 1.0, num / np.maximum(den, 1))


def _refs(logits, mask, threshold):
    tp, fp, fn, tn = _counts_ref(logits, mask, threshold)
    ctp, cfp, cfn, _ = _counts_ref(logits, mask, threshold, per_class=True)
    return {
        "dice": _dice_ref(logits, mask, threshold),
        "iou": _safe(tp, tp + fp + fn),
        "miou": _safe(ctp, ctp + cfp + cfn).mean(axis=1),
        "pixel_error": 100 * (fp + fn) / (tp + fp + fn + tn),
        "sensitivity": _safe(tp, tp + fn),
        "specificity": _safe(tn, tn + fp),
        "empty_truth": (tp + fn == 0).astype(np.float64),
        "predicted_foreground": (tp + fp > 0).astype(np.float64),
    }


def _random_case(seed, shape):
    """Random logits/masks with the first examples forced into the edge cases."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, shape).astype(np.float32)
    mask = (rng.random(shape) < rng.uniform(0.1, 0.6)).astype(np.float32)
    mask[0] = 0  # empty mask, non-empty prediction
    logits[1] = -9  # empty prediction, non-empty mask
    mask[2], logits[2] = 0, -9  # both empty
    mask[3] = 1  # full mask: no negatives (specificity denominator 0)
    if shape[-1] > 1:
        mask[4, ..., 0], logits[4, ..., 0] = 0, -9  # one class empty in both
    return logits, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(6, 8, 8, 1), (6, 8, 8, 3), (6, 4, 6, 5, 2)])
@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_segmentation_metrics_match_numpy(seed, shape, threshold):
    logits, mask = _random_case(seed, shape)
    out = jax.jit(segmentation_metrics, static_argnums=2)(logits, mask, threshold)
    ref = _refs(logits, mask, threshold)
    assert set(out) == set(ref)
    for name, values in out.items():
        assert values.shape == (shape[0],), name
        np.testing.assert_allclose(values, ref[name], rtol=1e-5, atol=1e-5, err_msg=name)
    singles = dict(iou=iou_at, miou=mean_iou_at, pixel_error=pixel_error)
    singles.update(sensitivity=sensitivity, specificity=specificity)
    for name, fn in singles.items():
        np.testing.assert_allclose(fn(logits, mask, threshold), ref[name], rtol=1e-5, atol=1e-5)


def test_metric_empty_conventions():
    empty = np.zeros((1, 4, 4, 1), np.float32)
    full = np.ones_like(empty)
    neg, pos = np.full_like(empty, -5.0), np.full_like(empty, 5.0)
    for fn in (iou_at, mean_iou_at):
        np.testing.assert_array_equal(fn(neg, empty), [1.0])  # both empty
        np.testing.assert_array_equal(fn(pos, empty), [0.0])  # prediction only
        np.testing.assert_array_equal(fn(neg, full), [0.0])  # mask only
    np.testing.assert_array_equal(sensitivity(pos, empty), [1.0])  # nothing to find
    np.testing.assert_array_equal(sensitivity(neg, full), [0.0])
    np.testing.assert_array_equal(specificity(neg, full), [1.0])  # no negatives
    np.testing.assert_array_equal(specificity(pos, empty), [0.0])
    np.testing.assert_array_equal(pixel_error(pos, empty), [100.0])
    np.testing.assert_array_equal(pixel_error(neg, empty), [0.0])


def test_iou_and_miou_hand_computed():
    # Class 0: pred {0,1}, mask {1,2} -> IoU 1/3. Class 1: pred {0}, mask {} -> IoU 0.
    # Pooled: TP 1, FP 2, FN 1 -> IoU 1/4; mean over classes: (1/3 + 0) / 2.
    pred = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], np.float32).reshape(1, 2, 2, 2)
    mask = np.array([[0, 0], [1, 0], [1, 0], [0, 0]], np.float32).reshape(1, 2, 2, 2)
    logits = np.where(pred > 0, 5.0, -5.0)
    np.testing.assert_allclose(iou_at(logits, mask), [1 / 4], rtol=1e-6)
    np.testing.assert_allclose(mean_iou_at(logits, mask), [1 / 6], rtol=1e-6)
    np.testing.assert_allclose(pixel_error(logits, mask), [100 * 3 / 8], rtol=1e-6)
    np.testing.assert_allclose(sensitivity(logits, mask), [1 / 2], rtol=1e-6)
    np.testing.assert_allclose(specificity(logits, mask), [4 / 6], rtol=1e-6)
    # K = 1: miou is iou.
    one = (logits[..., :1], mask[..., :1])
    np.testing.assert_allclose(mean_iou_at(*one), iou_at(*one), rtol=1e-6)


def test_segmentation_task_reports_all_metrics():
    task = tasks.build("segmentation", num_classes=2)
    logits, mask = _random_case(5, (6, 8, 8, 2))
    out = task.metrics(logits, {"image": np.zeros((6, 8, 8, 1)), "mask": mask})
    names = {"dice", "iou", "miou", "pixel_error", "sensitivity", "specificity"}
    indicators = {"empty_truth", "predicted_foreground"}
    assert set(out) == names | indicators and task.primary == summary.HEADLINE == "dice"
    for name, ref in _refs(logits, mask, 0.5).items():
        np.testing.assert_allclose(out[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_volume_metrics_hand_computed():
    # A 2×2×2 volume: prediction {v0, v1, v2}, mask {v2, v3}: TP 1, FP 2, FN 1, TN 4.
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 0], np.float32).reshape(1, 2, 2, 2, 1)
    mask = np.array([0, 0, 1, 1, 0, 0, 0, 0], np.float32).reshape(1, 2, 2, 2, 1)
    logits = np.where(pred > 0, 5.0, -5.0)
    out = segmentation_metrics(logits, mask)
    expected = dict(dice=2 / 5, iou=1 / 4, miou=1 / 4, pixel_error=100 * 3 / 8,
                    sensitivity=1 / 2, specificity=4 / 6)  # fmt: skip
    for name, value in expected.items():
        np.testing.assert_allclose(out[name], [value], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(center_error(np.array([[0.0, 0, 0]]), np.array([[1.0, 2, 2]])), [3])
