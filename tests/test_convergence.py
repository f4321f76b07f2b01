"""The report's convergence table (``studies.convergence``): per stage × budget, runs stopped
early, best at the last validation, and no gain after the first validation."""

from __future__ import annotations

import json
import os

import pytest

from jaxseg.studies import convergence
from jaxseg.studies import plan as plan_lib


def _write(run: plan_lib.Run, steps: int, planned: int, best: int, first: int | None) -> None:
    stopper = dict(monitor="dice", patience=2, min_delta=0.0, best=0.5, best_step=best,
                   bad_evals=0, step=steps)  # fmt: skip
    if first is not None:
        stopper["first_step"] = first
    result = dict(steps=steps, planned_steps=planned, evaluated_step=best, early_stopping=stopper)
    os.makedirs(run.workdir, exist_ok=True)
    with open(os.path.join(run.workdir, "result.json"), "w") as f:
        json.dump(result, f)


@pytest.mark.parametrize("legacy", [None, -1])  # no first_step, or resumed from such a record
def test_counts_per_stage_and_budget_each_run_once(tiny_study, tmp_path, legacy):
    config = tiny_study.copy_and_resolve_references()
    config.protocol.seeds = (0, 1, 2)
    planned = plan_lib.plan(config, str(tmp_path))
    pretrained = [c for c in planned if c.arm == "pretrained" and c.runs[0].fold == 0]
    localize = {c.runs[0].workdir: c.runs[0] for c in pretrained}  # shared by the arms' chains
    assert len(localize) == 3
    # seed 0: stopped early (step 6 of 12), best at 4; seed 1: ran to its maximum, best at the
    # last validation; seed 2: best at its first validation (recorded before first_step, or
    # resumed from such a record: the first validation of the tiny stages, eval_every 0, is at
    # checkpoint_every = 3)
    runs = sorted(localize.values(), key=lambda r: r.seed)
    assert (runs[2].config.eval_every, runs[2].config.checkpoint_every) == (0, 3)
    _write(runs[0], steps=6, planned=12, best=4, first=2)
    _write(runs[1], steps=12, planned=12, best=12, first=2)
    _write(runs[2], steps=12, planned=12, best=3, first=legacy)
    segment = pretrained[0].runs[1]  # a label-budget stage: its own row
    _write(segment, steps=9, planned=9, best=6, first=3)
    rows = convergence.collect([*pretrained, *pretrained])  # repeated chains count once
    assert rows == [
        dict(stage="localize", budget=0, runs=3, stopped_early=1, best_at_last=1, no_gain=1,
             kept_start=0, mean_steps=10.0, planned_steps=12.0),
        dict(stage=segment.stage, budget=segment.budget, runs=1, stopped_early=0,
             best_at_last=0, no_gain=0, kept_start=0, mean_steps=9.0, planned_steps=9.0),
    ]  # fmt: skip
    lines = convergence.report_lines(rows)
    assert lines[0] == "## Convergence"
    assert "| localize | all | 3 | 1 | 1 | 1 | 0 | 10 | 12 |" in lines
    assert f"| {segment.stage} | {segment.budget:g} | 1 | 0 | 0 | 0 | 0 | 9 | 9 |" in lines
    assert convergence.report_lines([]) == []
    # a transferred start validated at step 0 and never beaten: kept, not a plateau
    _write(segment, steps=9, planned=9, best=0, first=0)
    row = convergence.collect(pretrained)[1]
    assert (row["no_gain"], row["kept_start"], row["best_at_last"]) == (0, 1, 0)


def test_runs_without_validation_or_result_are_left_out(tiny_study, tmp_path):
    planned = plan_lib.plan(tiny_study, str(tmp_path))
    run = planned[0].runs[0]
    os.makedirs(run.workdir)
    with open(os.path.join(run.workdir, "result.json"), "w") as f:
        json.dump(dict(steps=6, planned_steps=6, evaluated_step=6, early_stopping=None), f)
    assert convergence.collect(planned) == []
