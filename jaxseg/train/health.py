"""Pretext health of a finished stage: its held-out figure beside the trivial baselines of its
task (``tasks.baselines``), computed from the stage's training examples and scored on the same
held-out examples, and whether the figure beats the best of them (the metric's direction
respected). ``train_and_evaluate`` adds ``health(...)``'s keys to ``result.json``:

- ``baseline``: {name: value} in the units of the stage's ``primary`` metric;
- ``beats_baseline``: the figure is strictly better than every baseline (False for NaN);
- ``probe`` (siamese only): held-out ROC-AUC of a logistic regression on the pair features of
  the trained and of a random (untrained, same-architecture) encoder.

The siamese baselines are chance (0.5) and the distance AUC of that random encoder.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from jaxseg import losses, tasks
from jaxseg.tasks import baselines
from jaxseg.train import batches
from jaxseg.train import mesh as mesh_lib
from jaxseg.train.early_stopping import lower_is_better
from jaxseg.train.setup import Stage


def beats(figure: float, baseline: dict[str, float], metric: str) -> bool:
    """Whether ``figure`` of ``metric`` is strictly better than every finite baseline value
    (lower when ``early_stopping.lower_is_better(metric)``); False for a non-finite figure."""
    if not math.isfinite(figure):
        return False
    values = [v for v in baseline.values() if math.isfinite(v)]
    if lower_is_better(metric):
        return all(figure < v for v in values)
    return all(figure > v for v in values)


def best_baseline(baseline: dict[str, float], metric: str) -> tuple[str, float]:
    """(name, value) of the strongest baseline of ``metric`` (its direction respected)."""
    finite = {k: v for k, v in baseline.items() if math.isfinite(v)} or baseline
    pick = min if lower_is_better(metric) else max
    name = pick(finite, key=finite.get)
    return name, baseline[name]


def embed(stage: Stage, model: Any, variables: dict[str, Any], split: str) -> np.ndarray:
    """The model's outputs (``tasks.run_model``, inference mode) on every example of ``split``:
    [N, ...] (siamese: [N,2,E] embeddings of both images of each pair)."""
    task, arrays = stage.task, stage.arrays[split]
    variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}

    @jax.jit
    def apply(v, batch):
        return tasks.run_model(task, lambda x: model.apply(v, x, train=False), batch)

    out = []
    for batch in batches.eval_batches(arrays, task.keys, stage.config.batch_size):
        valid = batch["weight"] > 0
        outputs = apply(variables, mesh_lib.put_batch(batch, stage.mesh))
        out.append(np.asarray(jax.device_get(outputs))[valid])
    return np.concatenate(out)


def untrained(stage: Stage) -> dict[str, Any] | None:
    """A host copy of the stage's fresh (random) variables when its health needs them (siamese:
    the random encoder), taken before training donates their buffers; else None."""
    if stage.task.name != "siamese":
        return None
    return jax.tree.map(np.asarray, jax.device_get(stage.variables))


def siamese_health(
    stage: Stage, model: Any, trained: dict[str, Any], figure: float, random: dict[str, Any]
) -> dict[str, Any]:
    """Baselines (chance, the distance AUC of the ``random`` (untrained) variables) and the
    linear probes of a siamese stage; ``figure`` is its held-out distance AUC."""
    same = {s: stage.arrays[s]["same"] for s in ("train", "test")}
    probe, auc = {}, {}
    for name, variables in (("trained", trained), ("random_encoder", random)):
        emb = {s: embed(stage, model, variables, s) for s in ("train", "test")}
        feats = {s: baselines.pair_features(e) for s, e in emb.items()}
        probe[name] = baselines.probe_auc(
            feats["train"], same["train"], feats["test"], same["test"]
        )
        distance = np.asarray(losses.pair_distance(emb["test"][:, 0], emb["test"][:, 1]))
        auc[name] = baselines.pair_auc(distance, same["test"])
    baseline = {"chance": 0.5, "random_encoder": auc["random_encoder"]}
    return {"baseline": baseline, "beats_baseline": beats(figure, baseline, "auc"), "probe": probe}


def health(
    stage: Stage,
    model: Any,
    trained: dict[str, Any],
    figure: float,
    random: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pretext-health keys of the stage's ``result.json`` ({} for a task without trivial
    baselines); ``trained`` holds the evaluated state's params and batch_stats, ``figure`` its
    held-out ``primary`` metric, ``random`` the ``untrained`` copy (siamese)."""
    task = stage.task
    if task.name == "siamese":
        return siamese_health(stage, model, trained, figure, random)
    baseline = baselines.constant_scores(task, stage.arrays["train"], stage.arrays["test"])
    if not baseline:
        return {}
    return {"baseline": baseline, "beats_baseline": beats(figure, baseline, task.primary)}
