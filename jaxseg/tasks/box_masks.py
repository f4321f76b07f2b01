"""Box → mask segmentation (method 3's step 2): a localization set's boxes are rasterised into
filled masks and segmented like masks, one channel per box class or one for all. Boxes are
(x0, y0, x1, y1) or (x0, y0, z0, x1, y1, z1) inclusive pixel extents (x along W, y along H, z
along D), rounded to whole pixels; images without an object get an empty mask.

The box net's metrics are against the boxes (its target). Where an example also has an expert
mask, ``mask_dice`` scores the same prediction against that mask: how well the box net
segments before it sees any mask, the figure its fine-tuned dependants are compared with."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg.data import labels as labels_lib
from jaxseg.eval.metrics import dice_at
from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, carrying
from jaxseg.tasks.segmentation import segmentation


def rasterise(
    box: np.ndarray,
    has_object: np.ndarray,
    spatial: tuple[int, ...],
    label: np.ndarray | None = None,
    num_labels: int = 1,
) -> np.ndarray:
    """Filled box masks float32 [N,*spatial,K]: K = 1, or ``num_labels`` with the box drawn in
    channel ``label[i]`` when ``label`` is given."""
    R = len(spatial)
    if box.shape[1:] != (2 * R,):
        raise ValueError(f"boxes of shape {box.shape} do not fit {R}-D images; need [N,{2 * R}]")
    lo, hi = np.round(box[:, :R]).astype(int), np.round(box[:, R:]).astype(int)
    inside = has_object.astype(bool).reshape(-1, *([1] * R))
    for axis, size in enumerate(spatial):  # array axis `axis` holds coordinate R-1-axis
        c = R - 1 - axis
        grid = np.arange(size).reshape([1] + [size if a == axis else 1 for a in range(R)])
        lo_c = lo[:, c].reshape(-1, *([1] * R))
        hi_c = hi[:, c].reshape(-1, *([1] * R))
        inside = inside & (grid >= lo_c) & (grid <= hi_c)
    if label is None:
        return inside[..., None].astype(np.float32)
    onehot = np.eye(num_labels, dtype=bool)[label].reshape(-1, *([1] * R), num_labels)
    return (inside[..., None] & onehot).astype(np.float32)


def rasterise_all(
    boxes: np.ndarray,
    spatial: tuple[int, ...],
    label: np.ndarray | None = None,
    num_labels: int = 1,
) -> np.ndarray:
    """The union of ``rasterise`` over every box of [N,M,2R] (rows of NaN: no box) ->
    float32 [N,*spatial,K]."""
    present = np.isfinite(boxes).all(axis=-1)  # [N,M]
    filled = np.nan_to_num(boxes)
    masks = [
        rasterise(filled[:, m], present[:, m], spatial, label, num_labels)
        for m in range(boxes.shape[1])
    ]
    return np.maximum.reduce(masks).astype(np.float32)


def true_masks(rows: dict[str, np.ndarray]) -> np.ndarray:
    """int8 [N,*spatial,1]: each row's expert mask, classes merged (1 foreground, 0 not), or -1
    everywhere for a row without one (no ``mask`` key, or its ``has_mask`` flag False)."""
    spatial = rows["image"].shape[:-1]
    if "mask" not in rows:
        return np.full((*spatial, 1), -1, np.int8)
    merged = (np.asarray(rows["mask"]) > 0.5).any(axis=-1, keepdims=True).astype(np.int8)
    has = labels_lib.available(rows, "mask").reshape(-1, *([1] * (merged.ndim - 1)))
    return np.where(has, merged, np.int8(-1))


def mask_dice(prediction: jax.Array, truth: jax.Array) -> jax.Array:
    """[B]: Dice of a bool prediction [B,...,K] (classes merged) against ``true_masks`` rows
    [B,...,1]; NaN for a row without a mask (left out of the means)."""
    merged = jnp.any(prediction, axis=-1, keepdims=True)
    known = jnp.all((truth >= 0).reshape(truth.shape[0], -1), axis=1)
    dice = dice_at(jnp.where(merged, 1.0, -1.0), (truth > 0).astype(jnp.float32))
    return jnp.where(known, dice, jnp.nan)


def box_segmentation(
    loss: str = "", info: DataInfo = DEFAULT_INFO, per_class: bool = False, **options
) -> Task:
    """Segmentation of rasterised boxes; ``per_class`` draws each box in its ``label``'s
    channel (``info.num_labels`` channels), else one channel. Other options as segmentation.
    Metrics: segmentation's against the boxes, plus ``mask_dice`` against the expert masks
    (batch key ``true_mask``, see ``true_masks``)."""
    channels = info.num_labels if per_class else 1
    base = segmentation(
        loss, dataclasses.replace(info, mask_channels=channels), name="box_segmentation",
        **options,
    )  # fmt: skip

    def examples(rows: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        del seed
        spatial = rows["image"].shape[1:-1]
        label = rows["label"] if per_class else None
        boxes = rows.get("boxes")
        if boxes is None:
            boxes = np.where(rows["has_object"][:, None], rows["box"], np.nan)[:, None]
        mask = rasterise_all(boxes, spatial, label, info.num_labels)
        return {**rows, "mask": mask, "true_mask": true_masks(rows)}

    def metrics(outputs, batch: Batch) -> dict[str, jax.Array]:
        out = base.metrics(outputs, batch)
        if "true_mask" in batch:  # a batch of the task's examples (not raw dataset rows)
            out["mask_dice"] = mask_dice(base.predict(outputs), batch["true_mask"])
        return out

    needs = ("image", "box", "has_object") + (("label",) if per_class else ())
    kinds = ("box", "label") if per_class else ("box",)
    declared = carrying(*kinds)

    def usable(arrays) -> np.ndarray:
        """Examples with a box, and masked ones without an object (an empty target)."""
        empty = labels_lib.available(arrays, "mask") & ~np.asarray(arrays["has_object"], bool)
        return declared["usable"](arrays) | empty

    return dataclasses.replace(
        base, keys=(*base.keys, "true_mask"), needs=needs, examples=examples, metrics=metrics,
        labels=kinds, usable=usable,
    )  # fmt: skip
