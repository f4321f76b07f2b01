"""Tests for jaxseg.eval.summary: empty ground truths apart, capped distances, per-class means,
units; and that the segmentation task, its early stopping and the report use the headline."""

import math

import numpy as np
import pytest

from jaxseg import tasks
from jaxseg.eval import summary
from jaxseg.eval.distances import host_metrics
from jaxseg.eval.metrics import segmentation_metrics
from jaxseg.studies import report as report_lib
from jaxseg.studies import results as results_lib
from jaxseg.tasks.base import DataInfo
from jaxseg.train import steps
from jaxseg.train.early_stopping import EarlyStopping

SIZE = 16
DIAGONAL = math.hypot(SIZE, SIZE)


def _truth() -> np.ndarray:
    """4 masks [4,16,16,1]: two lesions (images 0, 1), two empty ground truths (2, 3)."""
    mask = np.zeros((4, SIZE, SIZE, 1), np.float32)
    mask[0, 2:6, 2:6] = 1
    mask[1, 8:14, 5:12] = 1
    return mask


def _per_example(pred: np.ndarray, truth: np.ndarray, labels=None) -> dict[str, np.ndarray]:
    """What evaluation stores per image: the jit-able metrics, the host metrics, the labels."""
    logits = np.where(pred > 0.5, 9.0, -9.0).astype(np.float32)
    out = {k: np.asarray(v, np.float64) for k, v in segmentation_metrics(logits, truth).items()}
    out |= host_metrics(pred > 0.5, truth > 0.5)
    out["loss"] = np.array([0.1, 0.2, 0.3, 0.4])
    if labels is not None:
        out[summary.LABEL] = np.asarray(labels, np.float64)
    return out


def test_predicting_nothing_scores_zero_on_the_headline():
    truth = _truth()
    means = summary.summarize(_per_example(np.zeros_like(truth), truth))
    assert means["dice"] == 0.0 and means["iou"] == 0.0  # the two lesions are missed
    assert means["dice_all"] == 0.5 and means["iou_all"] == 0.5  # empty-on-empty scores 1
    assert means["empty_count"] == 2 and means["empty_fp_rate"] == 0.0
    # both missed lesions are infinite, counted as the diagonal; the same images in hd and hd95
    assert means["hd"] == pytest.approx(DIAGONAL) and means["hd_inf"] == 2
    assert means["hd95"] == pytest.approx(DIAGONAL) and means["hd95_inf"] == 2
    assert means["hd_all"] == pytest.approx(DIAGONAL / 2) and means["hd_all_inf"] == 2
    assert means["boundary_length_diff"] == 100.0 and means["boundary_length_diff_inf"] == 0
    assert means["loss"] == pytest.approx(0.25)  # the objective: every image
    assert not set(summary.AUXILIARY) & set(means)


def test_a_spurious_prediction_on_an_empty_truth():
    truth = _truth()
    pred = truth.copy()
    pred[3, 0:3, 0:3] = 1  # perfect on the lesions, a false positive on one empty truth
    means = summary.summarize(_per_example(pred, truth))
    assert means["dice"] == 1.0 and means["dice_all"] == 0.75
    assert means["empty_fp_rate"] == 0.5 and means["empty_count"] == 2
    assert means["hd"] == 0.0 and means["hd_inf"] == 0
    assert means["hd_all"] == pytest.approx(DIAGONAL / 4) and means["hd_all_inf"] == 1
    assert means["hd95_all_inf"] == 1
    one = summary.summarize({k: v[:2] for k, v in _per_example(pred, truth).items()})
    assert "empty_fp_rate" not in one and one["empty_count"] == 0  # no empty truth


def test_capped_leaves_finite_values_and_other_metrics():
    values = np.array([1.0, math.inf, 0.0])
    diagonal = np.array([5.0, 6.0, 7.0])
    np.testing.assert_array_equal(summary.capped("hd", values, diagonal), [1.0, 6.0, 0.0])
    np.testing.assert_array_equal(summary.capped("ari", values, diagonal), values)


