"""Run a study: every planned run in order (finished ones are read back, not retrained), then
``results.csv``, the summary table on stdout and ``report.md`` in the workdir."""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from jaxseg import data
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import results as results_lib
from jaxseg.train.loop import check_workdir, read_result, train_and_evaluate, write_json_atomic


def run_study(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """Train/evaluate all runs of ``config`` under ``workdir``; returns the tidy result rows."""
    compare = tuple(config.compare)
    for arm in compare:
        if arm not in config.arms:
            raise ValueError(f"compare names arm {arm!r}; arms are {list(config.arms)}")
    planned = plan_lib.plan(config, workdir)  # validates the whole study before any training
    for _, runs in planned:
        for run in runs:  # a finished run of another config must not pass for this one's
            check_workdir(run.config, run.workdir)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "study_config.json"), "w") as f:
        f.write(config.to_json_best_effort(sort_keys=True, indent=1))
    dataset = data.load(config.data)
    done: dict[str, dict] = {}
    rows = []
    for arm, runs in planned:
        results = []
        for run in runs:
            if run.workdir not in done:
                result = read_result(run.workdir)
                if result is None:
                    logging.info("run %s (arm %s)", run.workdir, arm)
                    result = train_and_evaluate(run.config, run.workdir, dataset)
                done[run.workdir] = result
            results.append(done[run.workdir])
        rows += results_lib.rows_for(arm, runs, results)
    results_lib.write_csv(rows, os.path.join(workdir, "results.csv"))
    report = write_report(config, workdir, rows, dataset)
    if "explain" in config and config.explain.enabled:
        index = explain_first_split(config, workdir, planned)
        with open(os.path.join(workdir, "report.md"), "w") as f:
            f.write(report + f"\n## What transferred\n\nSee [{index}]({index}).\n")
    return rows


def explain_first_split(config: ml_collections.ConfigDict, workdir: str, planned) -> str:
    """Figures for every stage run of the first fold, seed and budget, labelled by stage;
    returns the index path relative to ``workdir``."""
    from jaxseg.explain.report import explain_runs  # matplotlib only when asked for

    first = planned[0][1][-1]
    runs = {}
    for _, chain in planned:
        for run in chain:
            if (
                run.fold == first.fold
                and run.seed == first.seed
                and run.budget in (0, first.budget)
            ):
                runs.setdefault(run.stage, run.workdir)
    e = config.explain
    explain_runs(
        runs, os.path.join(workdir, "explain"), e.layers, e.num_images, e.channels, e.steps
    )
    return os.path.join("explain", "index.md")


def write_report(
    config: ml_collections.ConfigDict, workdir: str, rows: list[dict], dataset: data.Dataset
) -> str:
    """Print the summary and write ``report.md``; returns the report text."""
    compare = tuple(config.compare)
    final_stage = config.stages[plan_lib.arm_stages(config, compare[0])[-1]]
    metric = {"segmentation": "dice", "localization": "center_error"}.get(final_stage.task, "loss")
    summary = results_lib.summarize(rows, metric, compare)
    pretext = results_lib.pretext_summary(rows)
    write_json_atomic(os.path.join(workdir, "summary.json"), {"final": summary, "pretext": pretext})
    lines = [
        "# Study report",
        "",
        f"Data: {dataset.name} ({len(dataset)} images, "
        f"{int((~dataset.arrays['has_object']).sum())} with empty masks). Centres for the "
        "localization pretext are the mask centroids (derived, not annotated); images with "
        "empty masks are left out of localization.",
        f"Protocol: {config.protocol.folds}-fold group-aware CV (folds run: "
        f"{config.protocol.run_folds or config.protocol.folds}), label budgets "
        f"{tuple(config.protocol.budgets)} (nested), seeds {tuple(config.protocol.seeds)}.",
        "Arms: " + "; ".join(f"{a} = {config.arms[a]}" for a in config.arms) + ".",
        "",
        f"## {metric} on the held-out fold (mean ± sd over folds × seeds)",
        "",
        results_lib.markdown_table(summary, compare),
        "",
        "## Earlier stages",
        "",
        "| stage | metric | n | mean ± sd |",
        "|---|---|---:|---|",
        *(
            f"| {p['stage']} | {p['metric']} | {p['n']} | {p['mean']:.3f} ± {p['sd']:.3f} |"
            for p in pretext
        ),
        "",
        "Files: `results.csv` (one row per run × metric), `summary.json`, per-run directories "
        "`fold_F/seed_S/[budget_B/]STAGE/` with `config.json`, `metrics.jsonl`, `tb/`, "
        "`checkpoints/`, `result.json`.",
    ]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(workdir, "report.md"), "w") as f:
        f.write(text)
    print(text)
    return text
