"""Tests for jaxseg.surgery.transfer: rename, allow, report/error contents, step selection,
from_config/format_report, and a checkpoint saved on 2 devices restored on 1 (and back)."""

import json
import os
import re
import subprocess
import sys
import types

import jax
import ml_collections
import numpy as np
import pytest
from _transfer_worker import loadz, random_variables, save_state
from conftest import REPO, subprocess_env

from jaxseg import checkpoint
from jaxseg.models.unet import Localizer, UNet
from jaxseg.surgery.transfer import (
    format_report,
    from_config,
    parse_rename,
    transfer,
    transfer_tree,
)
from jaxseg.train import loop


def flat(variables: dict) -> dict[str, np.ndarray]:
    return {p: np.asarray(v) for p, v in checkpoint.flatten(variables).items()}


def inner(path: str) -> str:
    """'params/encoder/stage_0/x' -> 'encoder/stage_0/x'."""
    return path.split("/", 1)[1]


def under(path: str, prefix: str) -> bool:
    return inner(path) == prefix or inner(path).startswith(prefix + "/")


@pytest.fixture(scope="module")
def loc(tmp_path_factory):
    """(checkpoints dir, flat variables) of a depth-2, width-4 Localizer with BatchNorm."""
    variables = random_variables(Localizer(depth=2, width=4), seed=1)
    directory = str(tmp_path_factory.mktemp("loc") / "checkpoints")
    save_state(directory, variables, step=3)
    return directory, flat(variables)


def assert_merged(new: dict, fresh: dict, src: dict, mapping: dict[str, str]) -> None:
    """Every leaf ``p`` of ``new`` is ``src[mapping[p]]`` if mapped, else its fresh value; and
    the two candidates differ, so the comparison means something."""
    out, init = flat(new), flat(fresh)
    assert set(out) == set(init)
    for p in init:
        if p in mapping:
            assert np.array_equal(out[p], src[mapping[p]]), p
            assert not np.array_equal(src[mapping[p]], init[p]), p
        else:
            assert np.array_equal(out[p], init[p]), p
            assert p not in src or not np.array_equal(src[p], init[p]), p


# --------------------------------------------------------------------------- rename


def test_rename_stage_lands_at_the_new_path(loc):
    directory, src = loc
    fresh = random_variables(Localizer(depth=3, width=2), seed=2)  # stage_2: 4 -> 8 channels
    new, report = transfer(
        fresh, directory, "encoder/stage_2", rename={"encoder/stage_1": "encoder/stage_2"}
    )
    mapping = {
        p: p.replace("encoder/stage_2", "encoder/stage_1")
        for p in flat(fresh)
        if under(p, "encoder/stage_2")
    }
    assert {p.split("/")[0] for p in mapping} == {"params", "batch_stats"}
    assert report["loaded"] == sorted(mapping)
    assert report["renamed"] == [[mapping[p], p] for p in sorted(mapping)]
    assert report["skipped"] == []
    assert report["kept"] == sorted(set(flat(fresh)) - set(mapping))
    assert report["step"] == 3
    assert_merged(new, fresh, src, mapping)


def test_rename_string_form_equals_dict_form(loc):
    directory, src = loc
    fresh = random_variables(UNet(depth=3, width=4), seed=2)
    # The depth-2 bottleneck (8 -> 16 channels) is a depth-3 encoder's stage_2.
    by_str = transfer(fresh, directory, "encoder", rename=" bottleneck : encoder/stage_2/ ,")
    by_dict = transfer(fresh, directory, "encoder", rename={"bottleneck": "encoder/stage_2"})
    assert by_str[1] == by_dict[1]
    for a, b in zip(jax.tree.leaves(by_str[0]), jax.tree.leaves(by_dict[0]), strict=True):
        assert np.array_equal(a, b)
    mapping = {
        p: p.replace("encoder/stage_2", "bottleneck") for p in flat(fresh) if under(p, "encoder")
    }
    assert len([p for p in mapping if mapping[p] != p]) == len(by_str[1]["renamed"]) > 0
    assert by_str[1]["loaded"] == sorted(mapping)
    assert_merged(by_str[0], fresh, src, mapping)


