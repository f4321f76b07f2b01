"""Tests for the pretext tasks (classification, multilabel, autoencoder, box → mask, siamese),
their losses on hand-computed values, the pair sampler and per-side crops."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import losses, tasks
from jaxseg.data import pairs
from jaxseg.tasks.box_masks import mask_dice, rasterise, true_masks

# --------------------------------------------------------------------------- losses


def test_contrastive_hand_computed():
    a = jnp.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    b = jnp.array([[3.0, 4.0], [0.3, 0.4], [0.3, 0.4], [3.0, 4.0]])  # d = 5, 0.5, 0.5, 5
    same = jnp.array([1.0, 1.0, 0.0, 0.0])
    # same: d²; different: max(0, 1 - d)²
    np.testing.assert_allclose(losses.contrastive(a, b, same), [25.0, 0.25, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        losses.contrastive(a, b, same, margin=6.0), [25.0, 0.25, 5.5**2, 1.0], rtol=1e-6
    )


def test_pair_distance_gradient_is_finite_at_zero():
    import jax

    g = jax.grad(lambda x: losses.contrastive(x, x, jnp.zeros(1)).sum())(jnp.ones((1, 3)))
    assert np.all(np.isfinite(g))


def test_weighted_bce_hand_computed():
    logits = jnp.zeros((1, 1, 2, 1))
    mask = jnp.array([1.0, 0.0]).reshape(1, 1, 2, 1)
    # both pixels: -log 0.5 = log 2; foreground weighted 3: (3 log 2 + log 2) / 2
    np.testing.assert_allclose(losses.weighted_bce(logits, mask, 3.0), [2 * np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(losses.weighted_bce(logits, mask), losses.bce(logits, mask))


def test_bce_dice_weights_shift_linearly():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 4, 4, 1)), jnp.float32)
    mask = jnp.asarray(rng.random((2, 4, 4, 1)) < 0.4, jnp.float32)
    b, d = losses.bce(logits, mask), losses.dice_loss(logits, mask)
    for t, (wb, wd) in [(0.0, (0.6, 0.4)), (0.5, (0.5, 0.5)), (1.0, (0.4, 0.6)), (2.0, (0.4, 0.6))]:
        np.testing.assert_allclose(
            losses.bce_dice(logits, mask, jnp.float32(t)), wb * b + wd * d, rtol=1e-5
        )
    end = losses.bce_dice(logits, mask, jnp.float32(1.0), end=(0.0, 1.0))
    np.testing.assert_allclose(end, d, rtol=1e-5)


def test_softmax_ce_and_dice_ce():
    # one pixel of class 1 (of 2 foreground classes), logits favour it: background first
    logits = jnp.log(jnp.array([0.2, 0.5, 0.3])).reshape(1, 1, 1, 3)
    mask = jnp.array([1.0, 0.0]).reshape(1, 1, 1, 2)
    np.testing.assert_allclose(losses.softmax_ce(logits, mask), [-np.log(0.5)], rtol=1e-5)
    # soft Dice over foreground probs (0.5, 0.3) vs (1, 0): (2·0.5 + 1) / (0.8 + 1 + 1)
    dice = (2 * 0.5 + 1) / (0.8 + 1 + 1)
    np.testing.assert_allclose(losses.dice_ce(logits, mask), [1 - dice - np.log(0.5)], rtol=1e-5)
    background = jnp.zeros((1, 1, 1, 2))  # no class set: the target is the background channel
    np.testing.assert_allclose(losses.softmax_ce(logits, background), [-np.log(0.2)], rtol=1e-5)


# --------------------------------------------------------------------------- tasks


def test_classification_loss_and_accuracy():
    task = tasks.build("classification", info=tasks.DataInfo(num_labels=3))
    assert (task.head, task.outputs, task.primary) == ("pooled", 3, "accuracy")
    logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    batch = {"label": jnp.array([0, 1])}
    np.testing.assert_allclose(task.loss(logits, batch), [-np.log(0.7), -np.log(0.1)], rtol=1e-5)
    np.testing.assert_array_equal(task.metrics(logits, batch)["accuracy"], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least 2 classes"):
        tasks.build("classification")


def test_multilabel_targets_from_mask_channels():
    task = tasks.build("multilabel", info=tasks.DataInfo(mask_channels=3))
    mask = np.zeros((2, 4, 4, 3), np.float32)
    mask[0, 1, 1, 0] = mask[0, 2, 2, 2] = mask[1, 0, 0, 1] = 1
    rows = {"image": np.zeros((2, 4, 4, 1), np.float32), "mask": mask}
    derived = tasks.task_arrays(task, rows, np.arange(2), 0)
    np.testing.assert_array_equal(derived["labels"], [[1, 0, 1], [0, 1, 0]])
    logits = jnp.array([[5.0, -5.0, -5.0], [-5.0, 5.0, -5.0]])
    m = task.metrics(logits, derived)
    np.testing.assert_allclose(m["exact_match"], [0.0, 1.0])
    np.testing.assert_allclose(m["label_accuracy"], [2 / 3, 1.0])


def test_autoencoder_mse_and_psnr():
    task = tasks.build("autoencoder", info=tasks.DataInfo(image_channels=1))
    assert (task.head, task.outputs) == ("reconstruction", 1)
    image = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 2, 2, 1)
    out = image + 0.5
    m = task.metrics(out, {"image": image})
    np.testing.assert_allclose(m["mse"], [0.25])
    np.testing.assert_allclose(m["psnr"], [10 * np.log10(9 / 0.25)], rtol=1e-5)


def test_rasterise_boxes_2d_3d_and_per_class():
    box = np.array([[1, 0, 2, 1], [0, 0, 0, 0]], np.float32)  # (x0, y0, x1, y1)
    masks = rasterise(box, np.array([True, False]), (3, 4))
    expected = np.zeros((3, 4), np.float32)
    expected[0:2, 1:3] = 1  # rows y 0..1, cols x 1..2
    np.testing.assert_array_equal(masks[0, ..., 0], expected)
    assert masks[1].sum() == 0  # no object: empty
    per_class = rasterise(box, np.array([True, True]), (3, 4), np.array([2, 0]), 3)
    assert per_class.shape == (2, 3, 4, 3)
    np.testing.assert_array_equal(per_class[0, ..., 2], expected)
    assert per_class[0, ..., :2].sum() == 0 and per_class[1, 0, 0, 0] == 1
    vol = rasterise(np.array([[1, 2, 0, 1, 2, 1]], np.float32), np.array([True]), (2, 3, 4))
    ref = np.zeros((2, 3, 4))
    ref[0:2, 2:3, 1:2] = 1  # z 0..1, y 2, x 1
    np.testing.assert_array_equal(vol[0, ..., 0], ref)
    with pytest.raises(ValueError, match="do not fit"):
        rasterise(box, np.array([True, True]), (2, 3, 4))


def test_box_segmentation_replaces_masks_with_boxes():
    task = tasks.build("box_segmentation", options={"per_class": True}, info=tasks.DataInfo(1, 2))
    assert task.outputs == 2 and task.needs == ("image", "box", "has_object", "label")
    rows = {
        "image": np.zeros((1, 4, 4, 1), np.float32),
        "box": np.array([[0, 0, 1, 1]], np.float32),
        "has_object": np.array([True]),
        "label": np.array([1]),
        "mask": np.zeros((1, 4, 4, 1), np.float32),
    }
    derived = tasks.task_arrays(task, rows, np.arange(1), 0)
    assert derived["mask"].shape == (1, 4, 4, 2) and derived["mask"][0, :2, :2, 1].all()
    assert derived["mask"].sum() == 4


def test_box_net_is_scored_against_the_expert_masks_as_well():
    """A box net's 'dice' is against the boxes; method 3's box net scored 0.54 there and 0.48
    against the masks its fine-tuned dependants are scored on, so 'mask_dice' reports that."""
    task = tasks.build("box_segmentation")
    assert task.keys[-1] == "true_mask"
    mask = np.zeros((3, 4, 4, 1), np.float32)
    mask[:2, 1:3, 1:3] = 1  # a 2×2 lesion whose box is itself
    mask[1, 1, 1] = 0  # an L: its box (2×2) has 4 pixels, the mask 3
    rows = {
        "image": np.zeros((3, 4, 4, 1), np.float32),
        "box": np.array([[1, 1, 2, 2]] * 2 + [[0, 0, 0, 0]], np.float32),
        "has_object": np.array([True, True, False]),
        "mask": mask,
        "has_mask": np.array([True, True, False]),
    }
    batch = tasks.task_arrays(task, rows, np.arange(3), 0)
    assert batch["true_mask"].dtype == np.int8 and (batch["true_mask"][2] == -1).all()
    logits = np.where(batch["mask"] > 0.5, 5.0, -5.0)  # predicts the boxes exactly
    out = task.metrics(jnp.asarray(logits), {k: jnp.asarray(v) for k, v in batch.items()})
    np.testing.assert_allclose(out["dice"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(out["mask_dice"][:2], [1.0, 2 * 3 / (4 + 3)], rtol=1e-6)
    assert np.isnan(out["mask_dice"][2])
    assert (true_masks({"image": rows["image"]}) == -1).all()  # a set without masks
    two = np.zeros((1, 2, 2, 2), np.float32)
    two[0, 0, 0, 1] = two[0, 1, 1, 0] = 1  # classes merged
    np.testing.assert_array_equal(true_masks({"image": two[..., :1], "mask": two})[0, ..., 0],
                                  [[1, 0], [0, 1]])  # fmt: skip
    prediction = jnp.zeros((1, 2, 2, 2), bool).at[0, 0, 0, 0].set(True)
    np.testing.assert_allclose(mask_dice(prediction, jnp.asarray(true_masks({
        "image": two[..., :1], "mask": two}))), [2 / 3])  # fmt: skip


def test_siamese_pairs_forward_and_metrics():
    task = tasks.build("siamese", options={"margin": 2.0, "same_fraction": 0.5})
    assert task.keys == ("image_a", "image_b", "same") and task.head == "pooled"
    labels = np.array([0, 0, 1, 1, 2, 2])
    rows = {"image": np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1), "label": labels}
    derived = tasks.task_arrays(task, rows, np.arange(6), 3)
    a, b = derived["image_a"].ravel().astype(int), derived["image_b"].ravel().astype(int)
    np.testing.assert_array_equal(derived["same"], labels[a] == labels[b])
    # forward embeds a and b in one call and splits them back: [B, 2, E]
    calls = []

    def apply(x):
        calls.append(x.shape)
        return jnp.concatenate([x.reshape(len(x), 1), jnp.zeros((len(x), 1))], axis=1)

    emb = tasks.run_model(task, apply, {k: jnp.asarray(v) for k, v in derived.items()})
    assert calls == [(12, 1, 1, 1)] and emb.shape == (6, 2, 2)
    np.testing.assert_array_equal(emb[:, 0, 0], a)
    np.testing.assert_array_equal(emb[:, 1, 0], b)
    m = task.metrics(emb, derived)
    np.testing.assert_allclose(m["distance"], np.abs(a - b))
    np.testing.assert_array_equal(m["same"], labels[a] == labels[b])
    assert task.primary == "auc"


def test_task_options_are_checked():
    with pytest.raises(ValueError, match=r"no options \['margn'\].*margin"):
        tasks.build("siamese", options={"margn": 1.0})
    with pytest.raises(ValueError, match="pair_by"):
        tasks.build("siamese", options={"pair_by": "colour"})


# --------------------------------------------------------------------------- pairs


def test_sample_pairs_ratio_and_partners():
    labels = np.repeat(np.arange(4), 25)
    a, b, same = pairs.sample_pairs(labels, 2000, 0.3, seed=0)
    assert np.all(a != b)
    np.testing.assert_array_equal(same, labels[a] == labels[b])
    assert abs(same.mean() - 0.3) < 0.04
    assert np.bincount(a, minlength=100).min() >= 20  # anchors cycle through every item
    again = pairs.sample_pairs(labels, 2000, 0.3, seed=0)
    np.testing.assert_array_equal(again[1], b)


def test_sample_pairs_edge_cases():
    a, _, same = pairs.sample_pairs(np.array([0, 1, 1]), 30, 1.0, 0)
    # item 0 has no same-label partner: it pairs with another label
    assert np.all(same[a == 0] == 0) and np.all(same[a != 0] == 1)
    with pytest.raises(ValueError, match="2 labels"):
        pairs.sample_pairs(np.zeros(4, int), 4, 0.5, 0)
    with pytest.raises(ValueError, match="same_fraction"):
        pairs.sample_pairs(np.arange(4), 4, 1.5, 0)


def test_side_crops_centre_on_each_half():
    image = np.arange(8 * 16, dtype=np.float32).reshape(1, 8, 16, 1)
    mask = np.zeros((1, 8, 16, 1), np.float32)
    mask[0, 2, 3] = 1  # left object at (row 2, col 3)
    mask[0, 5, 12] = 1  # right object at (row 5, col 12)
    crops, side, item = pairs.side_crops(image, mask)
    assert crops.shape == (2, 4, 8, 1)
    np.testing.assert_array_equal(side, [0, 1])
    np.testing.assert_array_equal(item, [0, 0])
    # left crop centred at (2, 3): rows 0..3, cols 0..7 (clipped at 0);
    # right crop centred at (5, 12): rows 3..6, cols 8..15
    np.testing.assert_array_equal(crops[0], image[0, 0:4, 0:8])
    np.testing.assert_array_equal(crops[1], image[0, 3:7, 8:16])
    with pytest.raises(ValueError, match="does not fit"):
        pairs.side_crops(image, mask, (9, 4))
