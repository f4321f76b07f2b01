"""Tests for jaxseg.studies.results: rows, CSV round trip, summary statistics (checked against
numpy / scipy on the same numbers) and the Markdown table."""

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
            assert s["p_value"] == pytest.approx(ref, rel=1e-9)
            assert 0 < s["p_value"] < 0.01  # pretrained is 0.1 better throughout
        else:
            assert math.isnan(s["p_value"])


def test_summarize_pairs_by_fold_and_seed():
    rows = [r for r in _rows() if not (r["arm"] == "scratch" and r["fold"] == 0 and r["seed"] == 1)]
    rows = list(reversed(rows))  # row order must not matter
    summary = results.summarize(rows, "dice", ("pretrained", "scratch"))
    s4 = next(s for s in summary if s["budget"] == 4 and s["arm"] == "pretrained")
    pairs = [(f, s) for f in FOLDS for s in SEEDS if (f, s) != (0, 1)]
    a = [_value("pretrained", f, s, 4) for f, s in pairs]
    b = [_value("scratch", f, s, 4) for f, s in pairs]
    assert s4["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    scratch4 = next(s for s in summary if s["budget"] == 4 and s["arm"] == "scratch")
    assert scratch4["n"] == 5


def test_identical_arms_p_is_one_and_single_pair_nan():
    rows = [dict(r) for r in _rows() if r["arm"] == "scratch"]
    twin = [dict(r, arm="twin") for r in rows]
    summary = results.summarize(rows + twin, "dice", ("twin", "scratch"))
    assert all(s["p_value"] == 1.0 for s in summary if s["arm"] == "twin")
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
        assert cells[4] == ("" if s["arm"] == "scratch" else f"{s['p_value']:.3g}")
    frac = [dict(budget=0.25, arm="a", metric="dice", n=1, mean=0.5, sd=math.nan, p_value=math.nan)]
    assert "| 0.25 | a | 1 |" in results.markdown_table(frac, ("a", "b"))
