"""The tidy results table of a study and its summary: mean ± sd per arm × budget, and per
compared pair of arms × budget the paired statistics of ``studies.statistics`` (pairs = the same
fold and seed), with the p-values corrected over all the pairs × budgets of the metric.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from jaxseg.eval import summary as metric_summary
from jaxseg.studies import statistics

FIELDS = ("arm", "stage", "final", "fold", "seed", "budget", "metric", "value", "n_train", "n_test")


def check_current(result: dict, where: str) -> None:
    """ValueError (one line) when ``result`` is a segmentation result.json written before the
    headline Dice left out empty ground truths (no ``empty_count``): its 'dice' is the mean over
    every image and would be reported under the new meaning, so the run must be retrained."""
    if result.get("primary") == metric_summary.HEADLINE and "empty_count" not in result["metrics"]:
        raise ValueError(
            f"{where}: result.json predates the segmentation metrics that report empty ground "
            "truths apart ('dice' there averages every image); rerun the study with --overwrite"
        )


def rows_for(arm: str, runs: Iterable, results: Iterable[dict]) -> list[dict]:
    """One row per metric of each run of an arm's chain; ``final`` marks the arm's last stage.
    Results from before the current segmentation metrics are refused (``check_current``)."""
    runs, results = list(runs), list(results)
    rows = []
    for i, (run, result) in enumerate(zip(runs, results, strict=True)):
        check_current(result, getattr(run, "workdir", arm))
        for metric, value in result["metrics"].items():
            rows.append(
                dict(arm=arm, stage=run.stage, final=int(i == len(runs) - 1), fold=run.fold,
                     seed=run.seed, budget=run.budget, metric=metric, value=value,
                     n_train=result["n_train"], n_test=result["n_test"])
            )  # fmt: skip
    return rows


def write_csv(rows: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: str) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mean_sd(values) -> tuple[int, float, float]:
    """(n, mean, sample sd); sd is NaN for a single value."""
    v = np.asarray(list(values), dtype=float)
    return len(v), float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def compare_pairs(compare, arms=None) -> tuple[tuple[str, str], ...]:
    """``config.compare`` as (arm, reference) pairs, from any of its forms: one pair
    ``("a", "b")`` (the form of older study configs), ``"a:b"``, or a sequence of pairs and
    ``"a:b"`` strings. With ``arms``, every name must be one of them. One-line ValueError."""
    if isinstance(compare, str):
        items = [compare]
    elif len(compare) == 2 and all(isinstance(c, str) and ":" not in c for c in compare):
        items = [tuple(compare)]
    else:
        items = list(compare)
    pairs = []
    for item in items:
        pair = tuple(item.split(":")) if isinstance(item, str) else tuple(item)
        if len(pair) != 2 or not all(isinstance(arm, str) and arm for arm in pair):
            raise ValueError(
                f"compare: {item!r} is not a pair of arms; write ('a', 'b'), 'a:b' or a tuple "
                "of those"
            )
        pairs.append(pair)
    if not pairs:
        raise ValueError("compare names no pair of arms; write ('a', 'b'), 'a:b' or a tuple")
    unknown = [arm for pair in pairs for arm in pair if arms is not None and arm not in arms]
    if unknown:
        raise ValueError(f"compare names arm {unknown[0]!r}; arms are {list(arms)}")
    return tuple(dict.fromkeys(pairs))


def report_keys(config) -> tuple[tuple[tuple[str, str], ...], str]:
    """The checked (pairs, correction) of a study config; ``correction`` defaults to 'holm' (study
    configs recorded before it existed)."""
    correction = config.get("correction", "holm")
    statistics.correction_name(correction)
    return compare_pairs(config.compare, config.arms), correction


def final_values(rows: list[dict], metric: str) -> dict[tuple[float, str], dict[tuple, float]]:
    """{(budget, arm): {(fold, seed): value}} of ``metric`` in the final stages' rows."""
    values: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if int(r["final"]) and r["metric"] == metric:
            key = (float(r["budget"]), r["arm"])
            values[key][(int(r["fold"]), int(r["seed"]))] = float(r["value"])
    return values


def summarize(rows: list[dict], metric: str) -> list[dict]:
    """Per budget × arm (final stages, ``metric``, any name): n, mean, sd over folds × seeds."""
    values = final_values(rows, metric)
    out = []
    for budget, arm in sorted(values):
        n, mean, sd = mean_sd(values[(budget, arm)].values())
        out.append(dict(budget=budget, arm=arm, metric=metric, n=n, mean=mean, sd=sd))
    return out


