"""The tidy results table of a study and its summary: mean ± sd per arm × budget and a paired
t-test between the compared arms per budget (pairs = the same fold and seed)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from scipy import stats

FIELDS = ("arm", "stage", "final", "fold", "seed", "budget", "metric", "value", "n_train", "n_test")


def rows_for(arm: str, runs: Iterable, results: Iterable[dict]) -> list[dict]:
    """One row per metric of each run of an arm's chain; ``final`` marks the arm's last stage."""
    runs, results = list(runs), list(results)
    rows = []
    for i, (run, result) in enumerate(zip(runs, results, strict=True)):
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


def paired_p(a: dict, b: dict) -> float:
    """Paired t-test p-value over the keys both dicts share; NaN under 2 pairs, 1 if identical."""
    pairs = sorted(set(a) & set(b))
    if len(pairs) < 2:
        return math.nan
    x, y = np.array([a[p] for p in pairs]), np.array([b[p] for p in pairs])
    return 1.0 if np.array_equal(x, y) else float(stats.ttest_rel(x, y).pvalue)


def summarize(rows: list[dict], metric: str, compare: tuple[str, str]) -> list[dict]:
    """Per budget × arm (final stages, ``metric``): n, mean, sd; on ``compare[0]``'s row the
    paired t-test p-value against ``compare[1]`` over (fold, seed) pairs."""
    values: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if int(r["final"]) and r["metric"] == metric:
            key = (float(r["budget"]), r["arm"])
            values[key][(int(r["fold"]), int(r["seed"]))] = float(r["value"])
    out = []
    for budget, arm in sorted(values):
        n, mean, sd = mean_sd(values[(budget, arm)].values())
        p = math.nan
        if arm == compare[0]:
            p = paired_p(values[(budget, arm)], values.get((budget, compare[1]), {}))
        out.append(dict(budget=budget, arm=arm, metric=metric, n=n, mean=mean, sd=sd, p_value=p))
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


def markdown_table(summary: list[dict], compare: tuple[str, str]) -> str:
    """The summary as a Markdown table (one line per arm × budget)."""
    lines = [
        f"| budget | arm | n | {summary[0]['metric'] if summary else 'metric'} mean ± sd "
        f"| p ({compare[0]} vs {compare[1]}, paired t) |",
        "|---:|---|---:|---|---:|",
    ]
    for s in summary:
        budget = int(s["budget"]) if float(s["budget"]).is_integer() else s["budget"]
        p = "" if math.isnan(s["p_value"]) else f"{s['p_value']:.3g}"
        lines.append(
            f"| {budget} | {s['arm']} | {s['n']} | {s['mean']:.3f} ± {s['sd']:.3f} | {p} |"
        )
    return "\n".join(lines)
