"""From a study config to the runs it needs: each stage of each arm becomes a run config for
``train_and_evaluate`` with its fold, seed and budget, and knows the run it starts from.

A stage trained on ``examples='all'`` (the cheap pretext labels: every image outside the fold's
test groups, a cheap-label pool included, ``train.setup.split_indices``) does not depend on the
label budget, so one run serves every budget of its fold and seed; runs are keyed by their
directory.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import NamedTuple

import ml_collections

EXAMPLES = ("all", "budget")


@dataclasses.dataclass(frozen=True)
class Run:
    """One stage to train: where, with which config, where it sits in the study, and the run
    whose checkpoint its ``init_from`` loads (None: fresh initialisation only)."""

    workdir: str
    config: ml_collections.ConfigDict
    stage: str
    fold: int
    seed: int
    budget: float | int  # 0 for stages trained on every training image
    parent: Run | None = None


class Chain(NamedTuple):
    """One arm at one (fold, seed, budget): its stage runs in training order."""

    arm: str
    runs: list[Run]


def arm_stages(config: ml_collections.ConfigDict, arm: str) -> list[str]:
    """The stage names of ``arm`` in order; unknown names are an error listing the stages."""
    names = [s.strip() for s in config.arms[arm].split(",") if s.strip()]
    unknown = [s for s in names if s not in config.stages]
    if not names or unknown:
        raise ValueError(
            f"arms.{arm}={config.arms[arm]!r} names unknown stages {unknown}; "
            f"stages are {list(config.stages)}"
        )
    return names


def run_dir(workdir: str, stage: str, fold: int, seed: int, budget: float | int) -> str:
    """<workdir>/fold_F/seed_S/[budget_B/]<stage>."""
    parts = [workdir, f"fold_{fold}", f"seed_{seed}"]
    if budget:
        parts.append(f"budget_{budget}")
    return os.path.join(*parts, stage)


def stage_run(
    config: ml_collections.ConfigDict, workdir: str, arm: str, index: int, fold, seed, budget
) -> Run:
    """The run for the ``index``-th stage of ``arm`` at (fold, seed, budget)."""
    chain = arm_stages(config, arm)
    name = chain[index]
    stage = config.stages[name]
    if stage.examples not in EXAMPLES:
        raise ValueError(f"stages.{name}.examples={stage.examples!r}; use one of {EXAMPLES}")
    b = budget if stage.examples == "budget" else 0
    run_config = ml_collections.ConfigDict(stage.to_dict())
    run_config.name = name
    run_config.seed = config.seed + seed
    if "data" not in stage:  # a stage may train on its own dataset (another source/structure)
        run_config.data = ml_collections.ConfigDict(config.data.to_dict())
    run_config.split = ml_collections.ConfigDict(
        dict(folds=config.protocol.folds, fold=fold, budget=b, seed=config.protocol.split_seed)
    )
    source = stage.init_from.stage
    parent = None
    if source and stage.init_from.get("path"):
        raise ValueError(
            f"stages.{name}.init_from names both stage={source!r} and path="
            f"{stage.init_from.path!r}; give one (path: a run directory, checkpoint or weights)"
        )
    if source:
        if source not in chain[:index]:
            raise ValueError(
                f"stages.{name}.init_from.stage={source!r} is not an earlier stage of arm "
                f"{arm!r} ({chain[:index] or 'none'})"
            )
        parent = stage_run(config, workdir, arm, chain.index(source), fold, seed, budget)
    del run_config.examples
    directory = run_dir(workdir, name, fold, seed, b)
    return Run(directory, run_config, name, fold, seed, b, parent)


def is_int(x: object) -> bool:
    """An int, not a bool."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_budget(x: object) -> bool:
    """An int count >= 1 or a float fraction in (0, 1]."""
    return (is_int(x) and x >= 1) or (isinstance(x, float) and 0 < x <= 1)


def check_protocol(protocol: ml_collections.ConfigDict) -> None:
    """Raise one ValueError naming the ``protocol`` key whose value is out of range: a budget 0
    would train on every mask, a repeated budget or seed would train and report runs twice."""
    if not is_int(protocol.folds) or protocol.folds < 2:
        raise ValueError(f"protocol.folds={protocol.folds!r} must be an int >= 2")
    if not is_int(protocol.run_folds) or not 0 <= protocol.run_folds <= protocol.folds:
        raise ValueError(
            f"protocol.run_folds={protocol.run_folds!r} must be an int in 0..protocol.folds="
            f"{protocol.folds} (0: all)"
        )
    for key, ok, want in (
        ("budgets", is_budget, "ints >= 1 (counts) or fractions in (0, 1]"),
        ("seeds", is_int, "ints"),
    ):
        values = tuple(protocol[key])
        bad = ", ".join(repr(v) for v in values if not ok(v))
        if not values or bad:
            what = f"holds {bad}" if bad else "is empty"
            raise ValueError(f"protocol.{key}={values!r} {what}; give {want}")
        twice = sorted({repr(v) for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"protocol.{key}={values!r} repeats {', '.join(twice)}")


def plan(config: ml_collections.ConfigDict, workdir: str) -> list[Chain]:
    """Every arm's chain of runs for every fold × seed × budget, in execution order (the
    protocol checked first)."""
    check_protocol(config.protocol)
    out = []
    for fold in range(config.protocol.run_folds or config.protocol.folds):
        for seed in config.protocol.seeds:
            for budget in config.protocol.budgets:
                for arm in config.arms:
                    n = len(arm_stages(config, arm))
                    runs = [
                        stage_run(config, workdir, arm, i, fold, seed, budget) for i in range(n)
                    ]
                    out.append(Chain(arm, runs))
    return out
