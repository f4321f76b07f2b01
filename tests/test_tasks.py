"""Tests for jaxseg.tasks (localization, segmentation, registry, Task.check) and
jaxseg.train.optimizers (names, schedules, errors)."""

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxseg import tasks
from jaxseg.tasks.localization import to_pixels
from jaxseg.train import optimizers

# --------------------------------------------------------------------------- localization


def _loc_batch():
    # Images 16 high × 32 wide: (x, y) = (W, H) scale (32, 16).
    center = np.array([[8.0, 4.0], [16.0, 8.0], [0.0, 16.0]], np.float32)
    return {"image": np.zeros((3, 16, 32, 1), np.float32), "center": center}


def test_localization_zero_loss_at_normalised_centre():
    task = tasks.build("localization")
    batch = _loc_batch()
    normalised = np.array([[-0.5, -0.5], [0.0, 0.0], [-1.0, 1.0]], np.float32)  # by hand
    loss = np.asarray(task.loss(jnp.asarray(normalised), batch))
    assert loss.shape == (3,)
    np.testing.assert_allclose(loss, 0.0, atol=1e-12)
    # Head output 0 (the image centre): MSE of the normalised coordinates per example.
    loss0 = np.asarray(task.loss(jnp.zeros((3, 2)), batch))
    np.testing.assert_allclose(loss0, (normalised**2).mean(axis=1), rtol=1e-6)


def test_localization_metrics_in_pixels():
    task = tasks.build("localization")
    batch = _loc_batch()
    outputs = np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0]], np.float32)
    pixels = np.array([[16.0, 8.0], [32.0, 0.0], [0.0, 16.0]])  # (o + 1) / 2 · (W, H)
    np.testing.assert_allclose(to_pixels(outputs, batch), pixels, rtol=1e-6)
    err = np.asarray(task.metrics(jnp.asarray(outputs), batch)["center_error"])
    c = batch["center"]
    ref = np.hypot(pixels[:, 0] - c[:, 0], pixels[:, 1] - c[:, 1])
    np.testing.assert_allclose(err, ref, rtol=1e-6)
    np.testing.assert_allclose(err, [np.hypot(8, 4), np.hypot(16, 8), 0.0], rtol=1e-6)


def test_localization_head_option_picks_the_models_head_kind():
    assert tasks.build("localization", options={"head": "pooled"}).head == "pooled"
    with pytest.raises(ValueError, match="head='conv' must be one of"):
        tasks.build("localization", options={"head": "conv"})


def test_localization_task_fields_and_usable():
    task = tasks.build("localization")
    assert (task.name, task.head, task.outputs, task.primary) == (
        "localization",
        "vector",
        2,
        "center_error",
    )
    assert set(task.keys) == {"image", "center", "has_object"}
    usable = task.usable({"has_object": np.array([1, 0, 1, 0], np.uint8)})
    assert usable.dtype == bool
    np.testing.assert_array_equal(usable, [True, False, True, False])


def test_localization_other_loss():
    task = tasks.build("localization", loss="bce")
    batch = _loc_batch()
    # bce on normalised targets: at output 0, every element contributes log 2 - 0 = log 2.
    np.testing.assert_allclose(task.loss(jnp.zeros((3, 2)), batch), np.log(2), rtol=1e-6)


# --------------------------------------------------------------------------- segmentation


def _seg_batch(k: int = 2):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 8, 8, k)).astype(np.float32)
    mask = (rng.random((3, 8, 8, k)) < 0.3).astype(np.float32)
    return logits, {"image": np.zeros((3, 8, 8, 1), np.float32), "mask": mask}


def test_segmentation_defaults_to_neg_log_dice():
    task = tasks.build("segmentation", num_classes=2)
    logits, batch = _seg_batch()
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    p, m = p.reshape(3, -1), batch["mask"].reshape(3, -1)
    dice = (2 * (p * m).sum(1) + 1) / (p.sum(1) + m.sum(1) + 1)
    np.testing.assert_allclose(task.loss(logits, batch), -np.log(dice), rtol=1e-5)
    assert (task.name, task.head, task.outputs, task.primary) == (
        "segmentation",
        "pixels",
        2,
        "dice",
    )
    assert set(task.keys) == {"image", "mask"}


def test_segmentation_bce_and_metrics():
    task = tasks.build("segmentation", loss="bce", num_classes=2)
    logits, batch = _seg_batch()
    z, y = logits.astype(np.float64), batch["mask"]
    ref = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).reshape(3, -1).mean(1)
    np.testing.assert_allclose(task.loss(logits, batch), ref, rtol=1e-5)
    perfect = np.where(batch["mask"] > 0, 9.0, -9.0)
    np.testing.assert_allclose(task.metrics(perfect, batch)["dice"], 1.0)
    usable = task.usable({"image": np.zeros((5, 8, 8, 1))})
    np.testing.assert_array_equal(usable, np.ones(5, bool))


