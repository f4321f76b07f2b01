"""A study's report from its finished runs: ``results.csv`` rows → ``summary.json``, the tables
and figures of ``report.md`` (with ``figures/`` and ``machine.json``). Reads runs through
``train.rundir`` only, so a report can be rebuilt without training anything."""

from __future__ import annotations

import math
import os
from collections import defaultdict

import ml_collections
import numpy as np

from jaxseg import atomic, data, plotting, tasks
from jaxseg.data import labels as data_labels
from jaxseg.data import splits
from jaxseg.eval import summary as metric_summary
from jaxseg.eval import weights
from jaxseg.explain.capture import load_run
from jaxseg.studies import analyses, convergence, machine, masks_saved, pretext, statistics
from jaxseg.studies import figures as figures_lib
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import results as results_lib
from jaxseg.train import rundir
from jaxseg.train.early_stopping import lower_is_better


def final_run_dirs(config: ml_collections.ConfigDict, workdir: str) -> dict[float, dict]:
    """{budget: {arm: [directories of the arm's last-stage runs over the folds run × seeds]}} in
    the plan's order (an ``examples='all'`` last stage lists the same run under every budget)."""
    folds = config.protocol.run_folds or config.protocol.folds
    out: dict[float, dict[str, list[str]]] = {}
    for budget in config.protocol.budgets:
        out[budget] = {}
        for arm in config.arms:
            last = len(plan_lib.arm_stages(config, arm)) - 1
            out[budget][arm] = [
                plan_lib.stage_run(config, workdir, arm, last, fold, seed, budget).workdir
                for fold in range(folds)
                for seed in config.protocol.seeds
            ]
    return out


def report_figures(
    config: ml_collections.ConfigDict,
    workdir: str,
    summary: list[dict],
    comparisons: list[dict],
    metric: str,
    correction: str,
) -> list[str]:
    """Draw the study's figures into ``<workdir>/figures/``; returns the Markdown lines that
    embed them (paths relative to ``workdir``): the budget curve (with the comparisons whose
    arms the summary has), and per budget the validation curves of ``val/<metric>`` when a
    last-stage run logged that key (none otherwise)."""
    lines = []
    arms = {r["arm"] for r in summary}
    shown = [c for c in comparisons if {c["arm"], c["reference"]} <= arms]
    if shown:
        path = os.path.join("figures", f"budget_{metric}.png")
        figures_lib.budget_curve(summary, shown, metric, os.path.join(workdir, path), correction)
        lines += [
            f"![{metric} vs label budget]({path})",
            "",
            f"Stars: {statistics.correction_name(correction)}-corrected paired-t p < 0.05 (*) "
            "or < 0.01 (**), the corrected p of the tables below.",
            "",
        ]
    for budget, run_dirs in final_run_dirs(config, workdir).items():
        curves = figures_lib.read_curves(run_dirs, f"val/{metric}")
        curves = {arm: c for arm, c in curves.items() if c}
        if not curves:
            continue
        label = results_lib.format_budget(budget)
        path = os.path.join("figures", f"convergence_{metric}_budget_{label}.png")
        figures_lib.convergence(curves, os.path.join(workdir, path), metric)
        lines += [
            f"Validation {metric} over steps at budget {label} (mean over folds × seeds):",
            "",
            f"![validation {metric}, budget {label}]({path})",
            "",
        ]
    return lines


def health_figure(workdir: str, health: list[dict]) -> list[str]:
    """The pretext-health figure (each pretext stage's figure beside its baselines) and the
    Markdown lines that embed it ([] without pretext baselines)."""
    if not health:
        return []
    path = os.path.join("figures", "pretext_health.png")
    figures_lib.pretext_health(health, os.path.join(workdir, path))
    return [
        "Pretext health: each pretext run's held-out figure, their mean ± sd, and the trivial "
        "baselines (dashed):",
        "",
        f"![pretext health]({path})",
        "",
    ]


