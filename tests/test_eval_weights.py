"""Method 5's weight distances (jaxseg.eval.weights): stage and depth groups, per-stage and
per-depth distances, the distance matrix, asymmetry, tables, checkpoint loading and the CLI."""

from __future__ import annotations

import csv
import importlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from conftest import REPO, subprocess_env

from jaxseg import checkpoint
from jaxseg.eval import weights
from jaxseg.eval.weights import (
    asymmetry,
    bidirectional,
    csv_matrix,
    depth_groups,
    depth_profile,
    distance_matrix,
    kernel_distance,
    load_params,
    markdown_columns,
    markdown_matrix,
    parse_runs,
    per_depth,
    stage_groups,
    weight_distance,
)
from jaxseg.models.unet import Localizer, UNet

RNG = np.random.default_rng(0)


# ---- stage groups ----------------------------------------------------------------------------


def abstract_params(model) -> dict:
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))["params"]


def test_stage_groups_of_a_depth_2_unet_follow_the_longest_path():
    groups = stage_groups(abstract_params(UNet(depth=2, width=4)))
    order = [
        "encoder/stage_0",
        "encoder/stage_1",
        "bottleneck",
        "decoder/stage_1",
        "decoder/stage_0",
        "head",
    ]
    assert list(groups) == order
    assert groups == {g: g for g in order}
    assert list(stage_groups(abstract_params(Localizer(depth=2, width=4)))) == [
        "encoder/stage_0",
        "encoder/stage_1",
        "bottleneck",
        "head",
    ]


def test_stage_groups_sort_stage_numbers_numerically():
    flat = {f"encoder/stage_{i}/conv_0/kernel": 0 for i in (10, 2, 0)}
    assert list(stage_groups(flat)) == ["encoder/stage_0", "encoder/stage_2", "encoder/stage_10"]


# ---- weight distance -------------------------------------------------------------------------


def hand_trees() -> tuple[dict, dict]:
    """Two flat trees whose conv kernels differ by known amounts (see the test)."""
    a = {
        "encoder/stage_0/conv_0/kernel": np.zeros((3, 3, 1, 2)),  # 18 values, all differ by 2
        "encoder/stage_0/conv_1/kernel": np.zeros((1, 1, 4, 4)),  # 16 values, one differs by 12
        "encoder/stage_0/norm_0/bn/scale": np.ones(2),
        "encoder/stage_1/conv_0/kernel": np.zeros((2, 2, 2, 2)),  # 16 values, all differ by 1
        "encoder/stage_10/conv_0/kernel": np.zeros((1, 1, 1, 4)),  # 4 values, all differ by 5
        "bottleneck/conv_0/kernel": np.ones((1, 1, 2, 2)),  # identical
        "decoder/stage_0/up/kernel": np.zeros((2, 2, 2, 1)),  # 8 values, one differs by 4
        "decoder/stage_0/up/bias": np.zeros(1),
        "head/kernel": np.zeros((4, 1)),  # dense: excluded
        "head/bias": np.zeros(1),
    }
    b = {p: v.copy() for p, v in a.items()}
    b["encoder/stage_0/conv_0/kernel"] += 2
    b["encoder/stage_0/conv_1/kernel"][0, 0, 1, 2] = 12
    b["encoder/stage_0/norm_0/bn/scale"] += 50
    b["encoder/stage_1/conv_0/kernel"] -= 1
    b["encoder/stage_10/conv_0/kernel"] += 5
    b["decoder/stage_0/up/kernel"][1, 0, 1, 0] = -4
    b["decoder/stage_0/up/bias"] += 100
    b["head/kernel"] += 100
    return checkpoint.unflatten(a), checkpoint.unflatten(b)


