"""Every study config (configs/studies/*.py) runs end to end at scale=ci on the built-in data,
and each writes the section its method is about."""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from jaxseg import data
from jaxseg.checkpoint import flatten
from jaxseg.eval import summary as metric_summary
from jaxseg.eval.weights import load_params, weight_distance
from jaxseg.studies import analyses, preflight
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import results as results_lib
from jaxseg.studies.run import run_study
from jaxseg.train import setup

STUDIES = Path(__file__).resolve().parents[1] / "configs" / "studies"


def study_config(name: str, arg: str = "scale=ci"):
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def read_json(path: str) -> dict:
    return json.loads(Path(path).read_text())


def run(name: str, tmp_path, arg: str = "scale=ci"):
    config = study_config(name, arg)
    workdir = str(tmp_path / name)
    rows = run_study(config, workdir)
    with open(os.path.join(workdir, "report.md")) as f:
        report = f.read()
    return config, workdir, rows, report


def test_every_study_has_three_scales():
    for path in sorted(STUDIES.glob("*.py")):
        for scale in ("ci", "cpu", "paper"):
            config = study_config(path.stem, f"scale={scale}")
            assert results_lib.compare_pairs(config.compare, config.arms), (path.stem, scale)
        with pytest.raises(ValueError, match="scale='huge'"):
            study_config(path.stem, "scale=huge")


def test_localization_transfer(tmp_path):
    config, workdir, rows, report = run("localization_transfer", tmp_path)
    arms = {r["arm"] for r in rows}
    assert arms == {"pretrained", "scratch", "frozen_random", "finetune"}
    assert "centres are the mask centroids" in report
    assert "finetune − scratch" in report and "pretrained − frozen_random" in report
    dataset = data.load(config.data)
    for fold in range(config.protocol.run_folds):  # the segment stage starts from localize's
        runs = os.path.join(workdir, f"fold_{fold}", "seed_0")
        segment = os.path.join(runs, "budget_4", "segment")
        for stage in ("segment", "finetune"):  # both load the localizer's encoder + bottleneck
            loaded = read_json(os.path.join(runs, "budget_4", stage, "transfer.json"))["loaded"]
            assert {p.split("/")[1] for p in loaded if p.startswith("params/")} == {
                "encoder", "bottleneck",
            }  # fmt: skip
        localize = flatten(load_params(os.path.join(runs, "localize")))
        trained = flatten(load_params(segment))
        tuned = flatten(load_params(os.path.join(runs, "budget_4", "finetune")))
        encoder = [p for p in localize if p.startswith(("encoder/", "bottleneck/"))]
        assert encoder
        for p in encoder:  # frozen: still exactly the localization encoder
            np.testing.assert_array_equal(trained[p], localize[p], err_msg=p)
        # fine-tuned: the localizer's start, every conv kernel trained on
        assert all(not np.array_equal(tuned[p], localize[p]) for p in encoder if "kernel" in p)
        # frozen_random: frozen at a fresh initialisation, no localizer in it
        random_dir = os.path.join(runs, "budget_4", "frozen_random")
        assert not os.path.exists(os.path.join(random_dir, "transfer.json"))
        random_run = plan_lib.stage_run(config, workdir, "frozen_random", 0, fold, 0, 4)
        fresh = flatten(setup.prepare_stage(random_run.config, dataset).variables["params"])
        frozen = flatten(load_params(random_dir))
        for p in encoder:
            np.testing.assert_array_equal(frozen[p], fresh[p], err_msg=p)
            assert not np.array_equal(frozen[p], localize[p]), p
    assert len(study_config("localization_transfer", "scale=cpu").protocol.budgets) >= 5