def first_split_figures(
    config: ml_collections.ConfigDict, workdir: str, dataset: data.Dataset, num_images: int = 4
) -> list[str]:
    """Prediction overlays (image, ground truth, each arm) and the heat map of method 5's weight
    distances between the arms' final networks, for the first fold, seed and budget of a
    segmentation study; returns the Markdown lines that embed them."""
    budget = next(iter(config.protocol.budgets))
    runs = {arm: dirs[0] for arm, dirs in final_run_dirs(config, workdir)[budget].items()}
    if any(rundir.read_result(d) is None for d in runs.values()):
        return []  # no finished runs to draw (e.g. a report rebuilt from a results table)
    loaded = {arm: load_run(d) for arm, d in runs.items()}
    if any(run.config.task != "segmentation" for run in loaded.values()):
        return []
    first = rundir.read_result(next(iter(runs.values())))
    index = np.asarray(first["test_index"][:num_images], dtype=int)
    images, masks = dataset.arrays["image"][index], dataset.arrays["mask"][index]
    predictions = {}
    for arm, run in loaded.items():
        task = tasks.for_config(run.config, dataset.arrays, dataset.class_names)
        predictions[arm] = np.asarray(task.predict(run.model.apply(run.variables, images)))
    if images.ndim == 5:  # volumes: the axial slice through each mask's centroid
        z = np.where(
            dataset.arrays["has_object"][index],
            np.round(dataset.arrays["center"][index, 2]),
            images.shape[1] // 2,
        ).astype(int)
        rows = np.arange(len(index))
        images, masks = images[rows, z], masks[rows, z]
        predictions = {arm: p[rows, z] for arm, p in predictions.items()}
    label = results_lib.format_budget(budget)
    overlay = os.path.join("figures", f"predictions_budget_{label}.png")
    figures_lib.overlay_grid(images, masks, predictions, os.path.join(workdir, overlay))
    lines = [f"Predictions on held-out images (fold 0, budget {label}):", "", f"![]({overlay})", ""]
    if len(loaded) > 1:
        labels, matrix = weights.distance_matrix(
            {arm: run.variables["params"] for arm, run in loaded.items()}
        )
        path = os.path.join("figures", f"weight_distance_budget_{label}.png")
        title = "L2 conv-kernel distance (mean over kernels) between the arms' final networks"
        plotting.heatmap(matrix, labels, os.path.join(workdir, path), title)
        lines += [f"{title} (fold 0, budget {label}):", "", f"![]({path})", ""]
    return lines


# The metric a study's main table reports, by the task of the compared arms' last stage.
PRIMARY = {
    "segmentation": metric_summary.HEADLINE,
    "box_segmentation": metric_summary.HEADLINE,
    "localization": "center_error",
    "classification": "accuracy",
}
# What the report says about labels a task derives instead of reading them.
DERIVED = {
    "localization": "centres are the mask centroids (derived, not annotated) and images with "
    "empty masks are left out of localization",
    "box_segmentation": "box masks are the masks' bounding boxes, filled (derived, not annotated)",
    "siamese": "siamese pairs are drawn within each split",
    "multilabel": "image-level labels are the mask channels present",
}


def data_notes(config: ml_collections.ConfigDict, dataset: data.Dataset | None = None) -> str:
    """Sentences on derived labels, the cheap-label pool and stages that train on other data."""
    used = {s.task for s in config.stages.values()}
    notes = [label_note(t, dataset) for t in sorted(used) if t in DERIVED]
    text = f" In this study {'; '.join(notes)}." if notes else ""
    for name, stage in config.stages.items():
        if "data" in stage:
            d = stage.data
            where = d.path or f"the built-in '{d.source}' generator (seed {d.seed})"
            text += f" Stage {name} trains on {where}."
    return text + (pool_note(config, dataset) if dataset is not None else "")


def empty_masks(dataset: data.Dataset) -> int:
    """Masked images whose mask is empty."""
    masked = data_labels.available(dataset.arrays, "mask")
    return int((masked & ~dataset.arrays["has_object"]).sum())