def test_weight_distance_by_hand():
    a, b = hand_trees()
    # L2 per kernel (method 5, the default): sqrt(18 * 2²) = 6·sqrt(2), 12, sqrt(16) = 4,
    # sqrt(4 * 5²) = 10, 0, 4; the head is dense
    expected = {
        "encoder/stage_0": (6 * np.sqrt(2) + 12) / 2,
        "encoder/stage_1": 4.0,
        "encoder/stage_10": 10.0,
        "bottleneck": 0.0,
        "decoder/stage_0": 4.0,
        "all": (6 * np.sqrt(2) + 12 + 4 + 10 + 0 + 4) / 6,
    }
    out = weight_distance(a, b)
    assert list(out) == list(expected)  # no 'head': it has no conv kernel
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, abs=1e-12), k
    # RMS per kernel (L2 / sqrt(size)): 2, 12/4 = 3, 1, 5, 0, 4/sqrt(8) = sqrt(2)
    rms = weight_distance(a, b, distance="rms")
    expected_rms = {
        "encoder/stage_0": 2.5,
        "encoder/stage_1": 1.0,
        "encoder/stage_10": 5.0,
        "bottleneck": 0.0,
        "decoder/stage_0": np.sqrt(2),
        "all": (2 + 3 + 1 + 5 + 0 + np.sqrt(2)) / 6,
    }
    assert rms == pytest.approx(expected_rms, abs=1e-12)
    groups = {"shallow": "encoder/stage_[01]", "deep": "bottleneck+decoder"}
    custom = weight_distance(a, b, groups, "rms")
    assert custom == pytest.approx({"shallow": 2.0, "deep": np.sqrt(2) / 2, "all": rms["all"]})


def test_kernel_distance_is_the_euclidean_norm_of_the_difference():
    a = RNG.normal(size=(3, 3, 2, 4)).astype(np.float32)
    b = RNG.normal(size=(3, 3, 2, 4)).astype(np.float32)
    pairs = zip(a.ravel().tolist(), b.ravel().tolist(), strict=True)
    by_hand = np.sqrt(sum((x - y) ** 2 for x, y in pairs))
    assert kernel_distance(a, b) == pytest.approx(by_hand, rel=1e-12)
    assert kernel_distance(a, b, "rms") == pytest.approx(by_hand / np.sqrt(72), rel=1e-12)
    with pytest.raises(ValueError, match=r"distance='l1' is unknown; use one of \['l2', 'rms'\]"):
        kernel_distance(a, b, "l1")


def test_weight_distance_identical_trees_is_zero():
    a, _ = hand_trees()
    assert set(weight_distance(a, a).values()) == {0.0}


def test_weight_distance_on_a_unet_includes_the_1x1_conv_head():
    params = abstract_params(UNet(depth=2, width=4))
    a = jax.tree.map(lambda s: RNG.normal(size=s.shape), params)
    b = jax.tree.map(np.copy, a)
    b["decoder"]["stage_1"]["up"]["kernel"] += 1.0
    b["head"]["kernel"] += 3.0
    out = weight_distance(a, b, distance="rms")
    assert out["decoder/stage_1"] == pytest.approx(1 / 3)  # up, conv_0, conv_1
    assert out["head"] == pytest.approx(3.0)
    assert out["all"] == pytest.approx(4 / 13)  # 4 encoder, 2 bottleneck, 6 decoder, head
    assert out["encoder/stage_0"] == out["bottleneck"] == 0.0