def test_which_layers_draws_the_unfreezing_curves(tmp_path):
    config, workdir, rows, report = run("which_layers", tmp_path)
    blocks = 2 * config.stages.full.model.depth + 1
    expected = {"scratch", "full", "contracting", "expanding"}
    expected |= {f"{e}_{k}" for e in ("shallow", "deep") for k in range(1, blocks)}
    assert {r["arm"] for r in rows} == expected
    metrics = {r["metric"] for r in rows}
    assert {"dice", "pixel_error", "ari"} <= metrics
    assert "## Which blocks to fine-tune" in report
    for metric in ("dice", "pixel_error", "ari"):
        assert f"## {metric_summary.label(metric)} on the held-out fold" in report
    assert "## pixel_error (%) on the held-out fold" in report
    assert os.path.exists(os.path.join(workdir, "figures", "unfreeze_dice_budget_8.png"))
    assert "Stage pretrain trains on the built-in 'fundus' generator (seed 0)" in report
    pairs = ["contracting − expanding", "full − scratch", "contracting − scratch"]
    pairs += [f"shallow_{k} − deep_{k}" for k in range(1, blocks)]
    for pair in pairs:  # method 2's two claims and the scratch control, each tested
        assert f"| 8 | {pair} |" in report, pair
    # one family for Holm; with n = 1 (fold, seed) run no paired test can run
    assert f"Corrected p: none. None of the {len(pairs)} pair(s) of arms" in report
    # the pretrain stage read another dataset (seed 0) than the target (seed 1)
    pre = read_json(os.path.join(workdir, "fold_0", "seed_0", "pretrain", "config.json"))
    assert pre["data"]["seed"] == 0 and config.data.seed == 1


def test_two_step_chains_three_stages(tmp_path):
    _, workdir, rows, report = run("two_step", tmp_path)
    assert {r["arm"] for r in rows} == {"none", "pretext", "boxes", "two_step"}
    two_step = [r for r in rows if r["arm"] == "two_step"]
    assert [s for s in dict.fromkeys(r["stage"] for r in two_step)] == [
        "pretext", "boxes", "seg_boxes",
    ]  # fmt: skip
    seg = os.path.join(workdir, "fold_0", "seed_0", "budget_4", "seg_boxes", "transfer.json")
    loaded = read_json(seg)["loaded"]
    # the whole box net, head included (method 3: "the exact same networks" train on)
    assert any(p.startswith("params/head/") for p in loaded) and not read_json(seg)["kept"]
    boxes = read_json(os.path.join(workdir, "fold_0", "seed_0", "boxes", "transfer.json"))
    assert any(p.startswith("params/encoder/") for p in boxes["loaded"])
    # the box net scored against the boxes (its target) and against the expert masks
    box_result = read_json(os.path.join(workdir, "fold_0", "seed_0", "boxes", "result.json"))
    assert 0.0 <= box_result["metrics"]["mask_dice"] <= 1.0
    assert "| boxes | mask_dice |" in report
    assert "box masks are the masks' bounding boxes" in report
    assert "## miou on the held-out fold" in report
    for arm, reference in (("two_step", "pretext"), ("two_step", "boxes"), ("boxes", "none")):
        assert f"| 4 | {arm} − {reference} |" in report  # method 3's claim, pair by pair
    assert "Holm over 5 tests: 5 pair(s) × 1 budget(s)" in report