def label_note(task: str, dataset: data.Dataset | None) -> str:
    """DERIVED[task], or for centres and boxes a file stores for some images: how many were
    stored and how many derived from masks."""
    kind = {"localization": "center", "box_segmentation": "box"}.get(task)
    if dataset is None or kind is None or f"{kind}_derived" not in dataset.arrays:
        return DERIVED[task]
    cover = data_labels.coverage(dataset.arrays)[kind]
    if cover["derived"] == cover["available"]:
        return DERIVED[task]
    name = {"center": "centres", "box": "boxes"}[kind]
    return (
        f"{name} are given for {cover['available'] - cover['derived']} images and derived from "
        f"the masks for {cover['derived']}; images without one are left out of {task}"
    )


def pool_note(config: ml_collections.ConfigDict, dataset: data.Dataset) -> str:
    """The cheap-label pool beside the masked set: its size and the overlap check per fold."""
    has_mask = data_labels.available(dataset.arrays, "mask")
    if has_mask.all() or not has_mask.any():
        return ""
    p = config.protocol
    check = splits.pool_check(dataset.arrays["group"], has_mask, p.folds, p.split_seed)
    source = config.data.get("pool", "") or "the same data"
    how = "by id and group" if config.data.get("pool", "") else "by group"
    return (
        f" Pool: {check['pool']} images without masks ({source}) beside {check['masked']} "
        "masked images; the masked set gives the folds, label budgets and test images, and "
        "every examples='all' stage trains on the pool plus the fold's masked training images. "
        f"Overlap check ({how}, byte-identical images refused at load): test images of a fold "
        f"in its pretext {check['test_images_in_pretext']} per fold; pool images kept out for "
        f"sharing a group with the fold's test images {check['excluded_per_fold']}."
    )


def correction_record(
    tests: list[dict], metric: str, pairs: tuple[tuple[str, str], ...], correction: str
) -> dict:
    """What the corrected p-values were corrected over (``summary.json``'s ``correction``)."""
    counted = [c for c in tests if not math.isnan(c["p_t"])]  # NaN: a test that could not run
    return dict(method=correction, name=statistics.correction_name(correction), metric=metric,
                tests=len(counted), pairs=len(pairs),
                budgets=len({c["budget"] for c in counted}), headline="p_t_corrected",
                confidence=statistics.CONFIDENCE,
                bootstrap_resamples=statistics.BOOTSTRAP_RESAMPLES,
                bootstrap_seed=statistics.BOOTSTRAP_SEED)  # fmt: skip


def statistics_section(
    summaries: dict[str, list[dict]],
    tests: dict[str, list[dict]],
    metric: str,
    pairs: tuple[tuple[str, str], ...],
    correction: str,
) -> list[str]:
    """Per metric the mean ± sd table and the paired comparisons table, then what was
    computed: pairs, intervals, tests, effect size and the correction."""
    lines = []
    for m, summary in summaries.items():
        note = metric_summary.definition(m)
        lines += [
            f"## {metric_summary.label(m)} on the held-out fold (mean ± sd over folds × seeds)",
            "",
            *([f"{m}: {note}.", ""] if note else []),
            results_lib.markdown_table(summary),
            "",
            f"Paired differences of {m} (arm − reference):",
            "",
            results_lib.comparison_table(tests[m], correction),
            "",
        ]
    record = correction_record(tests[metric], metric, pairs, correction)
    return [
        *lines,
        "Pairs are the (fold, seed) runs both arms have. diff: mean paired difference with its "
        "95 % interval by t (n − 1 df) and by a BCa bootstrap over pairs "
        f"({statistics.BOOTSTRAP_RESAMPLES} resamples, seed {statistics.BOOTSTRAP_SEED}); "
        "p: two-sided paired t-test and Wilcoxon signed-rank test (Wilcoxon drops pairs with "
        "equal values; with n pairs its smallest p is 2/2^n, e.g. 0.0625 for 5); d_z: Cohen's "
        "d_z = mean / sd of the differences (no Hedges correction).",
        correction_sentence(record),
        "",
    ]


def correction_sentence(record: dict) -> str:
    """The report's line saying what a ``correction_record`` corrected over, or that no test
    could run (every comparison with fewer than 2 pairs gives NaN p-values)."""
    if not record["tests"]:
        return (
            f"Corrected p: none. None of the {record['pairs']} pair(s) of arms has 2 or more "
            f"(fold, seed) runs to pair on {record['metric']}, so no paired test ran and nothing "
            "was corrected; more folds or seeds give pairs."
        )
    return (
        f"Corrected p: {record['name']} over {record['tests']} tests: {record['pairs']} pair(s) "
        f"× {record['budgets']} budget(s), metric {record['metric']}; each test (t, Wilcoxon) "
        "corrected separately, the t-test's is the headline (the figure's stars). Other metrics "
        "are corrected over their own tests the same way."
    )


