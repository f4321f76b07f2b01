"""Image-level labels as a pretext (method 3's classifier step): one class per image (softmax
cross-entropy over the dataset's class names, e.g. BUSI's normal/benign/malignant), or several
(sigmoid BCE per class; targets = which mask channels hold foreground, unless the dataset has a
multi-hot ``labels`` array)."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, everything


def classification(loss: str = "", info: DataInfo = DEFAULT_INFO) -> Task:
    """Multi-class classification of ``label`` into ``info.num_labels`` classes (loss 'ce').

    Metrics per image: 'accuracy' (1 if the argmax is the label) and 'nll' (the loss)."""
    if loss not in ("", "ce"):
        raise ValueError(f"task 'classification' has loss 'ce' only, got {loss!r}")
    if info.num_labels < 2:
        raise ValueError(
            f"task 'classification' needs at least 2 classes; the dataset has {info.num_labels}"
        )

    def per_example(logits: jax.Array, batch: Batch) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])

    def metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        correct = jnp.argmax(logits, axis=-1) == batch["label"]
        return {"accuracy": correct.astype(jnp.float32), "nll": per_example(logits, batch)}

    return Task(
        name="classification",
        keys=("image", "label"),
        head="pooled",
        outputs=info.num_labels,
        loss=per_example,
        metrics=metrics,
        usable=everything,
        primary="accuracy",
    )


def present_classes(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Multi-hot targets [N,K] float32: the dataset's ``labels`` if given, else 1 for every mask
    channel with at least one foreground pixel."""
    if "labels" in arrays:
        return arrays["labels"].astype(np.float32)
    mask = arrays["mask"]
    return (mask.reshape(len(mask), -1, mask.shape[-1]) > 0.5).any(axis=1).astype(np.float32)


def multilabel(loss: str = "", info: DataInfo = DEFAULT_INFO) -> Task:
    """Multi-label classification, one sigmoid per mask channel (loss 'bce').

    Metrics per image: 'exact_match' (every class right) and 'label_accuracy' (fraction right).
    """
    if loss not in ("", "bce"):
        raise ValueError(f"task 'multilabel' has loss 'bce' only, got {loss!r}")

    def examples(rows: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        del seed
        return {**rows, "labels": present_classes(rows)}

    def per_example(logits: jax.Array, batch: Batch) -> jax.Array:
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, batch["labels"]), axis=-1)

    def metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        right = (logits >= 0) == (batch["labels"] > 0.5)
        return {
            "exact_match": jnp.all(right, axis=-1).astype(jnp.float32),
            "label_accuracy": jnp.mean(right.astype(jnp.float32), axis=-1),
        }

    return Task(
        name="multilabel",
        keys=("image", "labels"),
        needs=("image", "mask"),
        head="pooled",
        outputs=info.mask_channels,
        loss=per_example,
        metrics=metrics,
        usable=everything,
        primary="label_accuracy",
        examples=examples,
    )