def test_parse_rename():
    text = "encoder/stage_3:encoder/stage_4, bottleneck : encoder/stage_5"
    expected = {"encoder/stage_3": "encoder/stage_4", "bottleneck": "encoder/stage_5"}
    assert parse_rename(text) == expected
    assert parse_rename(dict(expected)) == expected
    assert parse_rename("") == parse_rename(" ") == parse_rename(None) == {}
    for bad in ("encoder", "a:b:c", ":b", "a: ", "a:b,a:c"):
        with pytest.raises(ValueError, match=re.escape("init_from.rename")):
            parse_rename(bad)


@pytest.mark.parametrize("source", ["encoder/stage_7", "encoder/stage", "ncoder/stage_1"])
def test_rename_unknown_source_prefix_is_an_error(loc, source):
    directory, _ = loc
    fresh = random_variables(Localizer(depth=3, width=2), seed=2)
    with pytest.raises(ValueError, match="matches no checkpoint path") as err:
        transfer(fresh, directory, "encoder/stage_2", rename=f"{source}:encoder/stage_2")
    assert repr(source) in str(err.value)
    assert "encoder/stage_1" in str(err.value)  # lists what the checkpoint holds


def test_rename_matches_whole_path_names(tmp_path):
    """Renaming 'encoder/stage_1' leaves 'encoder/stage_10' alone."""
    key = jax.random.PRNGKey(5)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    src = {
        "params": {
            "encoder": {
                "stage_1": {"w": jax.random.normal(k1, (3,))},
                "stage_10": {"w": jax.random.normal(k2, (5,))},
            }
        }
    }
    fresh = {
        "params": {
            "encoder": {
                "stage_2": {"w": jax.random.normal(k3, (3,))},
                "stage_10": {"w": jax.random.normal(k4, (5,))},
            }
        },
        "batch_stats": {},
    }
    directory = save_state(str(tmp_path / "checkpoints"), src, step=1)
    new, report = transfer(fresh, directory, "encoder", rename="encoder/stage_1:encoder/stage_2")
    assert report["renamed"] == [["params/encoder/stage_1/w", "params/encoder/stage_2/w"]]
    assert report["loaded"] == ["params/encoder/stage_10/w", "params/encoder/stage_2/w"]
    mapping = {"params/encoder/stage_2/w": "params/encoder/stage_1/w"}
    mapping["params/encoder/stage_10/w"] = "params/encoder/stage_10/w"
    assert_merged(new, fresh, flat(src), mapping)
    # Nested rules: the longest matching prefix wins.
    moved = {"params": {"model": fresh["params"]["encoder"]}, "batch_stats": {}}
    rules = {"encoder": "model", "encoder/stage_1": "model/stage_2"}
    new, report = transfer(moved, directory, "model", rename=rules)
    assert report["renamed"] == [
        ["params/encoder/stage_10/w", "params/model/stage_10/w"],
        ["params/encoder/stage_1/w", "params/model/stage_2/w"],
    ]
    mapping = {"params/model/stage_2/w": "params/encoder/stage_1/w"}
    mapping["params/model/stage_10/w"] = "params/encoder/stage_10/w"
    assert_merged(new, moved, flat(src), mapping)


def test_rename_collision_and_target_outside_subtrees(loc):
    directory, _ = loc
    fresh = random_variables(UNet(depth=2, width=4), seed=2)
    with pytest.raises(ValueError, match="collide") as err:
        transfer(fresh, directory, "encoder", rename="encoder/stage_1:encoder/stage_0")
    assert "params/encoder/stage_0/conv_0/kernel <- " in str(err.value)
    # A swap does not collide.
    swap = {"encoder/stage_0": "encoder/stage_1", "encoder/stage_1": "encoder/stage_0"}
    with pytest.raises(ValueError, match="shape mismatch"):  # ... but the shapes do not fit
        transfer(fresh, directory, "encoder", rename=swap)
    with pytest.raises(ValueError, match=re.escape("renames nothing into init_from.subtrees")):
        transfer(fresh, directory, "encoder", rename="bottleneck:decoder/stage_9")


# --------------------------------------------------------------------------- allow


