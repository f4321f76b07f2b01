"""Check every run of a study before any training, so a bad config or dataset fails in seconds
with one line naming the stage, and never after hours with half the results written.

For each planned run: its settings, task and dataset keys, fold / label budget / validation
split, optimizer, augmentation, model shapes (``jax.eval_shape``, no compute), batch size vs
devices, freeze plan, and the transfer from its ``init_from`` stage (shapes of both models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxseg import checkpoint, data
from jaxseg.studies.plan import Chain, Run
from jaxseg.surgery import transfer
from jaxseg.train import init_path
from jaxseg.train.setup import prepare_stage

Shapes = dict[str, tuple[int, ...]]


def check_study(planned: list[Chain], datasets: Callable[[Any], data.Dataset]) -> None:
    """Raise ValueError ('stages.NAME (fold F, seed S, budget B): ...') for the first bad run.
    ``datasets(run.config.data)`` gives each run's dataset."""
    shapes: dict[str, Shapes] = {}  # run workdir -> variable shapes, for transfers
    for chain in planned:
        for run in chain.runs:
            if run.workdir in shapes:
                continue
            try:
                shapes[run.workdir] = check_run(run, datasets(run.config.data), shapes)
            except (ValueError, FileNotFoundError) as err:
                raise ValueError(
                    f"stages.{run.stage} (fold {run.fold}, seed {run.seed}, budget "
                    f"{run.budget}): {err}"
                ) from None


def check_run(run: Run, dataset: data.Dataset, shapes: dict[str, Shapes]) -> Shapes:
    """Set the run up as the trainer will (abstractly: shapes, no compute) and match its
    transfer against the planned shapes of its parent run; returns the shapes of its variables
    ('params/...', 'batch_stats/...')."""
    config = run.config
    stage = prepare_stage(config, dataset, abstract=True)
    variables = {p: tuple(v.shape) for p, v in checkpoint.flatten(stage.variables).items()}
    if run.parent is not None:
        transfer.match(
            variables,
            shapes[run.parent.workdir],  # a parent comes earlier in its chain: already checked
            config.init_from.subtrees,
            config.init_from.rename,
            config.init_from.allow,
            where=f"stage {config.init_from.stage!r}",
        )
    elif config.init_from.get("path"):
        transfer.match(
            variables,
            init_path.saved_shapes(config, variables),
            config.init_from.subtrees,
            config.init_from.rename,
            config.init_from.allow,
            where=f"init_from.path={config.init_from.path!r}",
        )
    return variables
