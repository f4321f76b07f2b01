"""Did each stage converge? Per stage × budget of a study, from its finished validated runs'
``result.json``: how many early stopping ended (patience ran out: the rule's sign of convergence;
the others reached their step maximum first, so convergence is not shown for them); how many had
their best checkpoint at the last validation (still improving at the end); how many never
improved on their first validation (a plateau, such as a segmenter that predicts nothing and
scores Dice 0, which early stopping waits out); and how many kept their start, a whole
transferred net validated at step 0 that no fine-tuning step beat
(``train.loop.validates_start``). A comparison between arms whose runs did not converge measures
training length as much as the method.

The report gives the table after the statistics, and ``summary.json`` holds it as
``convergence``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from jaxseg.studies import plan as plan_lib
from jaxseg.train import rundir, settings


def _no_gain(result: dict, run: plan_lib.Run) -> bool:
    """Whether the run's best validation was its first (for runs recorded before the stopper
    kept ``first_step``: the first validation of a run trained from step 0)."""
    stopper = result["early_stopping"]
    first = stopper.get("first_step", -1)
    if first < 0:
        first = settings.eval_every(run.config)
    return stopper["best_step"] == first


def collect(planned: list[plan_lib.Chain]) -> list[dict]:
    """[{stage, budget, runs, stopped_early, best_at_last, no_gain, kept_start, mean_steps,
    planned_steps}] over the finished runs with a validation split, each run counted once
    (a run several chains share, as a pretext, is one run), in plan order."""
    grouped: dict[tuple[str, float], list[tuple[dict, plan_lib.Run]]] = defaultdict(list)
    seen = set()
    for chain in planned:
        for run in chain.runs:
            if run.workdir in seen:
                continue
            seen.add(run.workdir)
            result = rundir.read_result(run.workdir)
            if result is not None and result.get("early_stopping"):
                grouped[(run.stage, run.budget)].append((result, run))
    out = []
    for (stage, budget), items in grouped.items():
        results = [r for r, _ in items]
        out.append(
            dict(
                stage=stage,
                budget=budget,
                runs=len(items),
                stopped_early=sum(r["steps"] < r["planned_steps"] for r in results),
                best_at_last=sum(r["evaluated_step"] == r["steps"] for r in results),
                no_gain=sum(_no_gain(r, run) and r["evaluated_step"] > 0 for r, run in items),
                kept_start=sum(r["evaluated_step"] == 0 for r in results),
                mean_steps=float(np.mean([r["steps"] for r in results])),
                planned_steps=float(np.mean([r["planned_steps"] for r in results])),
            )
        )
    return out


def report_lines(rows: list[dict]) -> list[str]:
    """The report's section ([] when no run validated)."""
    if not rows:
        return []
    lines = [
        "## Convergence",
        "",
        "| stage | budget | runs | stopped early | best at the last validation | no gain after "
        "the first validation | kept the transferred start | steps trained (mean) | "
        "planned (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        budget = f"{r['budget']:g}" if r["budget"] else "all"
        lines.append(
            f"| {r['stage']} | {budget} | {r['runs']} | {r['stopped_early']} | "
            f"{r['best_at_last']} | {r['no_gain']} | {r['kept_start']} | {r['mean_steps']:.0f} | "
            f"{r['planned_steps']:.0f} |"
        )
    return [
        *lines,
        "",
        "Stopped early: patience ran out, the sign of convergence early stopping gives; the "
        "other runs reached their step maximum first, so they are not shown to have converged. "
        "Best at the last validation: still improving at the end. No gain after the first "
        "validation: a plateau (such as empty predictions), which early stopping waits out. "
        "Kept the transferred start: the net it started from, validated before training, "
        "stayed best (fine-tuning never beat it). "
        "Arms compared while many of their runs did not converge differ in training, not only "
        "in method.",
        "",
    ]