def test_depth2_encoder_into_depth3_unet_is_strict_by_default(loc):
    directory, _ = loc
    fresh = random_variables(UNet(depth=3, width=4), seed=2)
    with pytest.raises(ValueError) as err:
        transfer(fresh, directory, "encoder+bottleneck")
    msg = str(err.value)
    assert "\n" not in msg  # one line, as every user-facing error
    lines = msg.split("; ")
    missing = next(x for x in lines if x.strip().startswith("missing in checkpoint"))
    stage_2 = sorted(p for p in flat(fresh) if under(p, "encoder/stage_2"))
    assert stage_2 and all(p in missing for p in stage_2)
    assert "stage_0" not in missing and "stage_1" not in missing
    mismatch = next(x for x in lines if x.strip().startswith("shape mismatch"))
    assert "params/bottleneck/conv_0/kernel (3, 3, 8, 16)->(3, 3, 16, 32)" in mismatch
    assert "only in checkpoint" not in msg
    assert "init_from.allow='bottleneck+encoder/stage_2'" in msg


def test_allow_keeps_fresh_init_and_reports_skips(loc):
    directory, src = loc
    fresh = random_variables(UNet(depth=3, width=4), seed=2)
    new, report = transfer(
        fresh, directory, "encoder+bottleneck", allow="encoder/stage_2+bottleneck"
    )
    init = flat(fresh)
    loaded = sorted(p for p in init if under(p, "encoder/stage_0") or under(p, "encoder/stage_1"))
    assert {p.split("/")[0] for p in loaded} == {"params", "batch_stats"}
    assert report["loaded"] == loaded
    assert report["renamed"] == []
    assert report["kept"] == sorted(set(init) - set(loaded))
    skipped = dict(report["skipped"])
    assert sorted(skipped) == sorted(
        p for p in init if under(p, "encoder/stage_2") or under(p, "bottleneck")
    )
    for p, reason in skipped.items():
        if under(p, "encoder/stage_2"):
            assert reason == "missing in checkpoint", p
        else:
            shape = tuple(init[p].shape)
            old = tuple(src[p].shape)
            assert reason == f"shape mismatch {old}->{shape}", p
    assert_merged(new, fresh, src, {p: p for p in loaded})
    json.dumps(report)  # transfer.json


def _mismatched(tmp_path):
    """A checkpoint and a model whose 'encoder' has one leaf of each problem, and one match."""
    keys = iter(jax.random.split(jax.random.PRNGKey(7), 8))

    def leaf(*shape):
        return jax.random.normal(next(keys), shape)

    saved = {"params": {"encoder": {"a": {"w": leaf(3)}, "b": {"w": leaf(4)}, "c": {"w": leaf(2)}}}}
    fresh = {
        "params": {"encoder": {"a": {"w": leaf(3)}, "b": {"w": leaf(5)}, "d": {"w": leaf(2)}}},
        "batch_stats": {},
    }
    return save_state(str(tmp_path / "checkpoints"), saved, step=9), saved, fresh


def test_mismatch_error_text_and_report(tmp_path):
    directory, saved, fresh = _mismatched(tmp_path)
    with pytest.raises(ValueError) as err:
        transfer(fresh, directory, "encoder")
    assert str(err.value) == "; ".join(
        [
            f"cannot transfer init_from.subtrees='encoder' from {directory} (step 9)",
            "missing in checkpoint (1): params/encoder/d/w",
            "only in checkpoint (1): params/encoder/c/w",
            "shape mismatch (1): params/encoder/b/w (4,)->(5,)",
            "to keep the fresh initialisation of these paths (and ignore checkpoint-only ones), "
            "name them in init_from.allow, e.g. init_from.allow='encoder/b+encoder/c+encoder/d'; "
            "or fix init_from.subtrees / init_from.rename",
        ]
    )
    # Partly allowed: only the rest is listed.
    with pytest.raises(ValueError) as err:
        transfer(fresh, directory, "encoder", allow="encoder/c")
    msg = str(err.value)
    assert "encoder/c" not in msg.split("; ")[1:-2] and "only in checkpoint" not in msg
    assert "missing in checkpoint (1): params/encoder/d/w" in msg
    assert "shape mismatch (1): params/encoder/b/w (4,)->(5,)" in msg
    # All allowed: exact report.
    new, report = transfer(fresh, directory, "encoder", allow="encoder/[b-d]")
    assert report == {
        "loaded": ["params/encoder/a/w"],
        "renamed": [],
        "skipped": [
            ["params/encoder/b/w", "shape mismatch (4,)->(5,)"],
            ["params/encoder/c/w", "only in checkpoint"],
            ["params/encoder/d/w", "missing in checkpoint"],
        ],
        "kept": ["params/encoder/b/w", "params/encoder/d/w"],
        "step": 9,
        "source": directory,
    }
    assert json.loads(json.dumps(report)) == report
    assert_merged(new, fresh, flat(saved), {"params/encoder/a/w": "params/encoder/a/w"})
    assert "params/encoder/c/w" not in flat(new)
    # An allow selector that matches nothing anywhere is a typo.
    with pytest.raises(ValueError, match=re.escape("init_from.allow='encoder/e' matches no path")):
        transfer(fresh, directory, "encoder", allow="encoder/e")
    # A renamed checkpoint-only leaf says where it came from.
    _, report = transfer(fresh, directory, "encoder", rename="encoder/c:encoder/e", allow="encoder")
    assert ["params/encoder/e/w", "only in checkpoint (renamed from params/encoder/c/w)"] in (
        report["skipped"]
    )


