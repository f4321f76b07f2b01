"""Pretext health of a study: does each pretext stage (a stage another run starts from) beat its
trivial baselines (``result.json``'s ``baseline`` / ``beats_baseline``, see ``train.health``)?

The study-level key ``pretext_check`` decides what happens when one does not: ``'stop'`` (the
default) stops the study before the first run that starts from it trains, with one error line
naming the stage, its run directory, both figures and what to change; runs planned before that
point (other folds' or arms' runs earlier in the plan) are finished, later ones are not trained
(a shard worker stops likewise, other shards' families go on). ``'warn'`` prints a warning and
goes on; the report then says so in its first lines. Either way ``report.md`` opens with the
pretext-health table, and ``summary.json`` holds it as ``pretext_health``.
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict

import ml_collections
import numpy as np

from jaxseg.studies import plan as plan_lib
from jaxseg.train import health, rundir

MODES = ("stop", "warn")
_warned: set[str] = set()  # pretext runs already warned about (once per process)


class PretextFailedError(ValueError):
    """A pretext stage did not beat its trivial baseline and ``pretext_check='stop'``."""


def mode(config: ml_collections.ConfigDict) -> str:
    """The checked ``pretext_check`` of a study config ('stop' for configs recorded before the
    key existed); a ValueError naming the key otherwise."""
    value = config.get("pretext_check", "stop")
    if value not in MODES:
        raise ValueError(f"pretext_check={value!r} is not one of {MODES}")
    return value


def verdict(result: dict) -> tuple[str, float, str, float] | None:
    """(metric, figure, best baseline name, its value) of a run that did NOT beat its baseline;
    None when it did, or when its result has no baseline."""
    if result is None or "baseline" not in result or result.get("beats_baseline", True):
        return None
    metric = result["primary"]
    name, value = health.best_baseline(result["baseline"], metric)
    return metric, float(result["metrics"][metric]), name, float(value)


def message(run: plan_lib.Run, failed: tuple[str, float, str, float]) -> str:
    """One line: which stage (and run directory) failed, both figures and what to change."""
    metric, figure, name, value = failed
    better = "lower" if health.lower_is_better(metric) else "higher"
    return (
        f"pretext stage {run.stage!r} ({run.workdir}) does not beat its trivial baseline: "
        f"held-out {metric} {figure:.4g} vs {name} {value:.4g} ({better} is better); train it "
        f"longer (stages.{run.stage}.steps) or with a lower stages.{run.stage}.optimizer."
        "learning_rate, or set pretext_check='warn' to go on; the runs that start from it "
        "were not trained"
    )


def check_parent(run: plan_lib.Run, check: str) -> None:
    """Before ``run`` trains: if the run it starts from did not beat its baseline, raise
    ``PretextFailedError`` (``check`` 'stop') or print a warning on stderr ('warn')."""
    if run.parent is None:
        return
    failed = verdict(rundir.read_result(run.parent.workdir))
    if failed is None:
        return
    if check == "stop":
        raise PretextFailedError(message(run.parent, failed))
    if run.parent.workdir in _warned:
        return
    _warned.add(run.parent.workdir)
    metric, figure, name, value = failed
    print(
        f"warning: pretext stage {run.parent.stage!r} ({run.parent.workdir}) does not beat its "
        f"trivial baseline ({metric} {figure:.4g} vs {name} {value:.4g}); going on "
        "(pretext_check='warn')",
        file=sys.stderr,
        flush=True,
    )


def pretext_runs(planned: list[plan_lib.Chain]) -> list[plan_lib.Run]:
    """The distinct runs another run starts from, in plan order."""
    runs = {r.parent.workdir: r.parent for c in planned for r in c.runs if r.parent is not None}
    return list(runs.values())


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def collect(planned: list[plan_lib.Chain], workdir: str) -> list[dict]:
    """Per pretext stage with finished runs that carry baselines: its metric, the fold × seed
    mean ± sd of its figure (``values`` per run), each baseline's mean, how many runs beat
    their best baseline, the failing run directories (relative to ``workdir``), and for the
    siamese task the mean probe AUCs."""
    grouped: dict[str, list[tuple[plan_lib.Run, dict]]] = defaultdict(list)
    for run in pretext_runs(planned):
        result = rundir.read_result(run.workdir)
        if result is not None and "baseline" in result:
            grouped[run.stage].append((run, result))
    out = []
    for stage, items in grouped.items():
        metric = items[0][1]["primary"]
        values = [float(r["metrics"][metric]) for _, r in items]
        mean, sd = _mean_sd(values)
        names = list(items[0][1]["baseline"])
        baselines = {k: _mean_sd([float(r["baseline"][k]) for _, r in items])[0] for k in names}
        row = dict(stage=stage, task=items[0][1]["task"], metric=metric, n=len(items),
                   mean=mean, sd=sd, values=values, baselines=baselines,
                   beats=sum(bool(r["beats_baseline"]) for _, r in items),
                   failing=[os.path.relpath(run.workdir, workdir)
                            for run, r in items if not r["beats_baseline"]])  # fmt: skip
        if "probe" in items[0][1]:
            row["probe"] = {
                k: _mean_sd([r["probe"][k] for _, r in items])[0]
                for k in ("trained", "random_encoder")
            }
        out.append(row)
    return out


def _format(row: dict) -> str:
    base = "; ".join(f"{k} {v:.3f}" for k, v in row["baselines"].items())
    probe = row.get("probe")
    probe = (
        f" (linear probe AUC: trained {probe['trained']:.3f}, random encoder "
        f"{probe['random_encoder']:.3f})"
        if probe
        else ""
    )
    return (
        f"| {row['stage']} | {row['metric']} | {row['n']} | {row['mean']:.3f} ± "
        f"{row['sd']:.3f} | {base}{probe} | {row['beats']}/{row['n']} |"
    )


def report_lines(rows: list[dict], check: str) -> list[str]:
    """The first lines of ``report.md``: a warning when a pretext run did not beat its
    baseline (with ``check`` 'warn' the study went on), then the pretext-health table."""
    if not rows:
        return []
    lines = []
    failing = [f for r in rows for f in r["failing"]]
    if failing:
        stages = ", ".join(
            f"{r['stage']} ({r['n'] - r['beats']} of {r['n']})" for r in rows if r["failing"]
        )
        then = (
            "the study went on (pretext_check='warn'), so the transfer below starts from "
            "pretexts that did not learn"
            if check == "warn"
            else "with pretext_check='stop' their dependants are not trained; the chains "
            "below finished before the check stopped the study"
        )
        lines += [
            f"**Warning: pretext runs did not beat their trivial baseline: {stages}; {then}.** "
            f"Runs: {', '.join(failing)}.",
            "",
        ]
    return [
        *lines,
        "## Pretext health",
        "",
        "| stage | metric | n | held-out mean ± sd | trivial baselines (mean) | beats |",
        "|---|---|---:|---|---|---:|",
        *(_format(r) for r in rows),
        "",
        "Baselines are computed from each run's training examples and scored on its held-out "
        "examples: constant predictions (the mean training centre or image centre, the majority "
        "class, each label's prevalence, the mean training image or (box) mask) in the task's "
        "own metric; for a siamese stage chance (0.5) and the distance ROC-AUC of a random "
        "(untrained) encoder of the same architecture. beats: runs better than every baseline.",
        "",
    ]