def comparisons(
    rows: list[dict], metric: str, pairs: tuple[tuple[str, str], ...], correction: str = "holm"
) -> list[dict]:
    """Per pair (arm, reference) × budget where the arm has results: ``statistics.compare`` of
    the arm − the reference, with ``p_t_corrected`` and ``p_wilcoxon_corrected``: each test's
    p-values adjusted by ``correction`` over all the pairs × budgets of ``metric``."""
    values = final_values(rows, metric)
    budgets = sorted({b for b, _ in values})
    out = [
        dict(budget=b, arm=arm, reference=ref, metric=metric,
             **statistics.compare(values[(b, arm)], values.get((b, ref), {})))
        for arm, ref in pairs
        for b in budgets
        if (b, arm) in values
    ]  # fmt: skip
    for test in ("p_t", "p_wilcoxon"):
        adjusted = statistics.correct([c[test] for c in out], correction)
        for c, p in zip(out, adjusted, strict=True):
            c[f"{test}_corrected"] = float(p)
    return out


def pretext_summary(rows: list[dict]) -> list[dict]:
    """Mean ± sd of each metric of non-final stages, each run counted once."""
    seen: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if not int(r["final"]):
            seen[(r["stage"], r["metric"])][(r["fold"], r["seed"], r["budget"])] = float(r["value"])
    out = []
    for (stage, metric), runs in sorted(seen.items()):
        n, mean, sd = mean_sd(runs.values())
        out.append(dict(stage=stage, metric=metric, n=n, mean=mean, sd=sd))
    return out


def format_p(p: float) -> str:
    """A p-value to 3 significant digits; '' for NaN (no test on that row)."""
    return "" if math.isnan(p) else f"{p:.3g}"


def format_budget(budget: float) -> str:
    """4.0 → '4' (a count), 0.25 → '0.25' (a fraction)."""
    return str(int(budget)) if float(budget).is_integer() else str(budget)


def markdown_table(summary: list[dict]) -> str:
    """The summary as a Markdown table, one line per budget × arm; the header names the metric
    with its unit (``eval.summary.label``)."""
    name = metric_summary.label(summary[0]["metric"]) if summary else "metric"
    lines = [
        f"| budget | arm | n | {name} mean ± sd |",
        "|---:|---|---:|---|",
    ]
    for s in summary:
        lines.append(
            f"| {format_budget(s['budget'])} | {s['arm']} | {s['n']} | "
            f"{s['mean']:.3f} ± {s['sd']:.3f} |"
        )
    return "\n".join(lines)


def _number(value: float, digits: str = ".3f") -> str:
    """A number for a table; '' for NaN (a test that could not run)."""
    return "" if math.isnan(value) else format(value, digits)


def _interval(c: dict, kind: str) -> str:
    low, high = c[f"ci_{kind}_low"], c[f"ci_{kind}_high"]
    return "" if math.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def comparison_table(comparisons: list[dict], correction: str) -> str:
    """``comparisons`` as a Markdown table, one line per pair × budget: the mean paired
    difference with its t and bootstrap 95 % intervals, both p-values raw and corrected, d_z."""
    name = statistics.correction_name(correction)
    lines = [
        "| budget | arm − reference | pairs | diff [95 % CI, t] | 95 % CI, bootstrap | p (t) "
        f"| p (t, {name}) | p (Wilcoxon) | p (Wilcoxon, {name}) | d_z |",
        "|---:|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in comparisons:
        diff = f"{_number(c['diff'])} {_interval(c, 't')}".strip()
        lines.append(
            f"| {format_budget(c['budget'])} | {c['arm']} − {c['reference']} | {c['n']} | "
            f"{diff} | {_interval(c, 'boot')} | "
            f"{format_p(c['p_t'])} | {format_p(c['p_t_corrected'])} | "
            f"{format_p(c['p_wilcoxon'])} | {format_p(c['p_wilcoxon_corrected'])} | "
            f"{_number(c['d_z'], '.2f')} |"
        )
    return "\n".join(lines)


def _is_count(metric: str) -> bool:
    """Whether ``metric`` counts infinite cases (``<m>_inf``: summed, not averaged)."""
    return metric.split("[", 1)[0].endswith("_inf")


def wide_table(rows: list[dict], metrics: list[str]) -> str:
    """Final stages' ``metrics`` side by side, one line per budget × arm: mean ± sd over folds ×
    seeds, except counts of infinite cases (``*_inf``), summed over the runs; headers carry
    units. '' where an arm has no value of that metric (e.g. a class absent from its folds)."""
    cells: dict[tuple[float, str], dict[str, str]] = defaultdict(dict)
    for metric in metrics:
        for (budget, arm), values in final_values(rows, metric).items():
            v = list(values.values())
            if _is_count(metric):
                cells[(budget, arm)][metric] = f"{sum(v):g}"
            else:
                _, mean, sd = mean_sd(v)
                cells[(budget, arm)][metric] = f"{mean:.3f} ± {_number(sd)}".removesuffix(" ± ")
    headers = [f"{m} (images, total)" if _is_count(m) else metric_summary.label(m) for m in metrics]
    lines = [
        "| budget | arm | " + " | ".join(headers) + " |",
        "|---:|---|" + "---:|" * len(metrics),
    ]
    for (budget, arm), row in sorted(cells.items()):
        values = " | ".join(row.get(m, "") for m in metrics)
        lines.append(f"| {format_budget(budget)} | {arm} | {values} |")
    return "\n".join(lines)
