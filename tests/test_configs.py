"""Unit checks of the config contract (issue 18): the words a config file accepts, the protocol
and the optimizer settings; the command-line end of each is in tests/test_bad_input.py."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

from jaxseg import data
from jaxseg.studies import configs
from jaxseg.studies.plan import check_protocol
from jaxseg.train import optimizers

WORDS = ("tiny", "data=PATH", "lr=depth", "backbone=|vgg16")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def config_file(path: Path, arg: str):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def every_config(scale: str) -> dict[str, object]:
    """{name: config} of every study at ``scale`` and of the demo ('cpu': the default demo;
    'ci': its ``tiny``; 'paper': none)."""
    out = {p.stem: config_file(p, f"scale={scale}") for p in (CONFIGS / "studies").glob("*.py")}
    demo = {"cpu": "", "ci": "tiny"}.get(scale)
    if demo is not None:
        out["demo"] = config_file(CONFIGS / "demo.py", demo)
    return out


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_every_stage_converges_by_default_at_cpu_and_paper(scale):
    """Issue 15 §2/§6: validation split, early stopping with a maximum, epochs on the label
    budget's stages (a larger budget trains longer), three seeds."""
    configs_ = every_config(scale)
    assert len(configs_) == 6 - (scale == "paper")
    for name, config in configs_.items():
        seeds = (0,) if name == "demo" else (0, 1, 2)  # the demo: one seed, within 10 minutes
        assert tuple(config.protocol.seeds) == seeds, name
        for stage_name, st in config.stages.items():
            where = f"{name}.{stage_name}"
            assert 0 < st.val_fraction < 1 and st.eval_every > 0 and st.patience > 0, where
            assert st.steps >= st.eval_every, where  # the maximum
            assert (st.epochs > 0) == (st.examples == "budget"), where
            # a floor of twice the patience window, so that early stopping can end a small
            # budget's run (the demo keeps 100 steps at 4 masks, for its ~10 minutes)
            window = st.patience * st.eval_every
            least = 2 * window if st.examples == "budget" and name != "demo" else 0
            assert st.min_steps == least, where


def test_ci_and_tiny_keep_fixed_steps_and_one_validated_path():
    validated = set()
    for name, config in every_config("ci").items():
        assert tuple(config.protocol.seeds) == (0,), name
        # shrunk (configs.shrink): 2 folds, and a pretext that need not learn in 6 steps warns
        assert (config.protocol.folds, config.pretext_check) == (2, "warn"), name
        for stage_name, st in config.stages.items():
            assert st.epochs == 0 and st.patience == 0, (name, stage_name)
            if st.val_fraction:
                validated.add(f"{name}.{stage_name}")
    assert validated == {"siamese.segment", "siamese.scratch"}  # run end to end by test_studies


def test_converge_applies_one_scale_in_place():
    config = config_file(CONFIGS / "demo.py", "tiny")
    configs.converge(config, "paper")
    assert config.stages.segment.epochs == configs.BUDGET_EPOCHS["paper"]
    assert config.stages.segment.min_steps == configs.BUDGET_MIN_STEPS["paper"]
    assert config.stages.localize.epochs == config.stages.localize.min_steps == 0  # steps
    for st in config.stages.values():
        assert (st.val_fraction, st.eval_every, st.patience) == (0.1, 100, 5)
    assert config.protocol.seeds == configs.SEEDS["paper"]
    configs.converge(config, "cpu", floor=False)  # the demo's: epochs without the floor
    assert config.stages.segment.epochs == configs.BUDGET_EPOCHS["cpu"]
    assert config.stages.segment.min_steps == 0