def test_format_report(tmp_path):
    directory, _, fresh = _mismatched(tmp_path)
    _, report = transfer(fresh, directory, "encoder", rename="encoder/c:encoder/e", allow="encoder")
    assert format_report(report).splitlines() == [
        f"transfer from {directory} (step 9): "
        "1 leaves loaded (0 renamed), 3 skipped, 2 freshly initialised",
        "  skipped params/encoder/b/w: shape mismatch (4,)->(5,)",
        "  skipped params/encoder/d/w: missing in checkpoint",
        "  skipped params/encoder/e/w: only in checkpoint (renamed from params/encoder/c/w)",
    ]
    # Renamed lines.
    rep = {
        "loaded": ["params/x/w"],
        "renamed": [["params/y/w", "params/x/w"]],
        "skipped": [],
        "kept": [],
        "step": 2,
    }
    assert format_report(rep).splitlines()[1:] == ["  renamed params/y/w -> params/x/w"]


# --------------------------------------------------------------------------- step, config


def test_step_selection(tmp_path):
    directory = str(tmp_path / "stage" / "checkpoints")
    first = random_variables(Localizer(depth=2, width=4), seed=21)
    wider = random_variables(Localizer(depth=2, width=8), seed=22)
    save_state(directory, first, step=2)
    save_state(directory, wider, step=5)  # the latest no longer fits a width-4 model
    fresh = random_variables(UNet(depth=2, width=4), seed=23)
    with pytest.raises(ValueError, match=re.escape("(step 5)")):
        transfer(fresh, directory, "encoder")
    new, report = transfer(fresh, directory, "encoder", step=2)
    assert report["step"] == 2
    encoder = [p for p in flat(fresh) if under(p, "encoder")]
    assert_merged(new, fresh, flat(first), {p: p for p in encoder})
    with pytest.raises(FileNotFoundError, match=re.escape("saved: [2, 5]")):
        transfer(fresh, directory, "encoder", step=3)
    with pytest.raises(FileNotFoundError):
        transfer(fresh, str(tmp_path / "nowhere"), "encoder")


def test_from_config(loc):
    directory, _ = loc
    fresh = random_variables(UNet(depth=3, width=4), seed=2)
    old = ml_collections.ConfigDict(dict(stage="localize", subtrees="encoder"))
    with pytest.raises(ValueError, match="missing in checkpoint"):  # no allow field: strict
        from_config(fresh, old, directory)
    new_cfg = ml_collections.ConfigDict(
        dict(
            stage="localize",
            subtrees="encoder+bottleneck",
            rename="bottleneck:encoder/stage_2",
            allow="bottleneck",
        )
    )
    merged, report = from_config(fresh, new_cfg, directory)
    assert not np.array_equal(
        *(flat(v)["params/encoder/stage_2/conv_0/kernel"] for v in (merged, fresh))
    )
    expected = transfer(
        fresh, directory, "encoder+bottleneck", {"bottleneck": "encoder/stage_2"}, "bottleneck"
    )
    assert report == expected[1]
    assert len(report["renamed"]) > 0 and len(report["skipped"]) > 0
    _, as_dict = from_config(fresh, new_cfg.to_dict(), directory)
    assert as_dict == report


