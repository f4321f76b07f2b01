"""Every task × architecture pairing a study config uses: the model builds for the task's head,
evaluates to per-example metrics, and a few steps of the real train step lower the loss on one
batch. (U-Net-ResNet50 and DeepLabv3-ResNet50 segmentation training is in test_backbones.)"""

import jax
import numpy as np
import optax
import pytest

from jaxseg import data, models, tasks
from jaxseg.train import steps
from jaxseg.train.state import TrainMetrics

# compile quickly: these programs run a handful of steps
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
UNET = dict(depth=2, width=4)
RESNET_UNET = dict(backbone="resnet50", width=4)
DEEPLAB = dict(name="deeplabv3", backbone="resnet50", aspp_width=8)
DENSE = dict(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=2)
PAIRINGS = [
    # (model fields, task, task options, loss, data source)
    (UNET, "localization", {}, "", "fundus"),
    (UNET, "segmentation", {}, "", "fundus"),
    (UNET, "segmentation", {}, "dice_ce", "fundus"),
    (UNET, "classification", {}, "", "fundus"),
    (UNET, "multilabel", {}, "", "fundus"),
    (UNET, "autoencoder", {}, "", "fundus"),
    (UNET, "box_segmentation", {"per_class": True}, "", "fundus"),
    (UNET, "siamese", {"pair_by": "label"}, "", "fundus"),
    (RESNET_UNET, "autoencoder", {}, "", "fundus"),
    (DEEPLAB, "classification", {}, "", "fundus"),
    (DENSE, "siamese", {"pair_by": "side"}, "", "kidneys"),
    ({**DENSE, "reconstruct": True}, "segmentation", {"recon_weight": 0.1}, "bce_dice", "kidneys"),
]


def dataset(source: str) -> data.Dataset:
    if source == "kidneys":  # CT-like volumes 32³ -> windowed, z-scored
        cfg = dict(source=source, num_images=4, image_size=32, seed=0)
        return data.load(_ns(cfg | {"preprocess": "ct_window:110:380,zscore"}))
    return data.load(_ns(dict(source=source, num_images=12, image_size=32, seed=0)))


def _ns(fields: dict):
    import types

    return types.SimpleNamespace(**fields)


def pairing_id(pairing: tuple) -> str:
    fields, name, _, loss, _ = pairing
    parts = [fields.get("name", "unet"), fields.get("backbone", ""), name, loss]
    return "-".join(p for p in parts if p)


@pytest.mark.parametrize(
    "fields,name,options,loss,source", PAIRINGS, ids=[pairing_id(p) for p in PAIRINGS]
)
def test_pairing_trains(fields, name, options, loss, source):
    ds = dataset(source)
    info = tasks.DataInfo.of(ds.arrays, ds.class_names)
    task = tasks.build(name, loss, options=options, info=info)
    arrays = tasks.task_arrays(task, ds.arrays, np.flatnonzero(task.usable(ds.arrays)), seed=0)
    batch = {k: v[:4] for k, v in arrays.items()}
    batch["weight"] = np.ones(4, np.float32)
    model = models.build(models.config(**fields), task.head, task.outputs)
    variables = dict(model.init(jax.random.key(0), batch[task.keys[0]][:1], train=False))
    variables.setdefault("batch_stats", {})
    tx = optax.adam(3e-3)
    state = steps.new_state(variables, tx, seed=0)
    # forward: per-example loss and metrics, one value per example
    out = jax.jit(steps.make_eval_step(model, task)).lower(state, batch).compile(FAST)(state, batch)
    assert all(np.shape(v)[0] == 4 for k, v in out.items() if k != steps.PREDICTION)
    per = {k: np.asarray(v) for k, v in out.items() if k != steps.PREDICTION}
    assert task.primary in steps.summarize(task, per)  # the run's figure (siamese: its AUC)
    step = jax.jit(steps.make_train_step(model, task, tx, None, steps=8))
    step = step.lower(state, TrainMetrics.empty(), batch).compile(FAST)
    losses = []
    for _ in range(8):
        state, acc = step(state, TrainMetrics.empty(), batch)
        losses.append(float(acc.compute()["loss"]))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