def test_weight_distance_errors():
    a, b = hand_trees()
    b["bottleneck"]["conv_0"]["kernel"] = np.ones((1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"bottleneck/conv_0/kernel: \(1, 1, 2, 2\) vs"):
        weight_distance(a, b)
    del b["bottleneck"]
    with pytest.raises(ValueError, match=r"only one tree: \['bottleneck/conv_0/kernel'\]"):
        weight_distance(a, b)
    with pytest.raises(ValueError, match=r"'typo'.*selects no parameter"):
        weight_distance(a, a, {"typo": "encodr"})
    with pytest.raises(ValueError, match="distance='L2' is unknown"):
        weight_distance({}, {}, {}, "L2")  # refused even with no kernel to compare


def test_bidirectional_averages_per_key():
    assert bidirectional({"a": 1.0, "all": 3.0}, {"all": 5.0, "a": 2.0}) == {"a": 1.5, "all": 4.0}
    with pytest.raises(ValueError, match=r"only in d_ab \['b'\]"):
        bidirectional({"a": 1.0, "b": 1.0}, {"a": 1.0})


def test_asymmetry_sign_and_keys():
    out = asymmetry({"all": 9.56e-3, "x": 1.0}, {"x": 3.0, "all": 6.70e-3})
    assert list(out) == ["all", "x"]
    assert out["all"] == pytest.approx(2.86e-3) and out["x"] == -2.0
    with pytest.raises(ValueError, match=r"only in d_ba \['y'\]"):
        asymmetry({"a": 1.0}, {"a": 1.0, "y": 2.0})


def test_asymmetry_of_fine_tuned_nets_is_positive_when_a_moved_further():
    a_s, _ = hand_trees()  # A(s)
    b_s = jax.tree.map(lambda x: x + 1.0, a_s)  # B(s)
    b_from_a = jax.tree.map(lambda x: x + 0.5, a_s)  # B|A(s): moved 0.5 from A(s)
    a_from_b = jax.tree.map(lambda x: x - 0.25, b_s)  # A|B(s): moved 0.25 from B(s)
    d_ab = weight_distance(a_s, b_from_a, distance="rms")
    d_ba = weight_distance(b_s, a_from_b, distance="rms")
    assert d_ab["all"] == pytest.approx(0.5) and d_ba["all"] == pytest.approx(0.25)
    assert asymmetry(d_ab, d_ba)["all"] == pytest.approx(0.25)
    assert asymmetry(d_ba, d_ab)["all"] == pytest.approx(-0.25)
    assert bidirectional(d_ab, d_ba)["all"] == pytest.approx(0.375)


# ---- per depth -------------------------------------------------------------------------------


def test_depth_groups_keep_encoder_and_decoder_stages_apart():
    groups = depth_groups(abstract_params(UNet(depth=2, width=4)))
    assert list(groups) == ["encoder_0", "decoder_0", "encoder_1", "decoder_1", "bottleneck"]
    assert groups == {
        "encoder_0": "encoder/stage_0",
        "decoder_0": "decoder/stage_0",
        "encoder_1": "encoder/stage_1",
        "decoder_1": "decoder/stage_1",
        "bottleneck": "bottleneck",
    }
    localizer = depth_groups(abstract_params(Localizer(depth=2, width=4)))
    assert list(localizer) == ["encoder_0", "encoder_1", "bottleneck"]


def test_per_depth_by_hand():
    a, b = hand_trees()
    # L2 per kernel (see test_weight_distance_by_hand): encoder/stage_0 6·sqrt(2) and 12,
    # decoder/stage_0 4, encoder/stage_1 4, encoder/stage_10 10, bottleneck 0; the dense head
    # is in no group
    out = per_depth(a, b)
    assert list(out) == ["encoder_0", "decoder_0", "encoder_1", "encoder_10", "bottleneck"]
    assert out["encoder_0"] == pytest.approx((6 * np.sqrt(2) + 12) / 2, abs=1e-12)
    assert out["decoder_0"] == 4.0 and out["encoder_1"] == 4.0
    assert out["encoder_10"] == 10.0 and out["bottleneck"] == 0.0
    assert per_depth(a, b, "rms")["decoder_0"] == pytest.approx(np.sqrt(2))


def test_per_depth_of_a_decoder_only_change_is_zero_in_the_encoder():
    """Fine-tuning that moves only the decoder gives zero encoder distance at every depth: the
    encoder-vs-decoder contrast of method 5 is not averaged away."""
    params = abstract_params(UNet(depth=2, width=4))
    a = jax.tree.map(lambda s: RNG.normal(size=s.shape), params)
    b = jax.tree.map(np.copy, a)
    for i in (0, 1):
        for name in ("up", "conv_0", "conv_1"):
            b["decoder"][f"stage_{i}"][name]["kernel"] += 0.1 * (i + 1)
    out = per_depth(a, b)
    assert out["encoder_0"] == out["encoder_1"] == out["bottleneck"] == 0.0
    for i in (0, 1):
        kernels = [b["decoder"][f"stage_{i}"][n]["kernel"] for n in ("up", "conv_0", "conv_1")]
        by_hand = np.mean([0.1 * (i + 1) * np.sqrt(k.size) for k in kernels])
        assert out[f"decoder_{i}"] == pytest.approx(by_hand, rel=1e-9)
    profile = depth_profile(out)
    assert profile["encoder"] == [(0, 0.0), (1, 0.0), (2, 0.0)]  # the bottleneck at depth 2
    assert [i for i, _ in profile["decoder"]] == [0, 1, 2]
    assert [d for _, d in profile["decoder"][:2]] == [out["decoder_0"], out["decoder_1"]]


def test_depth_profile_sorts_by_depth_and_ignores_other_keys():
    d = {"decoder_10": 5.0, "encoder_2": 1.0, "decoder_2": 3.0, "bottleneck": 7.0, "all": 9.0}
    assert depth_profile(d) == {
        "decoder": [(2, 3.0), (10, 5.0), (11, 7.0)],
        "encoder": [(2, 1.0), (11, 7.0)],
    }
    assert depth_profile({"encoder_0": 1.0}) == {"encoder": [(0, 1.0)]}
    assert depth_profile({}) == {}


def test_per_depth_on_a_unet():
    params = abstract_params(UNet(depth=2, width=4))
    a = jax.tree.map(lambda s: RNG.normal(size=s.shape), params)
    b = jax.tree.map(np.copy, a)
    b["encoder"]["stage_1"]["conv_0"]["kernel"] += 2.0
    b["decoder"]["stage_1"]["up"]["kernel"] += 4.0
    b["bottleneck"]["conv_1"]["kernel"] -= 1.0
    b["head"]["kernel"] += 9.0
    out = per_depth(a, b, "rms")
    expected = {"encoder_0": 0.0, "decoder_0": 0.0, "encoder_1": 1.0, "decoder_1": 4 / 3,
                "bottleneck": 0.5}  # fmt: skip
    assert out == pytest.approx(expected)


# ---- distance matrix -------------------------------------------------------------------------


def three_trees() -> dict[str, dict]:
    a, b = hand_trees()
    c = checkpoint.unflatten(
        {p: v + 1 if p.endswith("kernel") else v for p, v in checkpoint.flatten(a).items()}
    )
    return {"a": a, "b": b, "c": c}


def test_distance_matrix_by_hand_symmetric_with_zero_diagonal():
    labels, m = distance_matrix(three_trees(), distance="rms")
    assert labels == ["a", "b", "c"]
    # b - c per kernel: 1; one 11 among fifteen 1s -> sqrt(136)/4; 2; 4; 1; one 5 among seven
    # 1s -> sqrt(32/8) = 2
    ab = (2 + 3 + 1 + 5 + 0 + np.sqrt(2)) / 6
    bc = (1 + np.sqrt(136) / 4 + 2 + 4 + 1 + 2) / 6
    np.testing.assert_allclose(m, [[0, ab, 1], [ab, 0, bc], [1, bc, 0]], rtol=0, atol=1e-12)
    assert np.array_equal(m, m.T) and np.all(np.diag(m) == 0)


def test_distance_matrix_of_one_group():
    trees = three_trees()
    _, m = distance_matrix(trees, group="encoder/stage_1", distance="rms")
    np.testing.assert_allclose(m, [[0, 1, 1], [1, 0, 2], [1, 2, 0]])
    _, m = distance_matrix(trees, depth_groups(trees["a"]), group="encoder_10")  # 4 weights: L2
    np.testing.assert_allclose(m, [[0, 10, 2], [10, 0, 8], [2, 8, 0]])
    with pytest.raises(ValueError, match=r"group 'head' has no conv kernel; groups: \["):
        distance_matrix(trees, group="head")


def test_distance_matrix_rejects_other_architectures():
    trees = three_trees()
    del trees["c"]["bottleneck"]
    with pytest.raises(ValueError, match="only one tree"):
        distance_matrix(trees)
    labels, m = distance_matrix({"only": trees["a"]})
    assert labels == ["only"] and m.shape == (1, 1) and m[0, 0] == 0


# ---- tables ----------------------------------------------------------------------------------


def test_markdown_matrix_formatting():
    m = np.array([[0.0, 0.0123456], [0.0123456, 0.0]])
    assert markdown_matrix(["scratch", "fine"], m).splitlines() == [
        "| | scratch | fine |",
        "|---|---|---|",
        "| scratch | 0 | 0.01235 |",
        "| fine | 0.01235 | 0 |",
    ]
    assert markdown_matrix(["x"], [[1.5]], fmt=".2f").splitlines()[2] == "| x | 1.50 |"
    with pytest.raises(ValueError, match=r"shape \(2, 2\) for 3 labels"):
        markdown_matrix(["a", "b", "c"], m)


def test_markdown_columns_and_csv_matrix():
    table = markdown_columns({"a vs b": {"s0": 1.0, "all": 0.5}, "a vs c": {"s1": 2.0}})
    assert table.splitlines() == [
        "| stage | a vs b | a vs c |",
        "|---|---|---|",
        "| s0 | 1 | — |",
        "| all | 0.5 | — |",
        "| s1 | — | 2 |",
    ]
    text = csv_matrix(["a", "b"], np.array([[0.0, 1 / 3], [1 / 3, 0.0]]))
    assert text == f",a,b\na,0.0,{1 / 3!r}\nb,{1 / 3!r},0.0\n"


def test_parse_runs():
    assert parse_runs(["a=x/y", "p/q/"]) == {"a": "x/y", "q": "p/q/"}
    with pytest.raises(ValueError, match="names 'a' twice"):
        parse_runs(["a=x", "a=y"])


# ---- checkpoints and CLI ---------------------------------------------------------------------


def small_params(shift: float = 0.0, head: float = 0.0) -> dict:
    """A depth-1 U-Net-shaped tree of float32 conv kernels (+ a bias), all equal to ``shift``
    except the head kernel (``shift + head``)."""
    flat = {
        "encoder/stage_0/conv_0/kernel": np.full((3, 3, 1, 2), shift, np.float32),
        "encoder/stage_0/conv_0/bias": np.zeros(2, np.float32),
        "bottleneck/conv_0/kernel": np.full((3, 3, 2, 4), shift, np.float32),
        "decoder/stage_0/up/kernel": np.full((2, 2, 4, 2), shift, np.float32),
        "head/kernel": np.full((1, 1, 2, 1), shift + head, np.float32),
    }
    return checkpoint.unflatten(flat)


def save_run(workdir, params: dict, step: int = 1) -> None:
    mngr = checkpoint.manager(str(workdir / "checkpoints"))
    checkpoint.save(mngr, step, {"step": step, "params": params})
    mngr.close()


def assert_trees_equal(x: dict, y: dict) -> None:
    fx, fy = checkpoint.flatten(x), checkpoint.flatten(y)
    assert sorted(fx) == sorted(fy)
    for p in fx:
        assert isinstance(fx[p], np.ndarray), p
        np.testing.assert_array_equal(fx[p], fy[p], err_msg=p)


def test_load_params_from_a_stage_dir_or_its_checkpoints(tmp_path):
    save_run(tmp_path / "run", small_params(1.0), step=1)
    save_run(tmp_path / "run", small_params(2.0), step=2)
    assert_trees_equal(load_params(str(tmp_path / "run")), small_params(2.0))
    assert_trees_equal(load_params(str(tmp_path / "run" / "checkpoints")), small_params(2.0))
    assert_trees_equal(load_params(str(tmp_path / "run"), step=1), small_params(1.0))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_params(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint under"):
        load_params(str(tmp_path / "empty"))


def test_load_params_of_a_stage_dir_prefers_its_best_validated_checkpoint(tmp_path):
    save_run(tmp_path / "run", small_params(2.0), step=4)
    mngr = checkpoint.manager(str(tmp_path / "run" / "checkpoints_best"))
    checkpoint.save(mngr, 2, {"step": 2, "params": small_params(3.0)})
    mngr.close()
    assert_trees_equal(load_params(str(tmp_path / "run")), small_params(3.0))  # best, step 2
    assert_trees_equal(load_params(str(tmp_path / "run" / "checkpoints")), small_params(2.0))


def test_importing_defines_no_flags():
    before = set(flags.FLAGS)
    importlib.reload(weights)
    assert set(flags.FLAGS) == before


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxseg.eval.weights", *args], cwd=REPO, capture_output=True,
        text=True, timeout=300, env=subprocess_env(JAX_PLATFORMS="cpu"),
    )  # fmt: skip


def test_cli_writes_tables_and_reports_bad_input(tmp_path):
    save_run(tmp_path / "a", small_params(0.0))
    save_run(tmp_path / "b", small_params(0.5))
    save_run(tmp_path / "c", small_params(0.0, head=2.0))
    out_dir = tmp_path / "out"
    runs = f"--runs=a={tmp_path / 'a'},b={tmp_path / 'b'},c={tmp_path / 'c' / 'checkpoints'}"
    out = cli(runs, f"--out={out_dir}", "--distance=rms")
    assert out.returncode == 0, out.stderr[-2000:]
    # RMS per kernel: a-b 0.5 everywhere; a-c only the head, 2; b-c 0.5 and the head 1.5
    with open(out_dir / "weight_matrix.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["", "a", "b", "c"] and [r[0] for r in rows[1:]] == ["a", "b", "c"]
    m = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(m, [[0, 0.5, 0.5], [0.5, 0, 0.75], [0.5, 0.75, 0]], atol=1e-7)
    md = (out_dir / "weights.md").read_text()
    for line in [
        "| stage | a vs b | a vs c | b vs c |",
        "| encoder/stage_0 | 0.5 | 0 | 0.5 |",
        "| head | 0.5 | 2 | 1.5 |",
        "| all | 0.5 | 0.5 | 0.75 |",
        "| depth | a vs b | a vs c | b vs c |",
        "| encoder_0 | 0.5 | 0 | 0.5 |",
        "| decoder_0 | 0.5 | 0 | 0.5 |",
        "| bottleneck | 0.5 | 0 | 0.5 |",
        "| | a | b | c |",
        "| b | 0.5 | 0 | 0.75 |",
    ]:
        assert line in md.splitlines(), line
    assert "| encoder_0 | 0.5 | 0 | 0.5 |" in out.stdout  # the report is printed too
    assert "root-mean-square" in md
    assert (out_dir / "weight_matrix.png").stat().st_size > 0
    assert "![weight matrix](weight_matrix.png)" in md

    bad = cli(f"--runs=a={tmp_path / 'a'},x={tmp_path / 'missing'}")
    assert bad.returncode == 1
    errors = [ln for ln in (bad.stdout + bad.stderr).splitlines() if ln.startswith("error:")]
    assert errors == [f"error: no such directory: {tmp_path / 'missing'}"]
    assert bad.stderr.strip().splitlines()[-1] == errors[0]


def test_jaxseg_weights_subcommand_dispatches_to_the_weights_cli(tmp_path, monkeypatch, capsys):
    from jaxseg import cli

    save_run(tmp_path / "a", small_params(0.0))
    save_run(tmp_path / "b", small_params(0.5))
    monkeypatch.setattr(sys, "argv", ["jaxseg", "weights", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 0
    assert "usage: jaxseg weights" in capsys.readouterr().out
    runs = f"--runs=a={tmp_path / 'a'},b={tmp_path / 'b'}"
    monkeypatch.setattr(sys, "argv", ["jaxseg", "weights", runs, "--group=encoder_0"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # the default is L2: 18 weights of encoder/stage_0/conv_0 each 0.5 apart -> 0.5·sqrt(18)
    assert "## Matrix (encoder_0)" in out and "| a | 0 | 2.121 |" in out.splitlines()
    assert "Euclidean (L2)" in out
    monkeypatch.setattr(sys, "argv", ["jaxseg", "weights", f"--runs=a={tmp_path / 'a'}"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --runs needs at least two runs to compare, got ['a']"
    ]
