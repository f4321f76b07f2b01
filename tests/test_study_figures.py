"""Tests for jaxseg.studies.figures (each figure is a readable, non-blank PNG of the expected
size; bad input is a ValueError; read_curves averages metrics.jsonl files), machine.describe and
write_report on hand-built rows (sections and linked files)."""

from __future__ import annotations

import json
import math
import os
import re
import warnings

import flax
import jax
import jaxlib
import matplotlib.image
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from matplotlib.colors import to_rgba
from scipy import stats

from jaxseg import plotting
from jaxseg.studies import figures, machine
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import report as report_lib
from jaxseg.studies import results as results_lib

COMPARE = ("pretrained", "scratch")


def read_png(path) -> np.ndarray:
    """The PNG as floats [H,W,C]; asserts it is not one flat colour."""
    assert os.path.getsize(path) > 1000
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img[..., :3].std() > 0.02, "blank image"
    return img


def summary_rows(budgets=(4, 16, 64)) -> list[dict]:
    rows = []
    for b in budgets:
        rows.append(dict(budget=float(b), arm="pretrained", metric="dice", n=5,
                         mean=0.6 + 0.002 * b, sd=0.05))  # fmt: skip
        rows.append(dict(budget=float(b), arm="scratch", metric="dice", n=5,
                         mean=0.4 + 0.004 * b, sd=math.nan if b == 4 else 0.06))  # fmt: skip
    return rows


def comparison_rows(budgets=(4, 16, 64), p=(0.003, 0.03, 0.4), raw=None) -> list[dict]:
    """Comparisons of pretrained vs scratch with corrected paired-t p-values ``p`` (raw ones
    ``raw``, default the same)."""
    raw = p if raw is None else raw
    return [
        dict(budget=float(b), arm="pretrained", reference="scratch", metric="dice", p_t=r,
             p_t_corrected=q)
        for b, q, r in zip(budgets, p, raw, strict=True)
    ]  # fmt: skip


def test_significance():
    assert [figures.significance(p) for p in (0.001, 0.0099, 0.01, 0.049, 0.05, math.nan)] == [
        "**", "**", "*", "*", "", ""
    ]  # fmt: skip


def test_budget_curve(tmp_path):
    out = tmp_path / "sub" / "budget.png"
    assert figures.budget_curve(summary_rows(), comparison_rows(), "dice", str(out)) == str(out)
    img = read_png(out)
    # one pair: a row of stars and a two-line title above the plot's own height
    above = (figures.STAR_ROW_PT + 2 * figures.TITLE_LINE_PT) / 72
    width, height = figures.PLOT_IN
    assert img.shape[:2] == (int((height + above) * plotting.DPI), round(width * plotting.DPI))
    fractions = (0.25, 0.5, 1.0)  # linear axis, fraction labels
    path = str(tmp_path / "frac.png")
    read_png(figures.budget_curve(summary_rows(fractions), comparison_rows(fractions), "dice",
                                  path, "bh"))  # fmt: skip
    one = figures.budget_curve(summary_rows((4,)), comparison_rows((4,), (0.5,)), "dice",
                               str(tmp_path / "one.png"))  # fmt: skip
    read_png(one)
    read_png(figures.budget_curve(summary_rows(), [], "dice", str(tmp_path / "none.png")))


def test_stars_title_wraps_many_pairs_and_names_each():
    pairs = [("two_step", "none"), ("two_step", "pretext"), ("two_step", "boxes"),
             ("pretext", "none"), ("boxes", "none")]  # fmt: skip
    title = figures.stars_title(pairs, "holm")
    lines = title.split("\n")
    assert len(lines) > 2 and max(map(len, lines)) <= figures.TITLE_CHARS
    assert "Holm-corrected" in lines[0]
    flat = " ".join(lines[1:])
    assert flat.startswith("rows bottom to top:") and all(f"{a} vs {b}" in flat for a, b in pairs)
    assert figures.stars_title(pairs[:1], "bh").split("\n")[1] == "two_step vs none"


