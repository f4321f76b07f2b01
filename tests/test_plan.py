"""Tests for jaxseg.studies.plan on configs/demo.py's 'tiny' config: run counts, directory
layout, the parent run of each init_from and validation errors."""

import importlib.util
import os

import pytest

from jaxseg.studies import plan as plan_lib

DEMO = os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py")
WORK = "/tmp/study"


def get_config(arg: str = "tiny"):
    spec = importlib.util.spec_from_file_location("demo_config", DEMO)
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
