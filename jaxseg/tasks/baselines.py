"""Trivial baselines of a stage's task: what a constant prediction built from the TRAINING
examples scores on the held-out examples, in the units of the task's primary metric, so a
pretext's figure can be judged (issue 15, "pretext health"). Also the ranking figures of the
siamese task: ROC-AUC (Mann–Whitney) and a held-out linear probe.

A baseline is a constant head output (one example's outputs, no batch axis) built by the task's
entry in ``CONSTANTS`` from the training arrays; ``constant_scores`` broadcasts it over the
held-out arrays and scores it with the task's own ``metrics``, so the error metric is exactly the
task's (e.g. the centre error in pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxseg.data import stream
from jaxseg.tasks.base import Task

Arrays = Mapping[str, np.ndarray]
EPS = 1e-4  # probabilities are clipped to [EPS, 1 - EPS] before taking logits


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p)).astype(np.float32)


def _head_centre(centre: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A centre (x, y[, z]) in pixels -> the localization head's [-1, 1] scale."""
    size = np.array(image.shape[1:-1][::-1], np.float32)
    return (centre / size * 2 - 1).astype(np.float32)


def localization(task: Task, train: Arrays) -> dict[str, np.ndarray]:
    """The mean training centre, and the image centre ((size - 1) / 2 along each axis)."""
    del task
    image = train["image"]
    used = train["has_object"].astype(bool)
    mean = train["center"][used].mean(axis=0)
    middle = (np.array(image.shape[1:-1][::-1], np.float32) - 1) / 2
    return {
        "mean_train_centre": _head_centre(mean, image),
        "image_centre": _head_centre(middle, image),
    }


def classification(task: Task, train: Arrays) -> dict[str, np.ndarray]:
    """Always the most frequent training class (its accuracy is the class's held-out share)."""
    counts = np.bincount(train["label"].astype(int), minlength=task.outputs)
    logits = np.full(task.outputs, -1.0, np.float32)
    logits[int(np.argmax(counts))] = 1.0
    return {"majority_class": logits}


def multilabel(task: Task, train: Arrays) -> dict[str, np.ndarray]:
    """Each label's training prevalence as its probability (present where it is above 0.5)."""
    del task
    return {"label_prevalence": _logit(train["labels"].mean(axis=0))}


def autoencoder(task: Task, train: Arrays) -> dict[str, np.ndarray]:
    """The mean training image as every reconstruction."""
    del task
    return {"mean_train_image": mean_over_examples(train["image"]).astype(np.float32)}


def mean_mask(task: Task, train: Arrays) -> dict[str, np.ndarray]:
    """The mean training mask as the probability of each pixel (foreground where more than half
    the training masks cover it); a softmax head gets a background logit 0 first."""
    logits = _logit(mean_over_examples(train["mask"]))
    if task.outputs == logits.shape[-1] + 1:
        logits = np.concatenate([np.zeros_like(logits[..., :1]), logits], axis=-1)
    name = "mean_train_box_mask" if task.name == "box_segmentation" else "mean_train_mask"
    return {name: logits}


# Task name -> the constant outputs of its trivial baselines ({name: outputs of one example}).
CONSTANTS: dict[str, Callable[[Task, Arrays], dict[str, np.ndarray]]] = {
    "autoencoder": autoencoder,
    "box_segmentation": mean_mask,
    "classification": classification,
    "localization": localization,
    "multilabel": multilabel,
    "segmentation": mean_mask,
}


def mean_over_examples(x: Any) -> np.ndarray:
    """Mean over the first axis of [N, ...] ``x``, read ``stream.CHUNK`` examples at a time: a
    streamed set (``data.stream.Rows``) is never held whole."""
    total = sum(np.asarray(x[rows], np.float64).sum(axis=0) for rows in stream.chunks(len(x)))
    return total / len(x)


def constant_scores(task: Task, train: Arrays, test: Arrays) -> dict[str, float]:
    """{baseline name: held-out ``task.primary``} of each constant prediction of
    ``CONSTANTS[task.name]`` ({} for a task without one), summarised as the task summarises its
    own held-out metrics (segmentation: the headline over non-empty truths); ``test`` is read
    ``stream.CHUNK`` examples at a time."""
    if task.name not in CONSTANTS:
        return {}
    n = len(test[task.keys[0]])
    out = {}
    for name, constant in CONSTANTS[task.name](task, train).items():
        parts = []
        for rows in stream.chunks(n):
            batch = {k: jnp.asarray(np.asarray(v[rows])) for k, v in test.items()}
            outputs = jnp.broadcast_to(jnp.asarray(constant), (len(rows), *constant.shape))
            parts.append({k: np.asarray(v) for k, v in task.metrics(outputs, batch).items()})
        per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        if task.summarize is not None:
            out[name] = float(task.summarize(per)[task.primary])
        else:
            values = per[task.primary].astype(np.float64)
            out[name] = float(np.mean(values[np.isfinite(values)]))
    return out


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC-AUC of ``scores`` [N] for the bool labels ``positive`` [N] (Mann–Whitney U / n+ n-,
    ties counted half); NaN when one class is absent."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive) > 0.5
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def pair_auc(distance: np.ndarray, same: np.ndarray) -> float:
    """ROC-AUC of a pair distance [N] for same (1) vs different (0) pairs: 1 when every same
    pair is closer than every different pair, 0.5 for a distance that ignores the pairing."""
    return roc_auc(-np.asarray(distance, np.float64), same)


def logistic_fit(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iterations: int = 50
) -> np.ndarray:
    """Weights [D+1] (bias last) of an L2-regularised logistic regression of bool ``y`` [N] on
    ``x`` [N,D], by Newton's method (features standardised by the caller)."""
    design = np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], axis=1)
    target = (np.asarray(y) > 0.5).astype(np.float64)
    w = np.zeros(design.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        grad = design.T @ (p - target) + penalty @ w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def probe_auc(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Held-out ROC-AUC of a logistic regression (``logistic_fit``) fitted on the training
    features [N,D] and labels [N], scored on the test ones (features standardised by the
    training mean and sd)."""
    mean, sd = train_x.mean(axis=0), train_x.std(axis=0) + 1e-8
    w = logistic_fit((train_x - mean) / sd, train_y)
    scores = (test_x - mean) / sd @ w[:-1] + w[-1]
    return roc_auc(scores, test_y)


def pair_features(embeddings: np.ndarray) -> np.ndarray:
    """The probe's features of pairs [N,2,E]: |e_a - e_b| per dimension [N,E] (symmetric)."""
    return np.abs(embeddings[:, 0] - embeddings[:, 1])