# The segmentation report's detail tables: empty ground truths and distances, then per class.
DETAIL = ("dice", "dice_all", "iou", "iou_all", "empty_fp_rate", "empty_count", "hd", "hd_inf",
          "hd95", "hd95_inf", "hd_all", "hd_all_inf", "boundary_length_diff")  # fmt: skip


def segmentation_section(rows: list[dict]) -> list[str]:
    """The detail tables of a segmentation study's final stages (``DETAIL`` metrics, then the
    per-class ``<m>[<class>]`` ones when the rows have them) with what each metric averages."""
    present = {r["metric"] for r in rows if int(r["final"])}
    detail = [m for m in DETAIL if m in present]
    by_class = sorted(m for m in present if "[" in m)
    lines = ["## Segmentation metrics in detail (final stages)", "",
             results_lib.wide_table(rows, detail), ""]  # fmt: skip
    if by_class:
        lines += ["Per class (images of that class only):", "",
                  results_lib.wide_table(rows, by_class), ""]  # fmt: skip
    notes = [
        f"- {m}: {metric_summary.definition(m)}." for m in detail if metric_summary.definition(m)
    ]
    return [*lines, "Each metric (unit in the header):", "", *notes, ""]


def budget_unit(config: ml_collections.ConfigDict) -> str | None:
    """'masks' when the budgets are counts, 'fraction of the training images' when they are
    fractions, None when they mix (masks saved then has no unit)."""
    kinds = {isinstance(b, int) for b in config.protocol.budgets}
    if len(kinds) > 1:
        return None
    return "masks" if kinds == {True} else "fraction of the training images"


def masks_saved_rows(
    config: ml_collections.ConfigDict,
    rows: list[dict],
    metric: str,
    pairs: tuple[tuple[str, str], ...],
) -> list[dict]:
    """``masks_saved.masks_saved`` rows of ``metric`` for every compared pair, each with its
    arm, reference, metric and budget unit ([] when the budgets mix counts and fractions)."""
    unit = budget_unit(config)
    if unit is None:
        return []
    per_arm: dict[str, dict[float, dict]] = defaultdict(dict)
    for (budget, arm), values in results_lib.final_values(rows, metric).items():
        if budget > 0:  # budget 0: a final stage on every image (examples='all'), no masks
            per_arm[arm][budget] = values
    higher = not lower_is_better(metric)  # else "reaching" a target means falling to it
    return [
        dict(arm=arm, reference=ref, metric=metric, unit=unit, **row)
        for arm, ref in pairs
        for row in masks_saved.masks_saved(per_arm[arm], per_arm[ref], higher)
    ]


def masks_saved_section(saved: list[dict]) -> list[str]:
    """The masks-saved tables of report.md, one per compared pair ([] without rows)."""
    if not saved:
        return []
    lines = ["## Masks saved", ""]
    for arm, ref in dict.fromkeys((s["arm"], s["reference"]) for s in saved):
        table = [s for s in saved if (s["arm"], s["reference"]) == (arm, ref)]
        first = table[0]
        lines += [
            f"{ref} vs {arm}: the budget {ref} needs to reach {arm}'s mean {first['metric']} at "
            f"each budget, and masks saved = that budget − the budget (in {first['unit']}; "
            f"{first['n']} (fold, seed) pairs):",
            "",
            masks_saved.markdown_table(table, arm, ref, [s["budget"] for s in table]),
            "",
        ]
    return [
        *lines,
        "The reference arm's mean curve is interpolated linearly in log(budget) and its first "
        "crossing of the target counts; '> B' means not reached within the study's budgets, "
        "'< B' already exceeded at the smallest. 95 % interval: percentile bootstrap over "
        f"(fold, seed) pairs ({statistics.BOOTSTRAP_RESAMPLES} resamples, seed "
        f"{statistics.BOOTSTRAP_SEED}), both curves and the crossing recomputed in each "
        "resample.",
        "",
    ]