def test_siamese_on_volumes_reports_distances_and_curves(tmp_path):
    _, workdir, rows, report = run("siamese", tmp_path)
    summary = read_json(os.path.join(workdir, "summary.json"))
    assert set(summary["metrics"]) == {"dice", "hd95", "boundary_length_diff"}
    for metric in ("dice", "hd95", "boundary_length_diff"):
        assert f"## {metric_summary.label(metric)} on the held-out fold" in report
    assert "## boundary_length_diff (% of the true boundary length) on the held-out" in report
    assert "## Segmentation metrics in detail (final stages)" in report and "hd95_inf" in report
    pretext = {(r["stage"], r["metric"]) for r in rows if not int(r["final"])}
    assert ("siamese", "auc") in pretext
    siamese = read_json(os.path.join(workdir, "fold_0", "seed_0", "siamese", "result.json"))
    assert siamese["primary"] == "auc" and set(siamese["baseline"]) == {"chance", "random_encoder"}
    assert set(siamese["probe"]) == {"trained", "random_encoder"}
    assert "| siamese | auc | 1 |" in report
    seg = os.path.join(workdir, "fold_0", "seed_0", "budget_4", "segment", "transfer.json")
    loaded = read_json(seg)["loaded"]
    assert loaded and all(p.split("/")[1] == "encoder" for p in loaded)
    assert "val/dice" in Path(os.path.dirname(seg), "metrics.jsonl").read_text()
    # the validated stages (segment, scratch) get a convergence row each
    assert {(r["stage"], r["runs"]) for r in summary["convergence"]} == {
        ("segment", 1),
        ("scratch", 1),
    }
    assert "## Convergence" in report


def test_weight_distances_matrix(tmp_path):
    config, workdir, rows, report = run("weight_distances", tmp_path)
    a, b = config.analysis.weight_distances
    assert {r["arm"] for r in rows} == {a, b, f"{a}_to_{b}", f"{b}_to_{a}"}
    assert "## Weight distances (method 5)" in report
    assert "Euclidean (L2)" in report
    for group in ("encoder_0", "decoder_0", "encoder_1", "decoder_1", "bottleneck"):
        assert any(line.startswith(f"| {group} |") for line in report.splitlines()), group
    for figure in ("weight_distances.png", "weight_distances_depth.png"):
        assert os.path.exists(os.path.join(workdir, "figures", figure)), figure
    # each structure's runs saw only its class
    cfg = read_json(os.path.join(workdir, "fold_0", "seed_0", f"scratch_{a}", "config.json"))
    assert cfg["data"]["classes"] == [a]
    rows_b = results_lib.summarize(rows, "dice")
    pairs = results_lib.compare_pairs(config.compare, config.arms)
    assert {r["arm"] for r in rows_b} >= {arm for pair in pairs for arm in pair}
    assert f"finished (of 1 planned per direction: {a}→{b} 1, {b}→{a} 1)" in report
    assert f"| asymmetry {a}→{b} − {b}→{a} | 1 |" in report  # one run: no CI, said as nan

    # a partial study (b_to_a never trained): that direction is left out, the other kept
    shutil.rmtree(os.path.join(workdir, "fold_0", "seed_0", f"{b}_to_{a}"))
    runs = analyses.weight_distance_runs(config, workdir)
    assert list(runs) == [(a, b)] and list(runs[(a, b)]) == [(0, 0)]
    fold_0 = os.path.join(workdir, "fold_0", "seed_0")
    stages = (f"scratch_{a}", f"{a}_to_{b}", f"scratch_{b}")
    scratch_a, tuned, scratch_b = (load_params(os.path.join(fold_0, r)) for r in stages)
    d = runs[(a, b)][(0, 0)]
    assert d["all"] == pytest.approx(weight_distance(scratch_a, tuned)["all"])
    assert d["to_target"] == pytest.approx(weight_distance(scratch_b, tuned)["all"])
    result = read_json(os.path.join(fold_0, f"{a}_to_{b}", "result.json"))
    assert d["evaluated_step"] == result["evaluated_step"]
    names = [a, b]
    matrix, depth = analyses.weight_distance_matrices(names, runs)
    assert matrix[0, 1] == pytest.approx(d["all"]) and matrix[1, 0] == 0
    assert not {"to_target", "evaluated_step"} & set(depth[(a, b)])
    assert depth[(a, b)]["encoder_0"] == d["encoder_0"]
    assert f"{a}→{b} 1)" in "\n".join(analyses.weight_distance_section(config, workdir))


