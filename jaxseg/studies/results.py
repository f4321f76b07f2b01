"""The tidy results table of a study and its summary: mean ± sd per arm × budget and two paired
tests between the compared arms per budget (pairs = the same fold and seed): the t-test and the
Wilcoxon signed-rank test.

Both tests are two-sided and symmetric in the arms, so they serve metrics where higher is better
(Dice) and where lower is better (centre error) alike; the summary reports, it does not rank.

Zero differences in the Wilcoxon test use scipy's default ``zero_method='wilcox'``: a pair whose
arms scored exactly the same (e.g. both Dice 0 on a fold where nothing was learnt) says nothing
about which arm is better and is dropped, as in Wilcoxon's original test and R's
``wilcox.test(paired=TRUE)``, so the p-value equals a plain ``scipy.stats.wilcoxon(x, y)``.
'zsplit' would keep such pairs as half a rank for each side, pulling p towards 1 by an amount
that depends on the ranks of the zeros among the real differences, which is harder to read. With
n ≤ 13 nonzero pairs scipy's p is exact (with ties or zeros, by enumerating all sign flips).
Note that with n pairs the smallest two-sided Wilcoxon p is 2/2^n: 0.0625 for 5 pairs, so five
folds × one seed can never reach p < 0.05 with it, whatever the effect.
"""

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


def _pairs(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of the keys both dicts share (sorted by key); None under 2 pairs."""
    keys = sorted(set(a) & set(b))
    if len(keys) < 2:
        return None
    return np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)


def paired_p(a: dict, b: dict) -> float:
    """Paired t-test p-value over the keys both dicts share; NaN under 2 pairs, 1 if identical."""
    pairs = _pairs(a, b)
    if pairs is None:
        return math.nan
    x, y = pairs
    return 1.0 if np.array_equal(x, y) else float(stats.ttest_rel(x, y).pvalue)


def wilcoxon_p(a: dict, b: dict) -> float:
    """Wilcoxon signed-rank p-value (two-sided, ``zero_method='wilcox'``: zero differences are
    dropped, see the module doc) over the keys both dicts share; NaN under 2 pairs, 1 if
    identical."""
    pairs = _pairs(a, b)
    if pairs is None:
        return math.nan
    x, y = pairs
    return 1.0 if np.array_equal(x, y) else float(stats.wilcoxon(x, y).pvalue)


def summarize(rows: list[dict], metric: str, compare: tuple[str, str]) -> list[dict]:
    """Per budget × arm (final stages, ``metric``, any name): n, mean, sd; on ``compare[0]``'s row
    the paired t-test (``p_t``) and Wilcoxon signed-rank (``p_wilcoxon``) p-values against
    ``compare[1]`` over (fold, seed) pairs; NaN on the other rows."""
    values: dict[tuple, dict[tuple, float]] = defaultdict(dict)
    for r in rows:
        if int(r["final"]) and r["metric"] == metric:
            key = (float(r["budget"]), r["arm"])
            values[key][(int(r["fold"]), int(r["seed"]))] = float(r["value"])
    out = []
    for budget, arm in sorted(values):
        n, mean, sd = mean_sd(values[(budget, arm)].values())
        p_t = p_w = math.nan
        if arm == compare[0]:
            other = values.get((budget, compare[1]), {})
            p_t = paired_p(values[(budget, arm)], other)
            p_w = wilcoxon_p(values[(budget, arm)], other)
        out.append(
            dict(budget=budget, arm=arm, metric=metric, n=n, mean=mean, sd=sd, p_t=p_t,
                 p_wilcoxon=p_w)
        )  # fmt: skip
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


def markdown_table(summary: list[dict], compare: tuple[str, str]) -> str:
    """The summary as a Markdown table (one line per arm × budget) with both p-values."""
    vs = f"{compare[0]} vs {compare[1]}"
    lines = [
        f"| budget | arm | n | {summary[0]['metric'] if summary else 'metric'} mean ± sd "
        f"| p ({vs}, paired t) | p ({vs}, Wilcoxon) |",
        "|---:|---|---:|---|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {format_budget(s['budget'])} | {s['arm']} | {s['n']} | "
            f"{s['mean']:.3f} ± {s['sd']:.3f} | {format_p(s['p_t'])} | "
            f"{format_p(s['p_wilcoxon'])} |"
        )
    return "\n".join(lines)
