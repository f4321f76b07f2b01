"""What a task is: the batch keys it needs, its head, a per-example loss and metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from jaxseg.data import labels as labels_lib

Batch = Mapping[str, jax.Array]
PerExample = Callable[[Any, Batch], jax.Array]
Apply = Callable[[jax.Array], Any]  # the model applied to one input array


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a task needs to know about a dataset to size its head: mask channels K, the number
    of class names (and the names, for per-class metrics), image channels C, the spatial rank R
    (2 for images, 3 for volumes) and whether it has voxel ``spacing``."""

    mask_channels: int = 1
    num_labels: int = 1
    image_channels: int = 1
    rank: int = 2
    spacing: bool = False  # the dataset has voxel sizes (distances then in mm)
    class_names: tuple[str, ...] = ()
    multi_hot: int = 0  # columns L of the dataset's multi-hot ``labels`` [N,L] (0: none)

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], class_names: tuple[str, ...]) -> DataInfo:
        return cls(
            mask_channels=arrays["mask"].shape[-1] if "mask" in arrays else 1,
            num_labels=len(class_names),
            image_channels=arrays["image"].shape[-1],
            rank=arrays["image"].ndim - 2,
            spacing="spacing" in arrays,
            class_names=tuple(class_names),
            multi_hot=arrays["labels"].shape[1] if "labels" in arrays else 0,
        )


DEFAULT_INFO = DataInfo()  # one binary-mask, 2-D, single-channel dataset


@dataclasses.dataclass(frozen=True)
class Task:
    """A training objective over model outputs.

    ``loss(outputs, batch) -> [B]`` and ``metrics(outputs, batch) -> {name: [B]}`` are pure and
    jit-able; ``usable(arrays) -> bool [N]`` says which examples carry the labels it needs (e.g.
    localization needs a non-empty mask to have a centre). ``head``/``outputs`` tell the model
    registry what output layer to build. ``keys`` are the batch keys, the first one the model's
    input; ``needs`` the dataset keys (default: ``keys``) when ``examples`` derives the batch keys
    from dataset rows (siamese pairs, box masks): ``examples(rows, seed) -> arrays`` runs on the
    rows of one split (train, validation or test) so derived examples never mix splits.
    ``forward(apply, batch)`` runs the model (default ``apply(batch[keys[0]])``; the siamese task
    embeds both images of a pair in one call). The training step adds ``progress`` (step/steps,
    a scalar) to the batch for losses that change during training; evaluation sets it to 1.
    ``summarize(per_example) -> {name: float}`` replaces the default per-metric means where a
    split's figures are no plain mean (segmentation's headline over non-empty truths, the
    siamese ROC-AUC over its pairs); the primary may be one of them.
    """

    name: str
    keys: tuple[str, ...]
    head: str
    outputs: int
    loss: PerExample
    metrics: Callable[[jax.Array, Batch], dict[str, jax.Array]]
    usable: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    primary: str  # the metric that summarises a run (reported first)
    # Optional host-side metrics (e.g. Hausdorff distances): ``predict(outputs)`` runs in the
    # compiled evaluation step, ``host_metrics(prediction, batch) -> {name: [B]}`` on numpy.
    predict: Callable[[jax.Array], jax.Array] | None = None
    host_metrics: Callable[[np.ndarray, Mapping[str, np.ndarray]], dict] | None = None
    needs: tuple[str, ...] = ()
    examples: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]] | None = None
    forward: Callable[[Apply, Batch], Any] | None = None
    # ``summarize(per_example) -> {name: mean}``: how a split's per-example metrics become the
    # reported means (default ``train.steps.finite_means``; segmentation: ``eval.summary``).
    summarize: Callable[[Mapping[str, np.ndarray]], dict[str, float]] | None = None
    # the label kinds (jaxseg.data.labels.KINDS) an example must carry; ``usable`` of
    # ``carrying(*labels)`` trains and evaluates on exactly those examples
    labels: tuple[str, ...] = ()

    def check(self, arrays: Mapping[str, np.ndarray], dataset: str) -> None:
        """Raise if ``arrays`` lacks a key this task needs, naming the task and dataset."""
        missing = [k for k in self.needs or self.keys if k not in arrays]
        if missing:
            raise ValueError(
                f"task {self.name!r} needs batch keys {missing} that dataset {dataset!r} lacks "
                f"(it has {sorted(arrays)})"
            )


def everything(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Every example is usable."""
    return np.ones(len(arrays["image"]), dtype=bool)


def carrying(*kinds: str) -> dict[str, Any]:
    """``labels`` and ``usable`` fields of a task whose examples must carry the label ``kinds``
    (``jaxseg.data.labels``: 'mask', 'center', 'box', 'label', 'labels')."""

    def usable(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        return labels_lib.carrying(arrays, kinds)

    return {"labels": kinds, "usable": usable}


def task_arrays(
    task: Task, arrays: Mapping[str, np.ndarray], index: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """The task's batch arrays over the dataset rows ``index`` of one split: {key: [n,...]}."""
    rows = {k: v[index] for k, v in arrays.items()}
    if task.examples is not None:
        rows = task.examples(rows, seed)
    return {k: rows[k] for k in task.keys}


def run_model(task: Task, apply: Apply, batch: Batch) -> Any:
    """The model's outputs for ``batch`` (``task.forward`` or the first key's array)."""
    if task.forward is not None:
        return task.forward(apply, batch)
    return apply(batch[task.keys[0]])