def test_weight_distance_tests_match_scipy_and_holm():
    rng = np.random.default_rng(0)
    runs = {
        pair: {(f, s): {"all": float(v), "to_target": float(v + 1 + rng.random())}
               for (f, s), v in zip([(0, 0), (0, 1), (1, 0), (1, 1)], rng.random(4), strict=True)}
        for pair in (("a", "b"), ("b", "a"))
    }  # fmt: skip
    del runs[("b", "a")][(1, 1)]["to_target"]  # Y's scratch net not finished there
    tests = analyses.weight_distance_tests(["a", "b"], runs)
    assert [t["test"] for t in tests] == [
        "asymmetry a→b − b→a",
        "a→b: to b's scratch net − to its start",
        "b→a: to a's scratch net − to its start",
    ]
    keys = sorted(runs[("a", "b")])
    ab = [runs[("a", "b")][k]["all"] for k in keys]
    ba = [runs[("b", "a")][k]["all"] for k in keys]
    ref = stats.ttest_rel(ab, ba)
    assert tests[0]["n"] == 4 and tests[0]["p_t"] == pytest.approx(ref.pvalue)
    assert tests[0]["ci_t_low"] == pytest.approx(ref.confidence_interval().low)
    assert tests[2]["n"] == 3  # pairs only where both values exist
    assert all(t["diff"] > 1 for t in tests[1:])
    p = sorted(t["p_t"] for t in tests)
    holm = sorted(t["p_t_corrected"] for t in tests)
    assert holm[0] == pytest.approx(min(1, 3 * p[0]))


def test_siamese_on_class_labels_sorted_by_class(tmp_path):
    # a dataset whose first images all share one class (as BUSI's normal/benign/malignant
    # order does) still plans: pairs are drawn from the whole training split
    config = study_config("siamese", "scale=ci")
    config.data.update(source="fundus", preprocess="", image_size=32)
    ds = data.load(config.data)
    order = np.argsort(ds.arrays["label"], kind="stable")
    ds = data.Dataset({k: v[order] for k, v in ds.arrays.items()}, ds.class_names, ds.name)
    config.stages.siamese.task_options.pair_by = "label"
    preflight.check_study(plan_lib.plan(config, str(tmp_path)), lambda _: ds)


@pytest.mark.parametrize("arg", ["pretext=multilabel", "pretext=classification,transfer=encoder"])
def test_two_step_variants_pass_preflight(tmp_path, arg):
    config = study_config("two_step", f"scale=ci,{arg}")
    ds = data.load(config.data)
    preflight.check_study(plan_lib.plan(config, str(tmp_path)), lambda _: ds)
    seg = config.stages.seg_boxes.init_from.subtrees
    assert seg == (
        "encoder+bottleneck" if "transfer=encoder" in arg else "encoder+bottleneck+decoder+head"
    )


def test_two_step_imagenet_arm_starts_its_encoder_from_weights(tmp_path):
    from safetensors.numpy import save_file
    from test_init_path import vgg16_state

    path = str(tmp_path / "vgg16.safetensors")
    save_file(vgg16_state(batch_norm=True), path)  # the studies' models have BatchNorm
    config = study_config("two_step", f"scale=ci,backbone=vgg16,imagenet={path}")
    assert config.arms.imagenet == "seg_imagenet"
    assert config.stages.seg_imagenet.init_from.to_dict() == dict(
        stage="", path=path, subtrees="encoder", rename="", allow=""
    )
    assert ("imagenet", "none") in config.compare
    ds = data.load(config.data)
    plain = study_config("two_step", f"scale=ci,imagenet={path}")  # no backbone to take it
    for c in (config, plain):  # preflight the new arm alone, on one fold
        c.arms, c.compare = {"imagenet": "seg_imagenet"}, ()
        c.protocol.run_folds = 1
    preflight.check_study(plan_lib.plan(config, str(tmp_path / "w")), lambda _: ds)
    with pytest.raises(ValueError, match=r"stages\.seg_imagenet .*init_from\.path=.*backbone"):
        preflight.check_study(plan_lib.plan(plain, str(tmp_path / "p")), lambda _: ds)
