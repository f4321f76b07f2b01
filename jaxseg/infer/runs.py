"""The trained networks a prediction uses: one run, or the fold models of a study arm, as one
jitted function from an input batch to foreground probabilities.

``--from`` names a run directory (``config.json`` + checkpoints) or a study workdir
(``study_config.json``), in which case ``arm`` and ``budget`` pick the arm's last-stage runs over
every fold and seed run: a fold ensemble. Each run contributes its best validated checkpoint
(the one its test metrics came from) or, without a validation split, its last one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxseg import checkpoint, losses, models
from jaxseg.explain.capture import LoadedRun, load_run
from jaxseg.studies import plan as plan_lib
from jaxseg.studies.report import final_run_dirs
from jaxseg.studies.workdir import STUDY_CONFIG
from jaxseg.tasks.segmentation import logits_of
from jaxseg.train import rundir

SEGMENTING = ("segmentation", "box_segmentation")


@dataclasses.dataclass(frozen=True)
class Networks:
    """Runs of one architecture, ready to predict."""

    runs: list[LoadedRun]
    directories: list[str]

    @property
    def config(self) -> ml_collections.ConfigDict:
        """The first run's config (all runs share model, data and preprocessing)."""
        return self.runs[0].config

    @property
    def _first_kernel(self) -> np.ndarray:
        params = self.runs[0].variables["params"]
        return next(v for p, v in checkpoint.flatten(params).items() if p.endswith("kernel"))

    @functools.cached_property
    def channels(self) -> int:
        """Input channels the networks expect: the first count (1 to 4) the model accepts,
        found by tracing shapes only (a run does not record its input shape)."""
        run = self.runs[0]
        for c in range(1, 5):
            spec = jax.ShapeDtypeStruct((1, *(self.multiple,) * self.rank, c), jnp.float32)
            try:
                jax.eval_shape(lambda x: run.model.apply(run.variables, x, train=False), spec)
            except (TypeError, ValueError):  # the first convolution's kernel does not fit
                continue
            return c
        raise ValueError("the networks accept none of 1 to 4 input channels")

    @property
    def rank(self) -> int:
        """Spatial axes of the networks' inputs (2: images, 3: volumes)."""
        return self._first_kernel.ndim - 2

    @property
    def multiple(self) -> int:
        """Every spatial input size must be a multiple of this: 2^(number of down-samplings)."""
        model = models.resolve(self.config.model)
        if model.name == "densenet":
            return 2 ** len(model.dense_layers)
        if model.name == "unet" and not model.backbone:
            return 2**model.depth
        return 32  # the backbones' and DeepLab's deepest stride

    def probabilities(self) -> Callable[[np.ndarray], jax.Array]:
        """Jitted [B,*S,C] -> [B,*S,K] foreground probabilities, averaged over the runs."""
        softmax = self.config.loss in losses.SOFTMAX

        def one(run: LoadedRun, x: jax.Array) -> jax.Array:
            logits = logits_of(run.model.apply(run.variables, x, train=False))
            if softmax:
                return jax.nn.softmax(logits, axis=-1)[..., 1:]
            return jax.nn.sigmoid(logits)

        return jax.jit(lambda x: jnp.mean(jnp.stack([one(r, x) for r in self.runs]), axis=0))


def study_runs(workdir: str, arm: str, budget: str) -> list[str]:
    """The last-stage run directories of ``arm`` at ``budget`` over the study's folds × seeds."""
    with open(os.path.join(workdir, STUDY_CONFIG)) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if arm not in config.arms:
        raise ValueError(f"--arm={arm!r} is not an arm of {workdir}; arms: {list(config.arms)}")
    budgets = {str(b): b for b in config.protocol.budgets}
    if budget not in budgets:
        raise ValueError(
            f"--budget={budget!r} is not a budget of {workdir}; budgets: {list(budgets)}"
        )
    plan_lib.arm_stages(config, arm)
    return final_run_dirs(config, workdir)[budgets[budget]][arm]


def resolve(source: str, arm: str = "", budget: str = "") -> list[str]:
    """Run directories for ``--from``: the run itself, or a study arm's fold runs."""
    if os.path.exists(os.path.join(source, rundir.CONFIG)):
        if arm or budget:
            raise ValueError(f"--arm/--budget pick runs of a study; {source} is one run")
        return [source]
    if os.path.exists(os.path.join(source, STUDY_CONFIG)):
        if not arm or not budget:
            raise ValueError(
                f"{source} is a study: name the arm and budget whose fold models to use "
                "(--arm A --budget B)"
            )
        return study_runs(source, arm, budget)
    raise ValueError(
        f"--from={source}: neither a run ({rundir.CONFIG}) nor a study ({STUDY_CONFIG})"
    )


def load(directories: list[str]) -> Networks:
    """Load finished segmentation runs of one architecture."""
    runs = []
    for directory in directories:
        if rundir.read_result(directory) is None:
            raise ValueError(f"{directory} holds no finished run ({rundir.RESULT} missing)")
        run = load_run(directory, best=True)
        if run.config.task not in SEGMENTING:
            raise ValueError(
                f"{directory} is a {run.config.task!r} run; predict needs segmentation"
            )
        runs.append(run)
    keys = {json.dumps([r.config.model.to_dict(), r.config.data.to_dict()], sort_keys=True)
            for r in runs}  # fmt: skip
    if len(keys) > 1:
        raise ValueError("the runs differ in model or data settings; an ensemble needs one kind")
    return Networks(runs, list(directories))