def test_check_names_missing_keys():
    task = tasks.build("localization")
    task.check({"image": 0, "center": 0, "has_object": 0, "extra": 0}, "fundus")  # no error
    with pytest.raises(ValueError) as err:
        task.check({"image": 0, "mask": 0}, "busi")
    msg = str(err.value)
    for part in ("'localization'", "'busi'", "'center'", "'has_object'"):
        assert part in msg
    assert "'image'" not in msg.split("lacks")[0]  # present keys are not reported missing


def test_unknown_task_and_loss():
    with pytest.raises(ValueError, match="denoising") as err:
        tasks.build("denoising")
    assert "localization" in str(err.value) and "segmentation" in str(err.value)
    with pytest.raises(ValueError, match="focal"):
        tasks.build("segmentation", loss="focal")
    assert {"localization", "segmentation", "siamese", "autoencoder"} <= set(tasks.TASKS)


# --------------------------------------------------------------------------- optimizers


def _opt_cfg(**kw) -> ml_collections.ConfigDict:
    cfg = dict(
        name="adam",
        learning_rate=0.1,
        schedule="constant",
        warmup_steps=0,
        weight_decay=0.0,
        momentum=0.0,
    )
    cfg.update(kw)
    return ml_collections.ConfigDict(cfg)


def _updates(tx, steps: int = 1, p: float = 2.0):
    params = {"w": jnp.full((3,), p)}
    state = tx.init(params)
    out = []
    for _ in range(steps):
        upd, state = tx.update({"w": jnp.ones(3)}, state, params)
        out.append(float(upd["w"][0]))
    return out


@pytest.mark.parametrize(
    "name,kw,first",
    [
        ("adam", {}, -0.1),  # m̂ / sqrt(v̂) = 1 on the first step
        ("adamw", {"weight_decay": 0.1}, -0.1 * (1 + 0.1 * 2.0)),  # + decay · param
        ("rmsprop", {}, -0.1 / math.sqrt(0.1)),  # ν = (1 - 0.9) · g²
        ("sgd", {}, -0.1),
    ],
)
def test_optimizer_first_step(name, kw, first):
    tx = optimizers.build(_opt_cfg(name=name, **kw), steps=10)
    (u,) = _updates(tx)
    assert u == pytest.approx(first, rel=1e-4)


def test_sgd_momentum():
    plain = _updates(optimizers.build(_opt_cfg(name="sgd"), 10), steps=2)
    heavy = _updates(optimizers.build(_opt_cfg(name="sgd", momentum=0.9), 10), steps=2)
    assert plain == pytest.approx([-0.1, -0.1])
    assert heavy == pytest.approx([-0.1, -0.19])


