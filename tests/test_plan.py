"""Tests for jaxseg.studies.plan on configs/demo.py's 'tiny' config: run counts, directory
layout, the parent run of each init_from and validation errors."""

import importlib.util
import os

import pytest

from jaxseg.studies import plan as plan_lib
from jaxseg.studies import results as results_lib

DEMO = os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py")
WORK = "/tmp/study"


def get_config(arg: str = "tiny"):
    spec = importlib.util.spec_from_file_location("demo_config", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def study_config(name: str, arg: str = "scale=ci"):
    path = os.path.join(os.path.dirname(__file__), "..", "configs", "studies", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_tiny_config_plan_counts_and_order():
    config = get_config()
    p = config.protocol
    out = plan_lib.plan(config, WORK)
    assert len(out) == p.folds * len(p.seeds) * len(p.budgets) * len(config.arms) == 4
    assert [arm for arm, _ in out] == ["pretrained", "scratch"] * 2
    assert [[r.stage for r in runs] for _, runs in out[:2]] == [
        ["localize", "segment"],
        ["scratch"],
    ]


def test_plan_counts_with_more_seeds_and_budgets():
    config = get_config()
    config.protocol.seeds = (0, 3)
    config.protocol.budgets = (4, 8, 12)
    out = plan_lib.plan(config, WORK)
    assert len(out) == 2 * 2 * 3 * 2
    keys = [(r.fold, r.seed, r.budget, arm) for arm, runs in out for r in runs if r.budget]
    # Execution order: fold, then seed, then budget, then arm.
    assert keys == sorted(
        keys, key=lambda k: (k[0], k[1], k[2], ["pretrained", "scratch"].index(k[3]))
    )
    # The localize run is shared by the 3 budgets of each (fold, seed).
    loc_dirs = {r.workdir for _, runs in out for r in runs if r.stage == "localize"}
    assert len(loc_dirs) == 2 * 2


def test_run_folds_limits_folds():
    config = get_config()
    config.protocol.update(folds=5, run_folds=2)
    out = plan_lib.plan(config, WORK)
    assert {r.fold for _, runs in out for r in runs} == {0, 1}
    for r in (r for _, runs in out for r in runs):
        assert r.config.split.folds == 5
    config.protocol.run_folds = 0  # 0 = every fold
    assert {r.fold for _, runs in plan_lib.plan(config, WORK) for r in runs} == set(range(5))
    config.protocol.run_folds = 6
    with pytest.raises(ValueError, match="run_folds"):
        plan_lib.plan(config, WORK)


def test_pretrained_segment_inits_from_localize_checkpoints():
    config = get_config()
    config.protocol.seeds = (0, 1)
    for arm, runs in plan_lib.plan(config, WORK):
        if arm != "pretrained":
            (scratch,) = runs
            assert scratch.parent is None
            continue
        loc, seg = runs
        assert (loc.fold, loc.seed) == (seg.fold, seg.seed)
        assert loc.workdir == os.path.join(WORK, f"fold_{loc.fold}", f"seed_{loc.seed}", "localize")
        assert seg.workdir == os.path.join(
            WORK, f"fold_{seg.fold}", f"seed_{seg.seed}", "budget_4", "segment"
        )
        assert seg.parent == loc  # the run it starts from, not a path to parse back
        assert seg.config.init_from.subtrees == "encoder+bottleneck"
        assert seg.config.freeze == "encoder"
        assert loc.parent is None


def test_run_configs():
    config = get_config()
    config.seed = 10
    config.protocol.seeds = (2,)
    config.protocol.split_seed = 7
    _, (loc, seg) = plan_lib.plan(config, WORK)[0]
    assert (loc.stage, loc.fold, loc.seed, loc.budget) == ("localize", 0, 2, 0)
    assert (seg.stage, seg.fold, seg.seed, seg.budget) == ("segment", 0, 2, 4)
    for run in (loc, seg):
        c = run.config
        assert c.name == run.stage
        assert c.seed == 12
        assert c.data.to_dict() == config.data.to_dict()
        assert c.split.to_dict() == dict(folds=2, fold=0, budget=run.budget, seed=7)
        assert "examples" not in c
        assert "checkpoint" not in c.init_from  # no absolute path in a run config
    assert loc.config.task == "localization" and seg.config.task == "segmentation"
    assert loc.config.steps == 6 and loc.config.model.depth == 2 and loc.config.model.width == 4
    # The study config is not modified by planning.
    assert "checkpoint" not in config.stages.segment.init_from
    assert config.stages.segment.examples == "budget"


def test_run_dir():
    assert plan_lib.run_dir("w", "s", 1, 2, 0) == os.path.join("w", "fold_1", "seed_2", "s")
    assert plan_lib.run_dir("w", "s", 1, 2, 0.5) == os.path.join(
        "w", "fold_1", "seed_2", "budget_0.5", "s"
    )


def test_arm_naming_unknown_stage():
    config = get_config()
    config.arms.broken = "localize,segmnet"
    with pytest.raises(ValueError, match="segmnet") as err:
        plan_lib.plan(config, WORK)
    assert "scratch" in str(err.value)  # lists the stages
    config.arms.broken = " , "
    with pytest.raises(ValueError, match="broken"):
        plan_lib.arm_stages(config, "broken")
    assert plan_lib.arm_stages(get_config(), "pretrained") == ["localize", "segment"]


@pytest.mark.parametrize("chain", ["segment", "segment,localize", "scratch,segment"])
def test_init_from_must_be_an_earlier_stage(chain):
    config = get_config()
    config.arms.broken = chain
    with pytest.raises(ValueError, match="not an earlier stage"):
        plan_lib.plan(config, WORK)


def test_unknown_examples_kind():
    config = get_config()
    config.stages.scratch.examples = "some"
    with pytest.raises(ValueError, match="examples='some'"):
        plan_lib.plan(config, WORK)


def test_init_from_path_and_stage_exclude_each_other():
    config = get_config()
    config.stages.segment.init_from.path = "/elsewhere/run"
    with pytest.raises(ValueError, match=r"init_from names both stage='localize' and path="):
        plan_lib.plan(config, WORK)
    config.stages.segment.init_from.stage = ""
    runs = dict(plan_lib.plan(config, WORK))["pretrained"]
    assert runs[-1].parent is None and runs[-1].config.init_from.path == "/elsewhere/run"


@pytest.mark.parametrize(
    "config",
    [study_config("localization_transfer"), get_config("tiny,controls")],
    ids=["localization_transfer", "demo_controls"],
)
def test_localization_transfer_controls_share_the_localizer_run(config):
    assert set(get_config().arms) == {"pretrained", "scratch"}  # not in the default demo
    out = plan_lib.plan(config, WORK)
    chains = {(arm, runs[-1].fold): runs for arm, runs in out}
    assert {arm for arm, _ in out} == {"pretrained", "scratch", "frozen_random", "finetune"}
    assert len(out) == 4 * config.protocol.run_folds * len(config.protocol.budgets)
    for fold in range(config.protocol.run_folds):
        (loc, seg), (loc_ft, ft) = chains[("pretrained", fold)], chains[("finetune", fold)]
        assert loc == loc_ft and seg.parent == ft.parent == loc  # one localize run per fold
        (random,) = chains[("frozen_random", fold)]
        assert random.parent is None and not random.config.init_from.stage  # untrained encoder
        assert random.config.freeze == seg.config.freeze == "encoder"  # ... frozen the same way
        assert ft.config.freeze == "none"
        assert ft.config.init_from.to_dict() == seg.config.init_from.to_dict()
        # the controls train exactly as the pretrained arm's segment stage otherwise
        same = {k: v for k, v in seg.config.items() if k not in ("name", "freeze", "init_from")}
        for run in (random, ft):
            assert {k: run.config[k] for k in same} == same, run.stage
    localize_dirs = {r.workdir for _, runs in out for r in runs if r.stage == "localize"}
    assert len(localize_dirs) == config.protocol.run_folds
    assert results_lib.compare_pairs(config.compare, config.arms) == (
        ("pretrained", "scratch"), ("pretrained", "frozen_random"), ("finetune", "scratch"),
    )  # fmt: skip


@pytest.mark.parametrize("scale", ["ci", "cpu", "paper"])
def test_weight_distances_arms_train_equally_long_on_their_target(scale):
    """Method 5: the fine-tuned arm X_to_Y and the scratch arm Y, compared on Y, train the same
    number of steps on Y; X_to_Y starts from X's net trained as long."""
    config = study_config("weight_distances", f"scale={scale}")
    chains = {arm: runs for arm, runs in plan_lib.plan(config, WORK) if runs[-1].fold == 0}
    a, b = config.analysis.weight_distances
    for x, y in ((a, b), (b, a)):
        source, tuned = chains[f"{x}_to_{y}"]
        (scratch,) = chains[y]
        assert tuned.parent == source and source.workdir == chains[x][0].workdir
        assert tuned.config.data.classes == scratch.config.data.classes == (y,)
        assert tuned.config.steps == scratch.config.steps == source.config.steps
    assert config.stages[f"scratch_{a}"].model.kernel_init == "he"
    assert results_lib.compare_pairs(config.compare, config.arms) == (
        (f"{a}_to_{b}", b), (f"{b}_to_{a}", a),
    )  # fmt: skip