def test_budget_curve_stars_corrected_p(tmp_path):
    """The stars follow ``p_t_corrected``: raw p-values alone change nothing in the figure."""

    def draw(name, **kw):
        path = figures.budget_curve(summary_rows(), comparison_rows(**kw), "dice",
                                    str(tmp_path / name))  # fmt: skip
        return read_png(path)

    raw_significant = draw("a.png", p=(0.2, 0.2, 0.2), raw=(0.001, 0.001, 0.001))
    none_significant = draw("b.png", p=(0.2, 0.2, 0.2), raw=(0.5, 0.5, 0.5))
    corrected_significant = draw("c.png", p=(0.001, 0.2, 0.2), raw=(0.5, 0.5, 0.5))
    assert np.array_equal(raw_significant, none_significant)
    assert not np.array_equal(corrected_significant, none_significant)
    two_pairs = comparison_rows() + [
        dict(c, arm="scratch", reference="pretrained") for c in comparison_rows()
    ]
    path = figures.budget_curve(summary_rows(), two_pairs, "dice", str(tmp_path / "two.png"))
    assert not np.array_equal(read_png(path), draw("d.png"))


def test_budget_curve_keeps_its_axes_with_many_arms_and_pairs(tmp_path):
    """Method 2's report: 16 arms and 9 pairs at one budget. The rows of stars and the title
    used to squeeze the axes to nothing (matplotlib: 'constrained_layout not applied') and the
    legend covered the points; the figure now grows and the legend moves outside."""
    arms = [f"arm_{i}" for i in range(16)]
    rows = [dict(budget=64.0, arm=a, metric="dice", n=9, mean=0.4 + 0.01 * i, sd=0.04)
            for i, a in enumerate(arms)]  # fmt: skip
    pairs = [dict(budget=64.0, arm=arms[i], reference=arms[i + 1], metric="dice", p_t=0.001,
                  p_t_corrected=0.001) for i in range(9)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the collapse is a UserWarning
        many = read_png(figures.budget_curve(rows, pairs, "dice", str(tmp_path / "many.png")))
    few = read_png(figures.budget_curve(rows[:2], pairs[:1], "dice", str(tmp_path / "few.png")))
    assert many.shape[0] > few.shape[0] and many.shape[1] > few.shape[1]


def test_series_colors_are_distinct_and_keep_tab10_for_small_plots():
    for n in (1, 10, 16, 20, 25):
        colors = figures.series_colors(n)
        assert len(colors) == n and len({tuple(np.round(c[:3], 4)) for c in colors}) == n
    assert figures.series_colors(3) == list(figures.COLORS[:3])


def test_budget_curve_draws_each_of_16_arms_in_its_own_colour(tmp_path, monkeypatch):
    """Method 2's 16 arms were drawn in tab10's 10 colours, so two arms shared each colour."""
    drawn = []
    monkeypatch.setattr(figures, "save_png", lambda fig, path: drawn.append(fig) or path)
    rows = [dict(budget=64.0, arm=f"arm_{i}", metric="dice", n=9, mean=0.4, sd=0.04)
            for i in range(16)]  # fmt: skip
    figures.budget_curve(rows, [], "dice", str(tmp_path / "b.png"))
    handles, labels = drawn[0].axes[0].get_legend_handles_labels()
    colors = {tuple(np.round(to_rgba(h[0].get_color()), 4)) for h in handles}
    assert len(labels) == 16 and len(colors) == 16


def test_budget_curve_rejects_bad_input(tmp_path):
    out = str(tmp_path / "x.png")
    with pytest.raises(ValueError, match="metric 'loss'"):
        figures.budget_curve(summary_rows(), comparison_rows(), "loss", out)
    nope = [dict(c, reference="nope") for c in comparison_rows()]
    with pytest.raises(ValueError, match=r"comparisons name arms \['nope'\]"):
        figures.budget_curve(summary_rows(), nope, "dice", out)
    with pytest.raises(ValueError, match="two summary rows"):
        figures.budget_curve(summary_rows() + summary_rows()[:1], comparison_rows(), "dice", out)
    with pytest.raises(ValueError, match="correction 'fdr'"):
        figures.budget_curve(summary_rows(), comparison_rows(), "dice", out, "fdr")
    assert not os.path.exists(out)


def test_unfreeze_curve(tmp_path):
    points = {
        "shallow_to_deep": [(k, 0.5 + 0.04 * k, 0.03) for k in range(1, 8)],
        "deep_to_shallow": [(k, 0.6 + 0.01 * k, math.nan) for k in reversed(range(1, 8))],
    }
    img = read_png(figures.unfreeze_curve(points, str(tmp_path / "u.png")))
    assert img.shape[:2] == (350, 500)
    read_png(figures.unfreeze_curve({"deep_to_shallow": points["deep_to_shallow"]},
                                    str(tmp_path / "one.png"), metric="iou"))  # fmt: skip
    for bad, match in [
        ({}, "no directions"),
        ({"sideways": [(1, 0.5, 0.1)]}, "sideways"),
        ({"shallow_to_deep": []}, "no points"),
        ({"shallow_to_deep": [(1, 0.5)]}, "3 values"),
        ({"shallow_to_deep": "abc"}, "list"),
    ]:
        with pytest.raises(ValueError, match=match):
            figures.unfreeze_curve(bad, str(tmp_path / "bad.png"))


def test_convergence(tmp_path):
    steps = range(0, 200, 10)
    curves = {
        "pretrained": [(s, 0.8 - 0.5 * math.exp(-s / 30)) for s in steps],
        "scratch": [(s, 0.7 - 0.6 * math.exp(-s / 80)) for s in steps],
    }
    img = read_png(figures.convergence(curves, str(tmp_path / "c.png"), "dice"))
    assert img.shape[:2] == (350, 500)
    for bad, match in [({}, "no curves"), ({"a": []}, "no points"), ({"a": [(1, 2, 3)]}, "2")]:
        with pytest.raises(ValueError, match=match):
            figures.convergence(bad, str(tmp_path / "bad.png"), "dice")


def test_depth_distances(tmp_path):
    profiles = {
        "a→b": {
            "encoder": [(0, 0.1), (1, 0.2), (2, 0.3)],
            "decoder": [(0, 0.5), (1, 0.4), (2, 0.3)],
        },
        "b→a": {"encoder": [(0, 0.2), (1, 0.2)]},
    }
    img = read_png(figures.depth_distances(profiles, str(tmp_path / "d.png"), "L2 distance"))
    assert img.shape[:2] == (350, 500)
    for bad, match in [
        ({}, "no profiles"),
        ({"a": {}}, "a: no encoder or decoder points"),
        ({"a": {"head": [(0, 1.0)]}}, "unknown part 'head'"),
        ({"a": {"encoder": []}}, "no points"),
        ({"a": {"decoder": [(0, 1.0, 2.0)]}}, "2 values"),
    ]:
        with pytest.raises(ValueError, match=match):
            figures.depth_distances(bad, str(tmp_path / "bad.png"), "d")


def write_jsonl(workdir, records) -> str:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return str(workdir)


def test_read_curves_averages_runs_per_step(tmp_path):
    a = write_jsonl(tmp_path / "a", [
        {"step": 5, "train/loss": 1.0},  # no val/dice: skipped
        {"step": 10, "val/dice": 0.2, "val/loss": 0.9},
        {"step": 10, "train/loss": 0.5},
        {"step": 20, "val/dice": 0.4},
        {"step": 20, "val/dice": 0.5},  # a resumed run logged step 20 again: the later wins
    ])  # fmt: skip
    b = write_jsonl(tmp_path / "b", [
        {"step": 10, "val/dice": 0.4},
        {"step": 30, "val/dice": 0.9},  # only this run got to step 30
    ])  # fmt: skip
    c = write_jsonl(tmp_path / "c", [{"step": 10, "train/loss": 2.0}])
    with open(os.path.join(c, "metrics.jsonl"), "a") as f:
        f.write('{"step": 12, "val/di{"step": 14, "val/dice": 7.0}\n\n')  # killed mid-write
    missing = str(tmp_path / "never_ran")
    curves = figures.read_curves({"x": [a, b, c, missing], "y": [c], "z": []})
    assert list(curves) == ["x", "y", "z"]
    assert curves["x"] == [(10, pytest.approx(0.3)), (20, 0.5), (30, 0.9)]
    assert curves["y"] == curves["z"] == []
    assert figures.read_curves({"x": [a]}, key="val/loss") == {"x": [(10, 0.9)]}
    with pytest.raises(ValueError, match="list of run directories"):
        figures.read_curves({"x": a})


def test_overlay_grid(tmp_path):
    rng = np.random.default_rng(0)
    n, h, w = 3, 24, 32
    images = rng.normal(size=(n, h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[:h, :w]
    disc = (yy - 12) ** 2 + (xx - 16) ** 2 < 49
    masks = np.zeros((n, h, w, 2), np.float32)
    masks[..., 0] = disc
    masks[1, ..., 1] = yy < 6  # a second class in one image; image 2 has an empty class 1
    masks[2] = 0  # image 2: nothing at all
    preds = {"pretrained": masks > 0.5, "scratch": np.roll(masks > 0.5, 3, axis=2)}
    img = read_png(figures.overlay_grid(images, masks, preds, str(tmp_path / "o.png")))
    tile = round(plotting.TILE_IN * plotting.DPI)
    assert img.shape[:2] == (n * tile, 4 * tile)
    assert figures.dice(preds["pretrained"][0], masks[0] > 0.5) == 1.0
    assert figures.dice(np.zeros((2, 2, 1), bool), np.zeros((2, 2, 1), bool)) == 1.0
    assert figures.dice(np.ones((2, 2, 1), bool), np.eye(2, dtype=bool)[..., None]) == 2 * 2 / 6
    with pytest.raises(ValueError, match="scratch"):
        figures.overlay_grid(images, masks, {"scratch": preds["scratch"][:2]}, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="masks"):
        figures.overlay_grid(images, masks[:, :10], preds, str(tmp_path / "b.png"))
    with pytest.raises(ValueError, match="images"):
        figures.overlay_grid(images[0], masks, preds, str(tmp_path / "b.png"))


def test_machine_describe():
    info = machine.describe()
    modules = {"jax": jax, "jaxlib": jaxlib, "flax": flax, "optax": optax, "orbax": ocp,
               "numpy": np}  # fmt: skip
    for name, module in modules.items():
        assert info[name] == module.__version__, name
    assert info["python"].count(".") == 2
    assert info["backend"] == jax.default_backend()
    assert info["device_count"] == len(info["devices"]) == jax.device_count() >= 1
    assert info["cpu_count"] == os.cpu_count()
    assert info["xla_flags"] == os.environ.get("XLA_FLAGS", "")
    assert json.loads(json.dumps(info)) == info
    table = machine.markdown({"a": "x|y", "b": ["p", "q"], "c": ""})
    assert table.splitlines()[2:] == ["| a | x\\|y |", "| b | p, q |", "| c | (empty) |"]


def test_correction_sentence_says_when_no_test_could_run():
    """One (fold, seed) pair gives NaN p-values; the report said 'Holm over 0 tests'."""
    pairs = (("pretrained", "scratch"),)
    none = report_lib.correction_record([dict(budget=8, p_t=math.nan)], "dice", pairs, "holm")
    assert report_lib.correction_sentence(none).startswith("Corrected p: none. None of the 1 pair")
    tests = [dict(budget=b, p_t=0.1) for b in (8, 16)] + [dict(budget=32, p_t=math.nan)]
    two = report_lib.correction_record(tests, "dice", pairs, "holm")
    sentence = report_lib.correction_sentence(two)
    assert sentence.startswith("Corrected p: Holm over 2 tests: 1 pair(s) × 2 budget(s), metric")


def study_rows(study, workdir: str) -> list[dict]:
    """Rows as run_study builds them (in an existing ``workdir``), with made-up metrics
    (pretrained 0.2 better)."""
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for arm, runs in plan_lib.plan(study, workdir):
        made_up = [
            {"metrics": {"dice": 0.5 + 0.2 * (arm == "pretrained") + 0.01 * r.fold * len(arm),
                         "center_error": 3.0}, "n_train": 4, "n_test": 20}
            for r in runs
        ]  # fmt: skip
        rows += results_lib.rows_for(arm, runs, made_up)
    return rows


def linked_files(report: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", report)


def test_write_report_sections_and_files(tmp_path, tiny_study, tiny_fundus, capsys):
    workdir = str(tmp_path / "study")
    rows = study_rows(tiny_study, workdir)
    for dirs in report_lib.final_run_dirs(tiny_study, workdir)[4].values():
        for i, d in enumerate(dirs):
            write_jsonl(d, [{"step": s, "train/loss": 1.0, "val/dice": 0.1 * i + s / 10}
                            for s in (3, 6)])  # fmt: skip
    text = report_lib.write_report(tiny_study, workdir, rows, tiny_fundus)
    with open(os.path.join(workdir, "report.md")) as f:
        assert text == f.read()
    assert text.strip() in capsys.readouterr().out
    for section in ("## dice on the held-out fold", "## Figures", "## Config", "## Machine"):
        assert section in text
    assert "paired t" in text and "Wilcoxon" in text
    assert "Corrected p: Holm over 1 tests: 1 pair(s) × 1 budget(s), metric dice" in text
    assert "Holm-corrected paired-t p < 0.05" in text  # the figure's caption
    links = linked_files(text)
    assert links == ["figures/budget_dice.png", "figures/convergence_dice_budget_4.png"]
    for link in links:
        read_png(os.path.join(workdir, link))
    config_json = text.split("```json\n")[1].split("\n```")[0]
    assert json.loads(config_json) == json.loads(tiny_study.to_json_best_effort())
    assert "<details>" in text and "</details>" in text
    with open(os.path.join(workdir, "machine.json")) as f:
        info = json.load(f)
    assert info["jax"] == jax.__version__
    assert f"| jax | {jax.__version__} |" in text
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert set(summary["final"][0]) == {"budget", "arm", "metric", "n", "mean", "sd"}
    (test,) = summary["comparisons"]["dice"]
    assert (test["arm"], test["reference"], test["n"]) == ("pretrained", "scratch", 2)
    assert summary["correction"]["method"] == "holm" and summary["correction"]["tests"] == 1
    assert [s["budget"] for s in summary["masks_saved"]] == [4.0]


def test_write_report_without_validation_records(tmp_path, tiny_study, tiny_fundus):
    workdir = str(tmp_path / "study")
    text = report_lib.write_report(
        tiny_study, workdir, study_rows(tiny_study, workdir), tiny_fundus
    )
    assert linked_files(text) == ["figures/budget_dice.png"]
    assert os.listdir(os.path.join(workdir, "figures")) == ["budget_dice.png"]
    assert "Validation dice" not in text


def test_write_report_several_pairs_and_masks_saved(tmp_path, tiny_study, tiny_fundus):
    """Three arms, two compared pairs (one as 'a:b'), four budgets, Benjamini–Hochberg: every
    pair × budget is tested and corrected in one family, and masks saved comes first."""
    study = tiny_study.copy_and_resolve_references()
    study.arms.twin = "scratch"
    study.compare = ("pretrained:scratch", ("twin", "scratch"))
    study.correction = "bh"
    study.protocol.update(budgets=(4, 8, 16, 32), seeds=(0, 1, 2))
    workdir = str(tmp_path / "study")
    os.makedirs(workdir)
    rng = np.random.default_rng(0)
    rows = []
    for arm, runs in plan_lib.plan(study, workdir):
        budget = runs[-1].budget  # pretrained = scratch at twice the budget
        dice = 0.3 + 0.1 * np.log2(budget * (2 if arm == "pretrained" else 1))
        made_up = [{"metrics": {"dice": float(dice + 0.01 * rng.normal()), "center_error": 3.0},
                    "n_train": 4, "n_test": 20} for _ in runs]  # fmt: skip
        rows += results_lib.rows_for(arm, runs, made_up)
    text = report_lib.write_report(study, workdir, rows, tiny_fundus)
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    tests = summary["comparisons"]["dice"]
    assert [(t["arm"], t["reference"], t["budget"]) for t in tests] == [
        (a, "scratch", b) for a in ("pretrained", "twin") for b in (4.0, 8.0, 16.0, 32.0)
    ]
    assert all(t["n"] == 6 for t in tests)  # 2 folds × 3 seeds
    ref = stats.false_discovery_control([t["p_t"] for t in tests], method="bh")
    assert [t["p_t_corrected"] for t in tests] == pytest.approx(ref)
    assert all(t["p_t_corrected"] < 0.01 for t in tests[:4])  # pretrained ~0.1 better
    assert summary["correction"] == dict(
        method="bh", name="Benjamini–Hochberg", metric="dice", tests=8, pairs=2, budgets=4,
        headline="p_t_corrected", confidence=0.95, bootstrap_resamples=9999, bootstrap_seed=0,
    )  # fmt: skip
    saved = [s for s in summary["masks_saved"] if s["arm"] == "pretrained"]
    assert [s["budget"] for s in saved] == [4.0, 8.0, 16.0, 32.0]
    assert saved[0]["unit"] == "masks" and saved[0]["n"] == 6
    for s in saved[:2]:  # scratch needs about 2B: B masks saved
        assert s["needed_low"] <= 2 * s["budget"] <= s["needed_high"]
        assert s["saved"] == pytest.approx(s["budget"], rel=0.15)
    assert saved[3]["needed"] == math.inf  # 64 masks: beyond the study's budgets
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## Masks saved", "## dice on the held-out fold (mean ± sd over "
                            "folds × seeds)"]  # fmt: skip
    assert "| 32 | " in text and "| > 32 [> 32, > 32] | > 0 [> 0, > 0] |" in text
    assert "Corrected p: Benjamini–Hochberg over 8 tests: 2 pair(s) × 4 budget(s)" in text
    assert "| 8 | twin − scratch | 6 |" in text
    read_png(os.path.join(workdir, "figures", "budget_dice.png"))


def test_write_report_segmentation_detail_on_the_headline(tmp_path, tiny_study, tiny_fundus):
    """Statistics and masks saved read the headline 'dice', not 'dice_all' (which here ranks
    the arms the other way); the detail tables carry units, totals of infinite cases, classes."""
    workdir = str(tmp_path / "study")
    os.makedirs(workdir)
    rows = []
    for arm, runs in plan_lib.plan(tiny_study, workdir):
        better = arm == "pretrained"
        made_up = [
            {"primary": "dice", "n_train": 4, "n_test": 20,
             "metrics": {"dice": 0.4 + 0.2 * better + 0.01 * r.fold, "dice_all": 0.6 - 0.2 * better,
                         "empty_count": 3.0, "empty_fp_rate": 0.5, "hd": 7.0, "hd_inf": 1.0,
                         "dice[benign]": 0.3, "center_error": 3.0}}
            for r in runs
        ]  # fmt: skip
        rows += results_lib.rows_for(arm, runs, made_up)
    text = report_lib.write_report(tiny_study, workdir, rows, tiny_fundus)
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert summary["correction"]["metric"] == "dice"
    (saved,) = summary["masks_saved"]
    assert saved["metric"] == "dice" and saved["mean"] == pytest.approx(0.605)
    detail = text.split("## Segmentation metrics in detail (final stages)\n\n")[1]
    header = detail.splitlines()[0]
    assert header == (
        "| budget | arm | dice | dice_all | empty_fp_rate | empty_count (images) | "
        "hd (px, or mm with voxel spacing) | hd_inf (images, total) |"
    )
    row = ("| 4 | pretrained | 0.605 ± 0.007 | 0.400 ± 0.000 | 0.500 ± 0.000 | 3.000 ± 0.000 | "
           "7.000 ± 0.000 | 2 |")  # fmt: skip
    assert row in detail.splitlines()  # 2 folds, one infinite case each: 2 in total
    assert "| budget | arm | dice[benign] |" in detail
    assert "- hd: Hausdorff distance over the images with foreground; a missed lesion" in detail


def test_tile_label_on_empty_truth():
    truth = np.zeros((4, 4, 1), bool)
    spot = truth.copy()
    spot[1, 1] = True
    assert figures.tile_label(spot, spot) == "dice 1.00"
    assert figures.tile_label(spot, truth) == "empty truth: false positive"
    assert figures.tile_label(truth, truth) == "empty truth: none predicted"