def test_transfer_tree_matches_the_checkpoint_transfer(loc):
    """Variables in memory (converted weights) transfer as their checkpoint does."""
    directory, src = loc
    fresh = random_variables(UNet(depth=3, width=4), seed=2)
    args = ("encoder+bottleneck", {"bottleneck": "encoder/stage_2"}, "bottleneck")
    want, want_report = transfer(fresh, directory, *args)
    saved = checkpoint.unflatten(src)
    got, report = transfer_tree(fresh, saved, *args, source="weights.safetensors")
    assert {**want_report, "step": None, "source": "weights.safetensors"} == report
    assert all(np.array_equal(a, flat(got)[p]) for p, a in flat(want).items())
    with pytest.raises(ValueError, match="missing in checkpoint"):
        transfer_tree(fresh, saved, "encoder", source="weights.safetensors")


def test_next_stage_starts_from_the_parent_best_validated_checkpoint(tmp_path):
    """A parent whose best validated step (3) is not its last (6): the next stage's subtree is
    bit-identical to step 3's, and transfer.json and the log line say so; without a best
    folder (no validation) the latest step is used."""
    parent, child = tmp_path / "localize", tmp_path / "segment"
    best = random_variables(Localizer(depth=2, width=4), seed=31)
    last = random_variables(Localizer(depth=2, width=4), seed=32)
    save_state(str(parent / "checkpoints"), last, step=6)
    fresh = random_variables(UNet(depth=2, width=4), seed=33)
    init_from = ml_collections.ConfigDict(dict(stage="localize", subtrees="encoder"))
    config = ml_collections.ConfigDict(dict(name="segment", init_from=init_from))
    stage = types.SimpleNamespace(config=config)  # load_parent reads only the stage's config
    encoder = {p: p for p in flat(fresh) if under(p, "encoder")}
    os.makedirs(child)
    new = loop.load_parent(stage, fresh, str(child), str(parent))  # no best folder: latest
    assert_merged(new, fresh, flat(last), encoder)
    assert json.loads((child / "transfer.json").read_text())["checkpoint"] == "latest"
    save_state(str(parent / "checkpoints_best"), best, step=3)
    new = loop.load_parent(stage, fresh, str(child), str(parent))
    assert_merged(new, fresh, flat(best), encoder)
    report = json.loads((child / "transfer.json").read_text())
    assert (report["step"], report["checkpoint"]) == (3, "best")
    assert report["source"] == os.path.join("..", "localize", "checkpoints_best")
    assert "(step 3, best)" in format_report(report)
    assert loop.transferred(str(child)) == {
        "source": report["source"], "step": 3, "checkpoint": "best",
    }  # fmt: skip
    init_from.step = 6  # an explicit step is one of the latest steps
    new = loop.load_parent(stage, fresh, str(child), str(parent))
    assert_merged(new, fresh, flat(last), encoder)
    assert loop.transferred(str(tmp_path)) is None  # nothing loaded there


# --------------------------------------------------------------------------- devices


def test_two_device_checkpoint_restores_on_one_device(loc, tmp_path):
    """A state saved replicated over 2 devices transfers here (1 device), and a 1-device
    checkpoint transfers in the 2-device process: values identical both ways."""
    assert jax.device_count() == 1
    source_dir, source = loc
    out = tmp_path / "two"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tests" / "_transfer_worker.py"), str(out), source_dir],
        cwd=REPO,
        env=subprocess_env(
            XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["devices"] == 2 and result["saved_devices"] == [2]

    # 2 devices -> 1 device.
    saved = loadz(str(out / "saved.npz"))
    fresh = random_variables(UNet(depth=2, width=4), seed=3)
    new, report = transfer(fresh, str(out / "checkpoints"), "encoder+bottleneck")
    assert report["step"] == 4
    moved = [p for p in flat(fresh) if under(p, "encoder") or under(p, "bottleneck")]
    assert report["loaded"] == sorted(moved)
    assert_merged(new, fresh, saved, {p: p for p in moved})
    assert all(x.sharding.device_set == {jax.devices()[0]} for x in jax.tree.leaves(new))

    # 1 device -> 2 devices.
    restored = loadz(str(out / "restored.npz"))
    assert result["report"]["loaded"] == sorted(moved)
    for p in moved:
        assert np.array_equal(restored[p], source[p]), p
    assert os.path.exists(out / "checkpoints")
