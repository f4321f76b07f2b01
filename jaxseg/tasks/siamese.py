"""Siamese contrastive pretext (method 4): a shared-weight encoder + projection (model head
'pooled') embeds both images of a pair; the margin loss y·d² + (1−y)·max(0, m − d)² pulls
same-label pairs together and pushes others at least ``margin`` apart. One branch, i.e. the
encoder, then transfers into the segmenter.

Pairs come from the rows of one split (never across splits): ``pair_by='label'`` pairs whole
images by class; ``pair_by='side'`` pairs crops around the object in the left and right half of
each image (method 4's same-side / other-side kidneys), labelled by side.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg import losses
from jaxseg.data import pairs
from jaxseg.tasks import baselines
from jaxseg.tasks.base import DEFAULT_INFO, Apply, Batch, DataInfo, Task, carrying

PAIR_BY = ("label", "side")


def siamese(
    loss: str = "",
    info: DataInfo = DEFAULT_INFO,
    margin: float = 1.0,
    pair_by: str = "label",
    same_fraction: float = 0.5,
    pairs_per_item: int = 1,
    embedding: int = 16,
) -> Task:
    """Contrastive pairs task with ``embedding``-dimensional outputs.

    Metrics per pair: the embedding 'distance' d and the label 'same' (1 for a same pair);
    over a split: 'auc', the ROC-AUC of d for same vs different pairs (the primary: 0.5 for a
    distance that ignores the pairing, 1 when every same pair is the closer). A fixed threshold
    (the former 'pair_accuracy', d < margin/2) cannot tell learning from none: with every
    distance below it the accuracy is the share of same pairs.
    """
    del info
    if loss not in ("", "contrastive"):
        raise ValueError(f"task 'siamese' has loss 'contrastive' only, got {loss!r}")
    if pair_by not in PAIR_BY:
        raise ValueError(f"siamese pair_by={pair_by!r} is unknown; use one of {PAIR_BY}")
    if margin <= 0 or pairs_per_item < 1 or embedding < 1:
        raise ValueError(
            f"siamese needs margin > 0, pairs_per_item >= 1, embedding >= 1; got {margin}, "
            f"{pairs_per_item}, {embedding}"
        )

    def examples(rows: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        if pair_by == "side":
            items, labels, _ = pairs.side_crops(rows["image"], rows["mask"])
        else:
            items, labels = rows["image"], rows["label"]
        a, b, same = pairs.sample_pairs(labels, pairs_per_item * len(labels), same_fraction, seed)
        return {"image_a": items[a], "image_b": items[b], "same": same}

    def forward(apply: Apply, batch: Batch) -> jax.Array:
        """Both images in one call (one set of BatchNorm statistics): [B,2,E]."""
        n = batch["image_a"].shape[0]
        emb = apply(jnp.concatenate([batch["image_a"], batch["image_b"]], axis=0))
        return jnp.stack([emb[:n], emb[n:]], axis=1)

    def per_example(emb: jax.Array, batch: Batch) -> jax.Array:
        return losses.contrastive(emb[:, 0], emb[:, 1], batch["same"], margin)

    def metrics(emb: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        d = losses.pair_distance(emb[:, 0], emb[:, 1])
        return {"distance": d, "same": batch["same"].astype(jnp.float32)}

    def summarize(per_example: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The split's ROC-AUC (no per-pair mean) beside the mean distance and share of same."""
        distance, same = per_example["distance"], per_example["same"]
        auc = baselines.pair_auc(distance, same)
        return {"auc": auc, "distance": float(np.mean(distance)), "same": float(np.mean(same))}

    return Task(
        name="siamese",
        keys=("image_a", "image_b", "same"),
        needs=("image", "mask") if pair_by == "side" else ("image", "label"),
        head="pooled",
        outputs=embedding,
        loss=per_example,
        metrics=metrics,
        **carrying("mask" if pair_by == "side" else "label"),
        primary="auc",
        examples=examples,
        forward=forward,
        summarize=summarize,
    )