def _torch_trajectory(name: str, grads, wd: float, momentum: float, lr: float = 0.1, p=1.0):
    """Parameters after each step of PyTorch's documented update with coupled L2 (``g + wd·p``
    enters the moments), in float64: Adam (β 0.9/0.999), RMSprop (α 0.9), SGD."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        g = g + wd * p
        if name == "adam":
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            step = m / (1 - 0.9**t) / (math.sqrt(v / (1 - 0.999**t)) + 1e-8)
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            m = step = momentum * m + g / math.sqrt(v)
        else:
            m = step = momentum * m + g
        p -= lr * step
        out.append(p)
    return out


def _trajectory(tx, grads, p: float = 1.0):
    params = {"w": jnp.array([p])}
    state = tx.init(params)
    out = []
    for g in grads:
        upd, state = tx.update({"w": jnp.array([g])}, state, params)
        params = optax.apply_updates(params, upd)
        out.append(float(params["w"][0]))
    return out


@pytest.mark.parametrize("name,momentum", [("adam", 0.0), ("rmsprop", 0.5), ("sgd", 0.9)])
def test_weight_decay_is_coupled_l2_as_in_torch(name, momentum):
    grads = [1.0, -1.0, 0.5]
    cfg = _opt_cfg(name=name, weight_decay=0.5, momentum=momentum)
    ours = _trajectory(optimizers.build(cfg, 10), grads)
    assert ours == pytest.approx(_torch_trajectory(name, grads, 0.5, momentum), rel=1e-5)
    assert ours != pytest.approx(_torch_trajectory(name, grads, 0.0, momentum), rel=1e-3)
    if name == "adam":  # by hand: g₁ = 1.5 -> p = 0.9; g₂ = -1 + 0.45, m̂ = 0.08/0.19, v̂ = …
        assert ours[1] - ours[0] == pytest.approx(-0.037278, rel=1e-4)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(name="adam", momentum=0.9), "optimizer.momentum=0.9 has no effect with adam"),
        (dict(name="adamw", momentum=0.5), "optimizer.momentum=0.5 has no effect with adamw"),
        (dict(name="sgd", momentum=1.0), r"optimizer.momentum=1.0 must be in \[0, 1\)"),
        (dict(name="adamw", weight_decay=-0.1), "optimizer.weight_decay=-0.1 must be >= 0"),
    ],
)
def test_settings_without_effect_or_out_of_range_are_refused(kw, match):
    with pytest.raises(ValueError, match=f"^{match}"):
        optimizers.build(_opt_cfg(**kw), 10)


def test_constant_schedule():
    s = optimizers.schedule(_opt_cfg(learning_rate=0.01), steps=50)
    for step in (0, 25, 50, 1000):
        assert float(s(step)) == pytest.approx(0.01)


def test_cosine_schedule_with_warmup():
    s = optimizers.schedule(_opt_cfg(schedule="cosine", learning_rate=0.1, warmup_steps=2), 10)
    assert float(s(0)) == pytest.approx(0.0)
    assert float(s(1)) == pytest.approx(0.05)
    assert float(s(2)) == pytest.approx(0.1)
    assert float(s(6)) == pytest.approx(0.05, abs=1e-7)  # halfway through the decay
    assert float(s(10)) == pytest.approx(0.0, abs=1e-9)
    # The optimizer follows the schedule: the first update is zero during warm-up.
    tx = optimizers.build(_opt_cfg(name="sgd", schedule="cosine", warmup_steps=2), 10)
    assert _updates(tx, steps=3) == pytest.approx([0.0, -0.05, -0.1])


def test_cosine_schedule_without_warmup_and_warmup_longer_than_run():
    s = optimizers.schedule(_opt_cfg(schedule="cosine", learning_rate=0.1, warmup_steps=0), 8)
    assert float(s(0)) == pytest.approx(0.1)
    assert float(s(4)) == pytest.approx(0.05, abs=1e-7)
    assert float(s(8)) == pytest.approx(0.0, abs=1e-9)
    s = optimizers.schedule(_opt_cfg(schedule="cosine", learning_rate=0.1, warmup_steps=50), 5)
    assert float(s(4)) == pytest.approx(0.1)  # warm-up capped at steps - 1


def test_unknown_optimizer_and_schedule():
    with pytest.raises(ValueError, match="lamb") as err:
        optimizers.build(_opt_cfg(name="lamb"), 10)
    for name in optimizers.OPTIMIZERS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="linear"):
        optimizers.schedule(_opt_cfg(schedule="linear"), 10)
    with pytest.raises(ValueError, match="linear"):
        optimizers.build(_opt_cfg(schedule="linear"), 10)


def test_tasks_declare_labels_and_use_exactly_the_examples_carrying_them():
    arrays = {
        "image": np.zeros((4, 8, 8, 1)),
        "has_object": np.array([True, True, False, True]),
        "has_center": np.array([True, False, False, True]),
        "has_mask": np.array([True, False, False, False]),
        "has_label": np.array([False, True, True, True]),
    }
    expect = {
        "localization": ("center", [True, False, False, True]),
        "segmentation": ("mask", [True, False, False, False]),
        "classification": ("label", [False, True, True, True]),
    }
    for name, (kind, usable) in expect.items():
        task = tasks.build(name, info=tasks.DataInfo(num_labels=2))
        assert task.labels == (kind,)
        np.testing.assert_array_equal(task.usable(arrays), usable)


def test_multilabel_uncertain_labels_ignore_positive_negative():
    rows = {"image": np.zeros((2, 8, 8, 1)), "labels": np.array([[1, -1, 0], [-1, -1, -1]])}
    info = tasks.DataInfo(multi_hot=3)
    task = tasks.build("multilabel", info=info)
    assert task.outputs == 3
    np.testing.assert_array_equal(task.usable(rows), [True, False])
    batch = tasks.task_arrays(task, rows, np.arange(2), seed=0)
    logits = np.array([[5.0, 5.0, -5.0], [0.0, 0.0, 0.0]], np.float32)
    bce = np.log1p(np.exp(-5.0))
    np.testing.assert_allclose(task.loss(logits, batch)[0], bce, rtol=1e-5)  # -1 left out
    np.testing.assert_allclose(task.metrics(-logits, batch)["label_accuracy"][0], 0.0)
    for uncertain, target in (("positive", 1.0), ("negative", 0.0)):
        task = tasks.build("multilabel", info=info, options={"uncertain": uncertain})
        batch = tasks.task_arrays(task, rows, np.arange(2), seed=0)
        np.testing.assert_array_equal(batch["labels"][0], [1, target, 0])
    with pytest.raises(ValueError, match="uncertain='maybe'"):
        tasks.build("multilabel", options={"uncertain": "maybe"})


def test_box_segmentation_draws_every_box_of_an_image():
    from jaxseg.tasks.box_masks import rasterise_all

    boxes = np.full((2, 2, 4), np.nan, np.float32)
    boxes[0] = [[0, 0, 1, 1], [5, 6, 7, 7]]
    masks = rasterise_all(boxes, (8, 8))
    assert masks.shape == (2, 8, 8, 1) and masks[1].sum() == 0
    assert masks[0, :2, :2].all() and masks[0, 6:8, 5:8].all() and masks[0].sum() == 4 + 6
