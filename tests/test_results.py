"""Tests for jaxseg.studies.results: rows, CSV round trip, summary statistics (checked against
numpy / scipy on the same numbers: paired t and Wilcoxon signed-rank) and the Markdown table."""

import functools
import math

import numpy as np
import pytest
from scipy import stats

from jaxseg.studies import results
from jaxseg.studies.plan import Run

FOLDS, SEEDS, BUDGETS = (0, 1, 2), (0, 1), (4, 8)
ARMS = {"pretrained": 1, "scratch": 2}


def _value(arm: str, fold: int, seed: int, budget: int) -> float:
    rng = np.random.default_rng([ARMS[arm], fold, seed, budget])
    return float(0.6 + 0.1 * (arm == "pretrained") + 0.1 * rng.random())


def _seg_result(arm: str, fold: int, seed: int, budget: int) -> dict:
    return {"metrics": {"dice": _value(arm, fold, seed, budget), "loss": 9.0}, "n_train": budget,
            "n_test": 8}  # fmt: skip


def _rows() -> list[dict]:
    """Rows as the study runner builds them: the localize run is shared across budgets."""
    rows = []
    for fold in FOLDS:
        for seed in SEEDS:
            for budget in BUDGETS:
                loc = Run("w/loc", None, "localize", fold, seed, 0)
                seg = Run("w/seg", None, "segment", fold, seed, budget)
                scr = Run("w/scr", None, "scratch", fold, seed, budget)
                loc_result = {
                    "metrics": {"center_error": 2.0 + fold + 0.5 * seed, "loss": 0.1},
                    "n_train": 30,
                    "n_test": 8,
                }

                seg_result = functools.partial(_seg_result, fold=fold, seed=seed, budget=budget)

                rows += results.rows_for(
                    "pretrained", [loc, seg], [loc_result, seg_result("pretrained")]
                )
                rows += results.rows_for("scratch", [scr], [seg_result("scratch")])
    return rows


def _values(arm, budget):
    return [_value(arm, f, s, budget) for f in FOLDS for s in SEEDS]


def test_rows_for():
    loc = Run("w/loc", None, "localize", 1, 2, 0)
    seg = Run("w/seg", None, "segment", 1, 2, 4)
    rows = results.rows_for(
        "pretrained",
        [loc, seg],
        [
            {"metrics": {"center_error": 3.0}, "n_train": 30, "n_test": 8},
            {"metrics": {"dice": 0.7, "loss": 0.4}, "n_train": 4, "n_test": 8},
        ],
    )
    assert rows == [
        dict(arm="pretrained", stage="localize", final=0, fold=1, seed=2, budget=0,
             metric="center_error", value=3.0, n_train=30, n_test=8),
        dict(arm="pretrained", stage="segment", final=1, fold=1, seed=2, budget=4,
             metric="dice", value=0.7, n_train=4, n_test=8),
        dict(arm="pretrained", stage="segment", final=1, fold=1, seed=2, budget=4,
             metric="loss", value=0.4, n_train=4, n_test=8),
    ]  # fmt: skip
    with pytest.raises(ValueError):
        results.rows_for("pretrained", [loc, seg], [{"metrics": {}, "n_train": 1, "n_test": 1}])