def write_report(
    config: ml_collections.ConfigDict, workdir: str, rows: list[dict], dataset: data.Dataset
) -> str:
    """Print the summary and write ``report.md`` (with figures under ``figures/`` and the
    machine description in ``machine.json``); returns the report text."""
    pairs, correction = results_lib.report_keys(config)
    final_stage = config.stages[plan_lib.arm_stages(config, pairs[0][0])[-1]]
    metric = PRIMARY.get(final_stage.task, "loss")
    metrics = [metric, *(m for m in config.get("report_metrics", ()) if m != metric)]
    summaries = {m: results_lib.summarize(rows, m) for m in metrics}
    tests = {m: results_lib.comparisons(rows, m, pairs, correction) for m in metrics}
    summary = summaries[metric]
    saved = masks_saved_rows(config, rows, metric, pairs)
    pretext_rows = results_lib.pretext_summary(rows)
    planned = plan_lib.plan(config, workdir)
    health = pretext.collect(planned, workdir)
    converged = convergence.collect(planned)
    atomic.write_json(
        os.path.join(workdir, "summary.json"),
        {"final": summary, "metrics": summaries, "comparisons": tests,
         "correction": correction_record(tests[metric], metric, pairs, correction),
         "masks_saved": saved, "pretext": pretext_rows, "pretext_health": health,
         "convergence": converged},
    )  # fmt: skip
    figures = health_figure(workdir, health)
    figures += report_figures(config, workdir, summary, tests[metric], metric, correction)
    figures += first_split_figures(config, workdir, dataset)
    extra = analyses.unfreeze_section(config, workdir, summary, metric)
    extra += analyses.weight_distance_section(config, workdir)
    info = machine.describe()
    atomic.write_json(os.path.join(workdir, "machine.json"), info)
    lines = [
        "# Study report",
        "",
        *pretext.report_lines(health, pretext.mode(config)),
        f"Data: {dataset.name} ({len(dataset)} images, "
        f"{empty_masks(dataset)} with empty masks).{data_notes(config, dataset)}",
        f"Protocol: {config.protocol.folds}-fold group-aware CV (folds run: "
        f"{config.protocol.run_folds or config.protocol.folds}), label budgets "
        f"{tuple(config.protocol.budgets)} (nested), seeds {tuple(config.protocol.seeds)}.",
        "Arms: " + "; ".join(f"{a} = {config.arms[a]}" for a in config.arms) + ".",
        "",
        *masks_saved_section(saved),
        *statistics_section(summaries, tests, metric, pairs, correction),
        *(segmentation_section(rows) if metric == metric_summary.HEADLINE else []),
        *convergence.report_lines(converged),
        *extra,
        "## Earlier stages",
        "",
        "| stage | metric | n | mean ± sd |",
        "|---|---|---:|---|",
        *(
            f"| {p['stage']} | {p['metric']} | {p['n']} | {p['mean']:.3f} ± {p['sd']:.3f} |"
            for p in pretext_rows
        ),
        "",
        *(["## Figures", "", *figures] if figures else []),
        "Files: `results.csv` (one row per run × metric), `summary.json`, `study_config.json`, "
        "`machine.json`, `figures/`, per-run directories "
        "`fold_F/seed_S/[budget_B/]STAGE/` with `config.json`, `metrics.jsonl`, `tb/`, "
        "`checkpoints/`, `result.json`.",
        "",
        "## Config",
        "",
        "<details><summary>Study config (JSON, as in <code>study_config.json</code>)</summary>",
        "",
        "```json",
        config.to_json_best_effort(sort_keys=True, indent=1),
        "```",
        "",
        "</details>",
        "",
        "## Machine",
        "",
        "The machine that wrote this report (`machine.json`); runs read back from an earlier "
        "invocation may have trained elsewhere.",
        "",
        machine.markdown(info),
    ]
    text = "\n".join(lines) + "\n"
    atomic.write_text(os.path.join(workdir, "report.md"), text)
    print(text)
    return text
