"""A segmentation split's per-image metrics -> the means a run reports (``result.json``'s
``metrics``, the validation scalars, the early-stopping monitor). Host-side numpy.

Why not plain means: an image whose ground truth is empty scores Dice/IoU 1 for an empty
prediction and Hausdorff 0, so on BUSI (13.5–23.7 % normals per fold) "predict nothing" scores
Dice 0.171, and a Hausdorff mean that drops infinite cases averages each arm over other images.
The rules (docs/design.md, "Segmentation metrics"):

- Headline: every image metric but ``loss`` is averaged over the images whose ground truth has
  foreground ('dice', the ``HEADLINE``, is the primary metric). ``loss`` (the objective) is
  averaged over every image.
- ``<m>_all`` for ``POOLED`` metrics: the mean over every image, empty-vs-empty counted as the
  per-image conventions say (Dice/IoU 1, Hausdorff 0).
- Empty ground truths apart: ``empty_count`` images, and ``empty_fp_rate``, the share of them
  with any predicted foreground (only when there are some: a split without empty ground truth
  has no such key, so no NaN reaches result.json).
- Distances (``CAPPED``): a case where exactly one of prediction and truth is empty is infinite;
  means count it as the image diagonal (``diagonal``, same units), and ``<m>_inf`` /
  ``<m>_all_inf`` count such images, so every arm averages over the same images.
  ``boundary_length_diff`` is finite on every image with foreground (its ``_inf`` count says so).
- Per class (``class_names`` with ≥ 2 names and a per-image ``label``): ``<m>[<class>]`` for
  ``PER_CLASS`` over the class's images with foreground, and ``empty_fp_rate[<class>]`` over its
  empty ones; a key exists only where the class has such images.
- Any remaining non-finite value is left out of its mean (as ``train.steps.finite_means``); a
  mean over no image is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

HEADLINE = "dice"  # the primary metric of segmentation: the Dice over images with foreground
EMPTY, PREDICTED, LABEL, DIAGONAL = "empty_truth", "predicted_foreground", "label", "diagonal"
AUXILIARY = (EMPTY, PREDICTED, LABEL, DIAGONAL)  # per-image facts, not metrics
EVERY_IMAGE = ("loss",)  # averaged over every image as they are
POOLED = ("dice", "iou", "hd", "hd95")  # also reported over every image as <m>_all
CAPPED = ("hd", "hd95")  # infinity counted as the image diagonal in means
INF_COUNTED = ("hd", "hd95", "boundary_length_diff")  # <m>_inf: images with an infinite value
PER_CLASS = ("dice", "iou", "hd")
LENGTH = "px, or mm with voxel spacing"
UNITS = {
    "pixel_error": "%",
    "hd": LENGTH,
    "hd95": LENGTH,
    "boundary_length_diff": "% of the true boundary length",
    "center_error": "px or voxels",
    "empty_count": "images",
}
DEFINITIONS = {
    "dice": "Dice over the images whose ground truth has foreground (the headline)",
    "dice_all": "Dice over every image (an empty prediction on an empty ground truth scores 1)",
    "iou": "IoU over the images whose ground truth has foreground",
    "iou_all": "IoU over every image (empty on empty scores 1)",
    "hd": "Hausdorff distance over the images with foreground; a missed lesion (infinite) "
    "counts as the image diagonal, hd_inf counts them",
    "hd95": "95th-percentile Hausdorff distance, as hd (infinite counted as the image "
    "diagonal, hd95_inf counts them)",
    "hd_all": "Hausdorff over every image: empty on empty 0, exactly one empty (infinite) "
    "counted as the image diagonal, hd_all_inf counts them",
    "hd95_all": "HD95 over every image, as hd_all",
    "boundary_length_diff": "|L(pred) − L(truth)| / L(truth) of the boundary lengths (areas in "
    "3-D), over the images with foreground",
    "empty_fp_rate": "share of the empty-ground-truth images with any predicted foreground",
    "empty_count": "images with an empty ground truth in the held-out fold",
    "mask_dice": "a box net's Dice against the expert masks (its target is the boxes), over "
    "the images with foreground that have a mask",
}


def base_name(metric: str) -> str:
    """The metric a derived name reports on: 'hd_all' / 'hd_inf' / 'hd[benign]' -> 'hd'."""
    name = metric.split("[", 1)[0]
    for suffix in ("_inf", "_all"):
        name = name.removesuffix(suffix)
    return name


def unit(metric: str) -> str:
    """The unit of ``metric`` ('' for a ratio): counts of infinite cases are 'images'."""
    if metric.split("[", 1)[0].endswith("_inf"):
        return "images"
    return UNITS.get(metric, UNITS.get(base_name(metric), ""))


def label(metric: str) -> str:
    """``metric`` with its unit for a table header or an axis: 'hd (px, or mm ...)', 'dice'."""
    u = unit(metric)
    return f"{metric} ({u})" if u else metric


def definition(metric: str) -> str:
    """One line saying what ``metric`` averages ('' for a metric with no note)."""
    text = DEFINITIONS.get(metric.split("[", 1)[0], "")
    if "[" in metric and text:
        text += f", images of class {metric.split('[', 1)[1].rstrip(']')} only"
    return text


def _mean(values: np.ndarray) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def capped(name: str, values: np.ndarray, diagonal: np.ndarray | None) -> np.ndarray:
    """``values`` with +∞ replaced by ``diagonal`` (per image) for ``CAPPED`` metrics."""
    values = np.asarray(values, np.float64)
    if name not in CAPPED or diagonal is None:
        return values
    return np.where(np.isposinf(values), diagonal, values)


def _metric(name: str, values: np.ndarray, diagonal, foreground: np.ndarray) -> dict[str, float]:
    """The summary entries of one per-image metric (see the module doc)."""
    if name in EVERY_IMAGE:
        return {name: _mean(values)}
    clipped = capped(name, values, diagonal)
    out = {name: _mean(clipped[foreground])}
    if name in INF_COUNTED:
        out[f"{name}_inf"] = float(np.isinf(values[foreground]).sum())
    if name in POOLED:
        out[f"{name}_all"] = _mean(clipped)
        if name in INF_COUNTED:
            out[f"{name}_all_inf"] = float(np.isinf(values).sum())
    return out


def per_class(
    per_example: Mapping[str, np.ndarray], class_names: Sequence[str]
) -> dict[str, float]:
    """``<m>[<class>]`` for ``PER_CLASS`` and ``empty_fp_rate[<class>]`` (module doc); {}
    without a per-image ``label`` or with fewer than 2 class names."""
    labels = per_example.get(LABEL)
    if labels is None or len(class_names) < 2:
        return {}
    empty = np.asarray(per_example[EMPTY]) > 0.5
    diagonal = per_example.get(DIAGONAL)
    labels = np.rint(np.asarray(labels)).astype(int)
    out = {}
    for k, cls in enumerate(class_names):
        lesion, normal = (labels == k) & ~empty, (labels == k) & empty
        for name in PER_CLASS:
            if name in per_example and lesion.any():
                out[f"{name}[{cls}]"] = _mean(capped(name, per_example[name], diagonal)[lesion])
        if normal.any():
            out[f"empty_fp_rate[{cls}]"] = _mean(np.asarray(per_example[PREDICTED])[normal])
    return out


def summarize(
    per_example: Mapping[str, np.ndarray], class_names: Sequence[str] = ()
) -> dict[str, float]:
    """The reported means of a split's per-image segmentation metrics ({name: [N]}, with
    ``empty_truth`` and ``predicted_foreground``; ``diagonal`` and ``label`` optional): see the
    module doc for every key."""
    if EMPTY not in per_example or PREDICTED not in per_example:
        raise ValueError(
            f"segmentation summary needs per-image '{EMPTY}' and '{PREDICTED}' "
            f"(got {sorted(per_example)})"
        )
    empty = np.asarray(per_example[EMPTY]) > 0.5
    diagonal = per_example.get(DIAGONAL)
    out: dict[str, float] = {}
    for name, values in per_example.items():
        if name not in AUXILIARY:
            out.update(_metric(name, np.asarray(values, np.float64), diagonal, ~empty))
    out["empty_count"] = float(empty.sum())
    if empty.any():
        out["empty_fp_rate"] = _mean(np.asarray(per_example[PREDICTED], np.float64)[empty])
    return {**out, **per_class(per_example, class_names)}