def test_parse_args_reads_switches_values_and_choices():
    assert configs.parse_args("tiny,data=/a/b.npz,lr=depth,backbone=", WORDS) == {
        "tiny": "1", "data": "/a/b.npz", "lr": "depth", "backbone": "",
    }  # fmt: skip
    assert configs.parse_args("", WORDS) == {}


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("tiny,dta=x", "unknown config argument(s) 'dta=x'; accepted: tiny, data=PATH"),
        ("tiny=1", "'tiny=1' must read 'tiny'"),
        ("data", "'data' must read 'data=PATH'"),
        ("data=", "'data=' must read 'data=PATH'"),
        ("lr=deep", "lr='deep' is not one of depth"),
        ("tiny,tiny", "'tiny' is given twice"),
    ],
)
def test_parse_args_refuses_words_not_accepted(arg, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        configs.parse_args(arg, WORDS)


@pytest.mark.parametrize("budgets", [(4, 16), (0.25, 1.0), (1, 0.5)])
def test_protocol_accepts_counts_and_fractions(budgets):
    check_protocol(configs.protocol(budgets=budgets, seeds=(0, 3), run_folds=0))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(budgets=()), "protocol.budgets=() is empty"),
        (dict(budgets=(-2, 4)), "protocol.budgets=(-2, 4) holds -2"),
        (dict(budgets=(True,)), "holds True"),
        (dict(budgets=(1, 1.0)), "repeats 1, 1.0"),  # one label and all labels: one row key
        (dict(seeds=(1, 1)), "protocol.seeds=(1, 1) repeats 1"),
        (dict(seeds=(0.5,)), "protocol.seeds=(0.5,) holds 0.5"),
        (dict(folds=0), "protocol.folds=0"),
        (dict(run_folds=6), "protocol.run_folds=6"),
        (dict(run_folds=-1), "protocol.run_folds=-1"),
    ],
)
def test_protocol_refuses_out_of_range_values(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_protocol(configs.protocol(**fields))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(learning_rate=0.0), "learning_rate=0.0"),
        (dict(learning_rate=-1e-3), "learning_rate=-0.001"),
        (dict(learning_rate=math.inf), "learning_rate=inf"),
        (dict(warmup_steps=-5), "warmup_steps=-5"),
    ],
)
def test_optimizer_refuses_learning_rates_that_do_not_descend(fields, message):
    cfg = configs.stage("segmentation", examples="all", steps=4, optimizer=fields).optimizer
    with pytest.raises(ValueError, match=message):
        optimizers.check(cfg)


def test_data_path_goes_with_a_file_source_only():
    fundus = configs.data({}, num_images=4, image_size=16, path="/some/file.npz")
    with pytest.raises(ValueError, match=r"data.path='/some/file.npz'.*data.source='fundus'"):
        data.load(fundus)
    with pytest.raises(ValueError, match=r"data.source='tfds' reads a file: give data.path"):
        data.load(configs.data({}, source="tfds"))


def test_method_1_localize_stages_use_the_measured_localizer():
    want = configs.localizer()
    studies = [config_file(CONFIGS / "demo.py", a) for a in ("", "tiny")]
    studies += [config_file(CONFIGS / "studies" / "localization_transfer.py", f"scale={s}")
                for s in ("ci", "cpu", "paper")]  # fmt: skip
    for config in studies:
        st = config.stages.localize
        assert st.task_options.to_dict() == want["task_options"]
        assert {k: st.optimizer[k] for k in want["optimizer"]} == want["optimizer"]
        assert st.optimizer.weight_decay == 0.0  # the other optimizer defaults stay


def test_pool_and_idrid_words_and_the_demo_pool():
    from tests.test_studies import study_config

    c = study_config("localization_transfer", "scale=cpu,idrid,pool=/x/p.npz")
    assert c.data.path.endswith("idrid.npz") and c.data.pool == "/x/p.npz"
    assert max(c.protocol.budgets) <= 64  # a fold holds 64-65 of IDRiD's 81 masks
    with pytest.raises(ValueError, match="busi and idrid both name the data"):
        study_config("localization_transfer", "scale=ci,busi,idrid")
    with pytest.raises(ValueError, match=r"pool=PATH needs an \.npz masked set"):
        study_config("localization_transfer", "scale=ci,pool=/x/p.npz")
    with pytest.raises(ValueError, match=r"data.pool is not used by data.source='fundus'"):
        data.load(configs.data({}, num_images=4, image_size=16, pool="/x/p.npz"))
    from configs import demo

    d = demo.get_config("")
    assert (d.data.num_images, d.data.num_masked) == (2400, 200)
    assert "num_masked" not in demo.get_config("tiny").data  # tiny: 40 masked images
    assert "num_masked" not in demo.get_config("busi").data
