"""Pretext health (issue 15): each task's trivial baseline on hand-built fixtures, the ROC-AUC and
linear probe of the siamese task, and the verdict's direction."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import models, tasks
from jaxseg.tasks import baselines
from jaxseg.train import health


def _images(n: int, size: int = 8, value: float = 0.0) -> np.ndarray:
    return np.full((n, size, size, 1), value, np.float32)


def test_localization_mean_centre_and_image_centre_in_pixels():
    task = tasks.build("localization")
    train = {
        "image": _images(3),
        "center": np.array([[1, 1], [3, 3], [50, 50]], np.float32),
        "has_object": np.array([True, True, False]),  # no centre: not averaged
    }
    test = {
        "image": _images(2),
        "center": np.array([[2, 2], [2, 5]], np.float32),
        "has_object": np.ones(2, bool),
    }
    got = baselines.constant_scores(task, train, test)
    # mean (2, 2): errors 0 and 3; image centre (3.5, 3.5): sqrt(4.5) and sqrt(4.5)
    assert got["mean_train_centre"] == pytest.approx(1.5, abs=1e-5)
    assert got["image_centre"] == pytest.approx(math.sqrt(4.5), abs=1e-5)


def test_classification_majority_class_accuracy():
    task = tasks.build("classification", info=tasks.DataInfo(num_labels=3))
    train = {"image": _images(4), "label": np.array([0, 1, 1, 2])}
    test = {"image": _images(4), "label": np.array([1, 0, 1, 1])}
    assert baselines.constant_scores(task, train, test) == {"majority_class": 0.75}


def test_multilabel_prevalence_predicts_each_label_s_majority():
    task = tasks.build("multilabel", info=tasks.DataInfo(mask_channels=2))
    train = {"image": _images(4), "labels": np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float32)}
    test = {"image": _images(2), "labels": np.array([[1, 1], [0, 0]], np.float32)}
    # predicts (1, 0): one label of two right on each test image
    assert baselines.constant_scores(task, train, test) == {"label_prevalence": 0.5}


def test_autoencoder_mean_training_image_mse():
    task = tasks.build("autoencoder")
    train = {"image": np.concatenate([_images(1, value=1.0), _images(1, value=3.0)])}
    test = {"image": np.concatenate([_images(1, value=2.0), _images(1, value=4.0)])}
    got = baselines.constant_scores(task, train, test)
    assert got == {"mean_train_image": pytest.approx(2.0)}  # mse 0 and 4


@pytest.mark.parametrize("loss", ["", "ce"])
def test_box_masks_mean_training_box_mask_dice(loss):
    task = tasks.build("box_segmentation", loss=loss)
    block = np.zeros((4, 4, 1), np.float32)
    block[:2, :2] = 1
    other = np.zeros((4, 4, 1), np.float32)
    other[2:, 2:] = 1
    train = {"image": _images(3, 4), "mask": np.stack([block, block, 0 * block])}
    test = {"image": _images(2, 4), "mask": np.stack([block, other])}
    # the top-left block is covered by 2 of 3 training masks: Dice 1 on one, 0 on the other
    assert baselines.constant_scores(task, train, test) == {"mean_train_box_mask": 0.5}


def test_a_task_without_constant_baselines_has_none():
    task = tasks.build("siamese")
    assert baselines.constant_scores(task, {}, {}) == {}


def test_roc_auc_matches_sklearn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.normal(size=200) + labels, 1)  # ties
    assert baselines.roc_auc(scores, labels) == pytest.approx(
        metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    assert baselines.roc_auc([0.1, 0.9, 0.5], [0, 1, 1]) == 1.0
    assert math.isnan(baselines.roc_auc([0.1, 0.2], [1, 1]))


def test_pair_auc_is_high_for_planted_embeddings_and_half_for_noise():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 400)
    centres = rng.normal(size=(2, 8)) * 3
    emb = centres[label] + rng.normal(size=(400, 8))  # planted: classes apart
    a, b = rng.integers(0, 400, 300), rng.integers(0, 400, 300)
    same = label[a] == label[b]
    distance = np.linalg.norm(emb[a] - emb[b], axis=1)
    assert baselines.pair_auc(distance, same) > 0.9
    noise = rng.normal(size=(400, 8))
    random = baselines.pair_auc(np.linalg.norm(noise[a] - noise[b], axis=1), same)
    assert abs(random - 0.5) < 0.1


def test_logistic_fit_matches_sklearn():
    linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=300)) > 0
    w = baselines.logistic_fit(x, y, l2=0.5)
    ref = linear.LogisticRegression(C=2.0, tol=1e-10, max_iter=1000).fit(x, y)
    np.testing.assert_allclose(w[:-1], ref.coef_[0], atol=1e-5)
    assert w[-1] == pytest.approx(ref.intercept_[0], abs=1e-5)


def test_probe_auc_planted_vs_noise():
    rng = np.random.default_rng(3)
    y = rng.random(600) < 0.5
    planted = rng.normal(size=(600, 4)) + 3 * y[:, None] * np.array([1, 0, 0, 0])
    noise = rng.normal(size=(600, 4))
    assert baselines.probe_auc(planted[:300], y[:300], planted[300:], y[300:]) > 0.9
    assert abs(baselines.probe_auc(noise[:300], y[:300], noise[300:], y[300:]) - 0.5) < 0.1
    emb = np.stack([np.ones((2, 3)), np.zeros((2, 3))], axis=1) * np.array([[1], [-2]])[:, :, None]
    np.testing.assert_array_equal(baselines.pair_features(emb), [[1, 1, 1], [2, 2, 2]])


def test_siamese_auc_of_a_random_encoder_on_noise_is_about_half():
    """A random (untrained) encoder of the siamese architecture on unstructured pairs."""
    task = tasks.build("siamese", options={"embedding": 8})
    cfg = models.config(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=4)
    model = models.build(cfg, task.head, task.outputs)
    rng = np.random.default_rng(4)
    images = rng.normal(size=(120, 16, 16, 1)).astype(np.float32)
    rows = {"image": images, "label": rng.integers(0, 2, 120)}
    batch = tasks.task_arrays(task, rows, np.arange(120), seed=0)
    variables = model.init(jax.random.PRNGKey(0), images[:2], train=False)
    emb = tasks.run_model(task, lambda x: model.apply(variables, x, train=False), batch)
    per = {k: np.asarray(v) for k, v in task.metrics(emb, batch).items()}
    auc = task.summarize(per)["auc"]
    assert task.primary == "auc" and abs(auc - 0.5) < 0.12
    np.testing.assert_array_equal(per["same"], batch["same"])


def test_siamese_metrics_distance_same_and_auc():
    task = tasks.build("siamese")
    emb = jnp.array([[[0.0, 0.0], [0.1, 0.0]], [[0.0, 0.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.5]]])
    batch = {"same": jnp.array([1.0, 0.0, 1.0])}
    per = {k: np.asarray(v) for k, v in task.metrics(emb, batch).items()}
    np.testing.assert_allclose(per["distance"], [0.1, 5.0, 0.5], rtol=1e-6)
    assert task.summarize(per) == pytest.approx({"auc": 1.0, "distance": 5.6 / 3, "same": 2 / 3})


def test_beats_respects_the_metric_direction():
    assert health.beats(3.0, {"mean": 5.0, "centre": 4.0}, "center_error")
    assert not health.beats(4.5, {"mean": 5.0, "centre": 4.0}, "center_error")
    assert health.beats(0.8, {"chance": 0.5, "random": 0.7}, "auc")
    assert not health.beats(0.6, {"chance": 0.5, "random": 0.7}, "auc")
    assert not health.beats(math.nan, {"chance": 0.5}, "auc")
    assert not health.beats(1.0, {"mean": 1.0}, "mse")  # a tie does not beat it
    assert health.best_baseline({"mean": 5.0, "centre": 4.0}, "center_error") == ("centre", 4.0)
    assert health.best_baseline({"chance": 0.5, "random": 0.7}, "auc") == ("random", 0.7)