def test_per_class_means():
    truth = _truth()
    pred = truth.copy()
    pred[1, 8:14, 5:8] = 0  # image 1 (malignant) half found
    pred[2, 0:2, 0:2] = 1  # a false positive on one of the two normals
    names = ("normal", "benign", "malignant")
    per = _per_example(pred, truth, labels=[1, 2, 0, 0])
    means = summary.summarize(per, names)
    assert means["dice[benign]"] == 1.0 and means["iou[benign]"] == 1.0
    assert means["hd[benign]"] == 0.0
    assert means["dice[malignant]"] == pytest.approx(per["dice"][1])
    assert means["hd[malignant]"] == pytest.approx(per["hd"][1])
    assert means["empty_fp_rate[normal]"] == 0.5
    assert "dice[normal]" not in means and "empty_fp_rate[benign]" not in means
    assert means["dice"] == pytest.approx((1 + per["dice"][1]) / 2)  # pooled over classes
    unlabelled = summary.summarize(per, ("lesion",))
    assert not any("[" in k for k in unlabelled)


def test_summarize_needs_the_indicators():
    with pytest.raises(ValueError, match="needs per-image 'empty_truth'"):
        summary.summarize({"dice": np.ones(2)})


def test_units_and_definitions():
    assert summary.label("dice") == "dice"
    assert summary.label("boundary_length_diff") == (
        "boundary_length_diff (% of the true boundary length)"
    )
    assert summary.unit("hd_all") == summary.unit("hd[benign]") == summary.LENGTH
    assert summary.unit("hd_inf") == summary.unit("hd_all_inf") == "images"
    assert summary.base_name("hd95_all_inf") == "hd95"
    assert "image diagonal" in summary.definition("hd")
    assert summary.definition("dice[benign]").endswith("images of class benign only")
    table = results_lib.markdown_table(
        [dict(budget=4.0, arm="a", metric="hd95", n=2, mean=3.0, sd=1.0)]
    )
    assert table.splitlines()[0] == f"| budget | arm | n | hd95 ({summary.LENGTH}) mean ± sd |"


def test_segmentation_task_reports_the_headline_and_classes():
    names = ("normal", "benign", "malignant")
    task = tasks.build("segmentation", info=DataInfo(num_labels=3, class_names=names))
    assert task.keys == ("image", "mask", "label") and task.primary == summary.HEADLINE
    assert tasks.build("segmentation").keys == ("image", "mask")  # no classes, no labels
    truth = _truth()
    batch = {"mask": truth, "label": np.array([1, 2, 0, 0], np.int32)}
    host = task.host_metrics(np.zeros_like(truth, bool), batch)
    np.testing.assert_array_equal(host[summary.LABEL], [1, 2, 0, 0])
    per = _per_example(np.zeros_like(truth), truth) | host
    means = steps.summarize(task, per)  # what validation and result.json use
    assert means[task.primary] == 0.0 and "dice[benign]" in means
    # the early-stopping default monitor and the report's primary metric are the headline
    assert report_lib.PRIMARY["segmentation"] == report_lib.PRIMARY["box_segmentation"]
    assert report_lib.PRIMARY["segmentation"] == task.primary
    assert EarlyStopping(task.primary).mode == "max"
    assert EarlyStopping("hd_all").mode == EarlyStopping("empty_fp_rate[normal]").mode == "min"


def test_old_segmentation_results_are_refused():
    old = {"primary": "dice", "metrics": {"dice": 0.5}, "n_train": 4, "n_test": 8}
    with pytest.raises(ValueError, match=r"run0: result\.json predates .* --overwrite"):
        results_lib.check_current(old, "run0")
    results_lib.check_current({**old, "metrics": {"dice": 0.5, "empty_count": 1.0}}, "run0")
    results_lib.check_current({"primary": "center_error", "metrics": {}}, "run0")
