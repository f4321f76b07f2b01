"""What a task is: the batch keys it needs, its head, a per-example loss and metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import jax
import numpy as np

Batch = Mapping[str, jax.Array]
PerExample = Callable[[jax.Array, Batch], jax.Array]


@dataclasses.dataclass(frozen=True)
class Task:
    """A training objective over model outputs.

    ``loss(outputs, batch) -> [B]`` and ``metrics(outputs, batch) -> {name: [B]}`` are pure and
    jit-able; ``usable(arrays) -> bool [N]`` says which examples carry the labels it needs (e.g.
    localization needs a non-empty mask to have a centre). ``head``/``outputs`` tell the model
    registry what output layer to build.
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

    def check(self, arrays: Mapping[str, np.ndarray], dataset: str) -> None:
        """Raise if ``arrays`` lacks a key this task needs, naming the task and dataset."""
        missing = [k for k in self.keys if k not in arrays]
        if missing:
            raise ValueError(
                f"task {self.name!r} needs batch keys {missing} that dataset {dataset!r} lacks "
                f"(it has {sorted(arrays)})"
            )


def everything(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Every example is usable."""
    return np.ones(len(arrays["image"]), dtype=bool)
