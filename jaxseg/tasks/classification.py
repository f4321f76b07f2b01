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

from jaxseg.tasks.base import DEFAULT_INFO, Batch, DataInfo, Task, carrying


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
        primary="accuracy",
        **carrying("label"),
    )


UNCERTAIN = ("ignore", "positive", "negative")


def present_classes(arrays: Mapping[str, np.ndarray], uncertain: str = "ignore") -> np.ndarray:
    """Multi-hot targets [N,K] float32: the dataset's ``labels`` if given (an uncertain -1 kept
    for 'ignore', made 1 for 'positive', 0 for 'negative', as method 3 relabels), else 1 for
    every mask channel with at least one foreground pixel."""
    if "labels" in arrays:
        targets = arrays["labels"].astype(np.float32)
        if uncertain == "ignore":
            return targets
        return np.where(targets < 0, float(uncertain == "positive"), targets)
    mask = arrays["mask"]
    return (mask.reshape(len(mask), -1, mask.shape[-1]) > 0.5).any(axis=1).astype(np.float32)


def multilabel(loss: str = "", info: DataInfo = DEFAULT_INFO, uncertain: str = "ignore") -> Task:
    """Multi-label classification, one sigmoid per mask channel or per column of the dataset's
    multi-hot ``labels`` (loss 'bce'). ``uncertain`` says what a -1 label is: 'ignore' (left
    out of the loss and the metrics), 'positive' or 'negative'.

    Metrics per image over its known labels: 'exact_match' (every one right) and
    'label_accuracy' (fraction right).
    """
    if loss not in ("", "bce"):
        raise ValueError(f"task 'multilabel' has loss 'bce' only, got {loss!r}")
    if uncertain not in UNCERTAIN:
        raise ValueError(f"task 'multilabel': uncertain={uncertain!r}; use one of {UNCERTAIN}")

    def examples(rows: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        del seed
        return {**rows, "labels": present_classes(rows, uncertain)}

    def known(batch: Batch) -> tuple[jax.Array, jax.Array]:
        weight = (batch["labels"] >= 0).astype(jnp.float32)
        return weight, jnp.maximum(weight.sum(axis=-1), 1.0)

    def per_example(logits: jax.Array, batch: Batch) -> jax.Array:
        weight, count = known(batch)
        bce = optax.sigmoid_binary_cross_entropy(logits, jnp.maximum(batch["labels"], 0.0))
        return (bce * weight).sum(axis=-1) / count

    def metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
        weight, count = known(batch)
        right = ((logits >= 0) == (batch["labels"] > 0.5)).astype(jnp.float32)
        return {
            "exact_match": jnp.all((right * weight) == weight, axis=-1).astype(jnp.float32),
            "label_accuracy": (right * weight).sum(axis=-1) / count,
        }

    return Task(
        name="multilabel",
        keys=("image", "labels"),
        needs=("image", "mask"),
        head="pooled",
        outputs=info.multi_hot or info.mask_channels,
        loss=per_example,
        metrics=metrics,
        **carrying("labels"),
        primary="label_accuracy",
        examples=examples,
    )