def test_summarize_means_sds_and_paired_t():
    summary = results.summarize(_rows(), "dice", ("pretrained", "scratch"))
    assert [(s["budget"], s["arm"]) for s in summary] == [
        (4.0, "pretrained"),
        (4.0, "scratch"),
        (8.0, "pretrained"),
        (8.0, "scratch"),
    ]
    for s in summary:
        v = np.array(_values(s["arm"], int(s["budget"])))
        assert s["metric"] == "dice"
        assert s["n"] == len(FOLDS) * len(SEEDS) == 6
        assert s["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert s["sd"] == pytest.approx(v.std(ddof=1), rel=1e-12)
        if s["arm"] == "pretrained":
            ref = stats.ttest_rel(v, _values("scratch", int(s["budget"]))).pvalue
            assert s["p_t"] == pytest.approx(ref, rel=1e-9)
            assert 0 < s["p_t"] < 0.01  # pretrained is 0.1 better throughout
        else:
            assert math.isnan(s["p_t"]) and math.isnan(s["p_wilcoxon"])


def test_summarize_pairs_by_fold_and_seed():
    rows = [r for r in _rows() if not (r["arm"] == "scratch" and r["fold"] == 0 and r["seed"] == 1)]
    rows = list(reversed(rows))  # row order must not matter
    summary = results.summarize(rows, "dice", ("pretrained", "scratch"))
    s4 = next(s for s in summary if s["budget"] == 4 and s["arm"] == "pretrained")
    pairs = [(f, s) for f in FOLDS for s in SEEDS if (f, s) != (0, 1)]
    a = [_value("pretrained", f, s, 4) for f, s in pairs]
    b = [_value("scratch", f, s, 4) for f, s in pairs]
    assert s4["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert s4["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-9)
    scratch4 = next(s for s in summary if s["budget"] == 4 and s["arm"] == "scratch")
    assert scratch4["n"] == 5


def test_identical_arms_p_is_one_and_single_pair_nan():
    rows = [dict(r) for r in _rows() if r["arm"] == "scratch"]
    twin = [dict(r, arm="twin") for r in rows]
    summary = results.summarize(rows + twin, "dice", ("twin", "scratch"))
    assert all(s["p_t"] == s["p_wilcoxon"] == 1.0 for s in summary if s["arm"] == "twin")
    assert math.isnan(results.paired_p({(0, 0): 1.0}, {(0, 0): 2.0}))
    assert math.isnan(results.paired_p({(0, 0): 1.0, (0, 1): 2.0}, {(1, 0): 1.0}))
    a, b = {(0, 0): 1.0, (0, 1): 2.0, (1, 0): 4.0}, {(0, 0): 1.5, (0, 1): 2.1, (1, 0): 3.0}
    ref = stats.ttest_rel([1.0, 2.0, 4.0], [1.5, 2.1, 3.0]).pvalue
    assert results.paired_p(a, b) == pytest.approx(ref, rel=1e-12)


def test_mean_sd():
    n, mean, sd = results.mean_sd([1.0, 2.0, 4.0])
    assert (n, mean) == (3, pytest.approx(7 / 3))
    assert sd == pytest.approx(
        math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    )
    n, mean, sd = results.mean_sd(iter([5.0]))
    assert (n, mean) == (1, 5.0) and math.isnan(sd)


def test_pretext_summary_counts_each_run_once():
    summary = results.pretext_summary(_rows())
    assert [(s["stage"], s["metric"]) for s in summary] == [
        ("localize", "center_error"),
        ("localize", "loss"),
    ]
    ce = summary[0]
    v = np.array([2.0 + f + 0.5 * s for f in FOLDS for s in SEEDS])
    assert ce["n"] == len(FOLDS) * len(SEEDS)  # not × budgets: the run is shared
    assert ce["mean"] == pytest.approx(v.mean())
    assert ce["sd"] == pytest.approx(v.std(ddof=1))


def test_csv_round_trip(tmp_path):
    rows = _rows()
    path = str(tmp_path / "results.csv")
    results.write_csv(rows, path)
    back = results.read_csv(path)
    assert len(back) == len(rows)
    assert list(back[0]) == list(results.FIELDS)
    for r, b in zip(rows, back, strict=True):
        assert {k: str(v) for k, v in r.items()} == b
        assert float(b["value"]) == r["value"]  # repr round-trips floats exactly
    compare = ("pretrained", "scratch")
    assert results.summarize(back, "dice", compare) == results.summarize(rows, "dice", compare)
    assert results.pretext_summary(back) == results.pretext_summary(rows)


def test_markdown_table():
    summary = results.summarize(_rows(), "dice", ("pretrained", "scratch"))
    table = results.markdown_table(summary, ("pretrained", "scratch"))
    lines = table.splitlines()
    assert len(lines) == 2 + len(BUDGETS) * 2
    assert "dice mean ± sd" in lines[0] and "pretrained vs scratch" in lines[0]
    body = lines[2:]
    for line, s in zip(body, summary, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == str(int(s["budget"]))  # 4, not 4.0
        assert cells[1] == s["arm"]
        assert cells[2] == "6"
        assert cells[3] == f"{s['mean']:.3f} ± {s['sd']:.3f}"
        assert cells[4] == ("" if s["arm"] == "scratch" else f"{s['p_t']:.3g}")
        assert cells[5] == ("" if s["arm"] == "scratch" else f"{s['p_wilcoxon']:.3g}")
    assert "paired t" in lines[0] and "Wilcoxon" in lines[0]
    assert lines[1] == "|---:|---|---:|---|---:|---:|"
    frac = [
        dict(budget=0.25, arm="a", metric="dice", n=1, mean=0.5, sd=math.nan, p_t=math.nan,
             p_wilcoxon=math.nan)
    ]  # fmt: skip
    assert "| 0.25 | a | 1 | 0.500 ± nan |  |  |" in results.markdown_table(frac, ("a", "b"))


def test_summarize_wilcoxon_matches_scipy():
    summary = results.summarize(_rows(), "dice", ("pretrained", "scratch"))
    for s in summary:
        if s["arm"] == "pretrained":
            a, b = _values("pretrained", int(s["budget"])), _values("scratch", int(s["budget"]))
            assert s["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
            assert s["p_wilcoxon"] == pytest.approx(2 / 2**6)  # 6 pairs, all one way: exact
            assert s["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)


def test_wilcoxon_p_edge_cases():
    assert math.isnan(results.wilcoxon_p({}, {}))
    assert math.isnan(results.wilcoxon_p({(0, 0): 1.0}, {(0, 0): 2.0}))  # one pair
    assert math.isnan(results.wilcoxon_p({(0, 0): 1.0, (0, 1): 2.0}, {(1, 0): 1.0}))  # none shared
    same = {(0, 0): 0.5, (0, 1): 0.7, (1, 0): 0.9}
    assert results.wilcoxon_p(same, dict(same)) == 1.0
    # A zero difference is dropped (zero_method='wilcox', scipy's default): p over 4 pairs.
    a = {(0, s): v for s, v in enumerate([0.9, 0.8, 0.7, 0.6, 0.5])}
    b = {(0, s): v for s, v in enumerate([0.9, 0.5, 0.4, 0.3, 0.1])}
    x, y = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    p = results.wilcoxon_p(a, b)
    assert p == pytest.approx(stats.wilcoxon(x, y).pvalue, rel=1e-12)
    assert p == pytest.approx(stats.wilcoxon(x[1:], y[1:]).pvalue, rel=1e-12)
    assert p == pytest.approx(2 / 2**4)
    # Only common keys pair up; key order does not matter.
    c = {(1, 0): 0.2, **dict(reversed(list(b.items())))}
    assert results.wilcoxon_p(a, c) == p


def test_summarize_any_metric_lower_is_better():
    """Centre error (lower is better): the same numbers, the same two-sided p-values."""
    rows = [
        dict(r, metric="center_error", value=10 * (1 - float(r["value"])))
        for r in _rows()
        if r["final"] and r["metric"] == "dice"
    ]
    summary = results.summarize(rows, "center_error", ("pretrained", "scratch"))
    dice = results.summarize(_rows(), "dice", ("pretrained", "scratch"))
    assert len(summary) == len(dice) == 4
    for s, d in zip(summary, dice, strict=True):
        assert s["metric"] == "center_error" and s["arm"] == d["arm"]
        assert s["mean"] == pytest.approx(10 * (1 - d["mean"]))
        assert s["sd"] == pytest.approx(10 * d["sd"])
        if s["arm"] == "pretrained":
            assert s["p_t"] == pytest.approx(d["p_t"], rel=1e-6)
            assert s["p_wilcoxon"] == pytest.approx(d["p_wilcoxon"], rel=1e-9)
    assert "center_error mean ± sd" in results.markdown_table(summary, ("pretrained", "scratch"))
    assert results.summarize(rows, "nope", ("pretrained", "scratch")) == []
