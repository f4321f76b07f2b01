"""Tests for jaxseg.studies.results: rows, CSV round trip, summary statistics (checked against
numpy / scipy on the same numbers), comparisons of several pairs with corrected p-values, the
compare forms of a study config and the Markdown tables."""

import functools
import math

import ml_collections
import numpy as np
import pytest
from scipy import stats

from jaxseg.studies import results, statistics
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


def test_summarize_means_sds():
    summary = results.summarize(_rows(), "dice")
    assert [(s["budget"], s["arm"]) for s in summary] == [
        (4.0, "pretrained"),
        (4.0, "scratch"),
        (8.0, "pretrained"),
        (8.0, "scratch"),
    ]
    for s in summary:
        v = np.array(_values(s["arm"], int(s["budget"])))
        assert set(s) == {"budget", "arm", "metric", "n", "mean", "sd"}
        assert s["metric"] == "dice"
        assert s["n"] == len(FOLDS) * len(SEEDS) == 6
        assert s["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert s["sd"] == pytest.approx(v.std(ddof=1), rel=1e-12)


def test_comparisons_match_scipy_and_are_corrected():
    comps = results.comparisons(_rows(), "dice", (("pretrained", "scratch"),))
    assert [(c["budget"], c["arm"], c["reference"]) for c in comps] == [
        (4.0, "pretrained", "scratch"),
        (8.0, "pretrained", "scratch"),
    ]
    raw = []
    for c in comps:
        a, b = _values("pretrained", int(c["budget"])), _values("scratch", int(c["budget"]))
        assert c["n"] == 6 and c["metric"] == "dice"
        assert c["diff"] == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
        assert c["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
        assert c["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)
        assert c["p_wilcoxon"] == pytest.approx(2 / 2**6)  # 6 pairs, all one way: exact
        assert 0 < c["p_t"] < 0.01  # pretrained is 0.1 better throughout
        raw.append(c["p_t"])
    # Holm over the 2 budgets: the smaller p doubled, the larger kept unless below that
    low, high = sorted(raw)
    by_raw = {p: c["p_t_corrected"] for p, c in zip(raw, comps, strict=True)}
    assert by_raw[low] == pytest.approx(2 * low, rel=1e-12)
    assert by_raw[high] == pytest.approx(max(high, 2 * low), rel=1e-12)
    assert all(c["p_wilcoxon_corrected"] == pytest.approx(2 * 2 / 2**6) for c in comps)
    bh = results.comparisons(_rows(), "dice", (("pretrained", "scratch"),), "bh")
    ref = stats.false_discovery_control(raw, method="bh")
    assert [c["p_t_corrected"] for c in bh] == pytest.approx(ref, rel=1e-12)


def _three_arm_rows() -> list[dict]:
    """_rows plus an arm 'finetune' between scratch and pretrained."""
    rows = _rows()
    rows += [dict(r, arm="finetune", value=float(r["value"]) + 0.05 + 0.01 * r["fold"])
             for r in rows if r["arm"] == "scratch"]  # fmt: skip
    return rows


def test_comparisons_of_several_pairs_share_one_family():
    pairs = (("pretrained", "scratch"), ("finetune", "scratch"), ("pretrained", "finetune"))
    comps = results.comparisons(_three_arm_rows(), "dice", pairs)
    assert [(c["arm"], c["reference"], c["budget"]) for c in comps] == [
        (a, r, b) for a, r in pairs for b in (4.0, 8.0)
    ]
    raw = np.array([c["p_t"] for c in comps])
    assert [c["p_t_corrected"] for c in comps] == pytest.approx(statistics.holm(raw))
    smallest = min(comps, key=lambda c: c["p_t"])
    assert smallest["p_t_corrected"] == pytest.approx(6 * smallest["p_t"])  # 6 tests, not 2
    one = results.comparisons(_three_arm_rows(), "dice", pairs[1:2])
    assert one[0]["p_t"] == comps[2]["p_t"]
    assert one[0]["p_t_corrected"] < comps[2]["p_t_corrected"]


def test_comparisons_pair_by_fold_and_seed():
    rows = [r for r in _rows() if not (r["arm"] == "scratch" and r["fold"] == 0 and r["seed"] == 1)]
    rows = list(reversed(rows))  # row order must not matter
    c4 = results.comparisons(rows, "dice", (("pretrained", "scratch"),))[0]
    pairs = [(f, s) for f in FOLDS for s in SEEDS if (f, s) != (0, 1)]
    a = [_value("pretrained", f, s, 4) for f, s in pairs]
    b = [_value("scratch", f, s, 4) for f, s in pairs]
    assert c4["n"] == 5
    assert c4["p_t"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
    assert c4["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-9)
    pretrained4 = next(s for s in results.summarize(rows, "dice") if s["budget"] == 4)
    assert pretrained4["arm"] == "pretrained" and pretrained4["n"] == 6


def test_comparisons_identical_arms_and_missing_reference():
    rows = [dict(r) for r in _rows() if r["arm"] == "scratch"]
    twin = [dict(r, arm="twin") for r in rows]
    comps = results.comparisons(rows + twin, "dice", (("twin", "scratch"), ("twin", "none")))
    same, missing = comps[:2], comps[2:]
    assert all(c["p_t"] == c["p_t_corrected"] == 1.0 and c["diff"] == 0 for c in same)
    assert all(c["n"] == 0 and math.isnan(c["p_t_corrected"]) for c in missing)


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
    assert results.summarize(back, "dice") == results.summarize(rows, "dice")
    pairs = (("pretrained", "scratch"),)
    assert results.comparisons(back, "dice", pairs) == results.comparisons(rows, "dice", pairs)
    assert results.pretext_summary(back) == results.pretext_summary(rows)


def test_markdown_table():
    summary = results.summarize(_rows(), "dice")
    lines = results.markdown_table(summary).splitlines()
    assert lines[:2] == ["| budget | arm | n | dice mean ± sd |", "|---:|---|---:|---|"]
    assert len(lines) == 2 + len(BUDGETS) * 2
    for line, s in zip(lines[2:], summary, strict=True):
        assert line == (
            f"| {int(s['budget'])} | {s['arm']} | 6 | {s['mean']:.3f} ± {s['sd']:.3f} |"
        )  # 4, not 4.0
    frac = [dict(budget=0.25, arm="a", metric="dice", n=1, mean=0.5, sd=math.nan)]
    assert "| 0.25 | a | 1 | 0.500 ± nan |" in results.markdown_table(frac)


def test_comparison_table():
    pairs = (("pretrained", "scratch"), ("finetune", "scratch"))
    comps = results.comparisons(_three_arm_rows(), "dice", pairs, "bh")
    lines = results.comparison_table(comps, "bh").splitlines()
    assert "p (t, Benjamini–Hochberg)" in lines[0] and "d_z" in lines[0]
    assert len(lines) == 2 + len(comps)
    c = comps[0]
    cells = [x.strip() for x in lines[2].strip("|").split("|")]
    assert cells == [
        "4", "pretrained − scratch", "6",
        f"{c['diff']:.3f} [{c['ci_t_low']:.3f}, {c['ci_t_high']:.3f}]",
        f"[{c['ci_boot_low']:.3f}, {c['ci_boot_high']:.3f}]",
        f"{c['p_t']:.3g}", f"{c['p_t_corrected']:.3g}", f"{c['p_wilcoxon']:.3g}",
        f"{c['p_wilcoxon_corrected']:.3g}", f"{c['d_z']:.2f}",
    ]  # fmt: skip
    empty = results.comparisons(_rows(), "dice", (("pretrained", "none"),))
    row = results.comparison_table(empty, "holm").splitlines()[2]
    assert row == "| 4 | pretrained − none | 0 |  |  |  |  |  |  |  |"


def test_compare_pairs_forms():
    one = (("pretrained", "scratch"),)
    assert results.compare_pairs(("pretrained", "scratch")) == one
    assert results.compare_pairs(["pretrained", "scratch"]) == one  # from study_config.json
    assert results.compare_pairs("pretrained:scratch") == one
    assert results.compare_pairs(("pretrained:scratch",)) == one
    two = (("pretrained", "scratch"), ("finetune", "scratch"))
    assert results.compare_pairs((("pretrained", "scratch"), ("finetune", "scratch"))) == two
    assert results.compare_pairs([["pretrained", "scratch"], ["finetune", "scratch"]]) == two
    assert results.compare_pairs(("pretrained:scratch", "finetune:scratch")) == two
    assert results.compare_pairs(("pretrained:scratch", ("finetune", "scratch"))) == two
    assert results.compare_pairs(("a:b", "a:b")) == (("a", "b"),)
    arms = {"pretrained": "x", "scratch": "y", "finetune": "z"}
    assert results.compare_pairs(two, arms) == two
    for bad, match in [
        (("a", "b", "c"), "'a' is not a pair"),
        ("a:b:c", "'a:b:c' is not a pair"),
        (("a:b", "c"), "'c' is not a pair"),
        ((), "no pair"),
        ((("a", ""),), "is not a pair"),
    ]:
        with pytest.raises(ValueError, match=match):
            results.compare_pairs(bad)
    with pytest.raises(ValueError, match=r"^compare names arm 'nope'; arms are \['pretrained'"):
        results.compare_pairs((("pretrained", "scratch"), ("nope", "scratch")), arms)


def test_report_keys():
    # a study recorded before config.correction existed: Holm
    config = ml_collections.ConfigDict(dict(arms=dict(a="s", b="t"), compare=["a", "b"]))
    assert results.report_keys(config) == ((("a", "b"),), "holm")
    config.correction = "bh"
    config.compare = ("a:b", "b:a")
    assert results.report_keys(config) == ((("a", "b"), ("b", "a")), "bh")
    config.correction = "bonferroni"
    with pytest.raises(ValueError, match="correction 'bonferroni' is not one of holm, bh"):
        results.report_keys(config)
    config.correction, config.compare = "holm", ("a", "c")
    with pytest.raises(ValueError, match="compare names arm 'c'"):
        results.report_keys(config)


def test_summarize_any_metric_lower_is_better():
    """Centre error (lower is better): the same numbers, the same two-sided p-values."""
    rows = [
        dict(r, metric="center_error", value=10 * (1 - float(r["value"])))
        for r in _rows()
        if r["final"] and r["metric"] == "dice"
    ]
    summary = results.summarize(rows, "center_error")
    dice = results.summarize(_rows(), "dice")
    assert len(summary) == len(dice) == 4
    for s, d in zip(summary, dice, strict=True):
        assert s["metric"] == "center_error" and s["arm"] == d["arm"]
        assert s["mean"] == pytest.approx(10 * (1 - d["mean"]))
        assert s["sd"] == pytest.approx(10 * d["sd"])
    pairs = (("pretrained", "scratch"),)
    for c, d in zip(results.comparisons(rows, "center_error", pairs),
                    results.comparisons(_rows(), "dice", pairs), strict=True):  # fmt: skip
        assert c["diff"] == pytest.approx(-10 * d["diff"])
        assert c["p_t"] == pytest.approx(d["p_t"], rel=1e-6)
        assert c["p_wilcoxon"] == pytest.approx(d["p_wilcoxon"], rel=1e-9)
    assert "center_error (px or voxels) mean ± sd" in results.markdown_table(summary)
    assert results.summarize(rows, "nope") == []
    assert results.comparisons(rows, "nope", pairs) == []


def test_wide_table_means_totals_and_gaps():
    def row(arm, fold, metric, value):
        return dict(arm=arm, stage="s", final=1, fold=fold, seed=0, budget=4.0, metric=metric,
                    value=value, n_train=4, n_test=8)  # fmt: skip

    rows = [row("a", f, "hd", 2.0 + f) for f in (0, 1)] + [row("a", f, "hd_inf", 1) for f in (0, 1)]
    rows += [row("b", 0, "hd", 5.0), row("a", 0, "dice[x]", 0.5)]
    lines = results.wide_table(rows, ["hd", "hd_inf", "dice[x]"]).splitlines()
    assert (
        lines[0]
        == "| budget | arm | hd (px, or mm with voxel spacing) | hd_inf (images, total) | dice[x] |"
    )
    assert lines[2:] == ["| 4 | a | 2.500 ± 0.707 | 2 | 0.500 |", "| 4 | b | 5.000 |  |  |"]
