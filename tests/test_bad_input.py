"""The bad-input catalogue: every malformed data file or config override given to
``python -m jaxseg.main`` ends in one ``error: ...`` line naming what is wrong and where (key,
file or shape), with a non-zero exit, no traceback and no partial results in the workdir.

Data cases write a crafted ``.npz`` and run ``configs/demo.py:tiny,data=PATH`` (32² images,
2 folds, budget 4, depth-2 U-Net); config cases override the tiny fundus study. Most fail before
anything is compiled: the study checks every run (studies/preflight.py) before it trains or
writes anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, subprocess_env

N, SIZE = 40, 32  # as the tiny study: 2 folds of 20 images of 32x32
DATA = "<data>"  # in an expected substring: the crafted file's path
Arrays = dict[str, np.ndarray]


def good_arrays(n: int = N, size: int = SIZE) -> Arrays:
    """A valid .npz layout: noisy images with one bright disc each, its mask, a group each."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3 * size, 0.7 * size, (2, n, 1, 1))
    masks = ((yy - cy) ** 2 + (xx - cx) ** 2 <= (0.15 * size) ** 2).astype(np.uint8)
    images = (rng.normal(0.3, 0.1, (n, size, size)) + 0.5 * masks).astype(np.float32)
    return {"images": images, "masks": masks, "groups": np.arange(n)}


def changed(**changes: Callable[[Arrays], np.ndarray] | None) -> Callable[[], Arrays]:
    """good_arrays() with each named key replaced by fn(arrays), or dropped for None."""

    def build() -> Arrays:
        arrays = good_arrays()
        for key, fn in changes.items():
            if fn is None:
                del arrays[key]
            else:
                arrays[key] = fn(arrays)
        return arrays

    return build


def poked(x: np.ndarray, index: tuple, value: float) -> np.ndarray:
    x = x.copy()
    x[index] = value
    return x


def data_case(name, build, expected, *overrides):
    """A crafted .npz: ``build`` returns its arrays, or is 'missing' / 'garbage'."""
    return case(name, expected, *overrides, build=build)


def case(name, expected, *overrides, build=None, env=None):
    return pytest.param(build, overrides, expected, env or {}, id=name)


CASES = [
    # --- the data file
    data_case(
        "images_wrong_rank",
        changed(images=lambda a: a["images"][:, :, :, None, None, None]),
        [DATA, "'images' has shape (40, 32, 32, 1, 1, 1)"],
    ),
    data_case(
        "images_not_divisible_by_2_pow_depth",
        lambda: good_arrays(size=30),
        ["image size 30x30 is not divisible by 2^depth=4"],
        "--config.data.image_size=0",
    ),
    data_case(
        "images_too_small",
        lambda: good_arrays(size=2),
        ["image size 2x2 is not divisible by 2^depth=4"],
        "--config.data.image_size=0",
    ),
    data_case(
        "nan_pixels",
        changed(images=lambda a: poked(a["images"], (3, 5, 5), np.nan)),
        [DATA, "'images' contains NaN"],
    ),
    data_case(
        "inf_pixels",
        changed(images=lambda a: poked(a["images"], (7, 0, 0), np.inf)),
        [DATA, "'images' contains NaN or inf"],
    ),
    data_case(
        "masks_not_binary",
        changed(masks=lambda a: a["masks"] * 255),
        [DATA, "'masks' must hold only 0 and 1, found [  0 255]"],
    ),
    data_case(
        "masks_other_shape_than_images",
        changed(masks=lambda a: a["masks"][:, :16, :16]),
        [DATA, "'images' (40, 32, 32, 1) and 'masks' (40, 16, 16, 1) differ"],
    ),
    data_case(
        "masks_other_count_than_images",
        changed(masks=lambda a: a["masks"][:30]),
        [DATA, "'images' (40, 32, 32, 1) and 'masks' (30, 32, 32, 1) differ in N"],
    ),
    data_case(
        "empty_dataset",
        changed(images=lambda a: a["images"][:0], masks=lambda a: a["masks"][:0], groups=None),
        [DATA, "'images' has shape (0, 32, 32, 1); it holds no examples"],
    ),
    data_case("missing_images_key", changed(images=None), [DATA, "missing required key 'images'"]),
    data_case("missing_data_file", "missing", [DATA, "no such file"]),
    data_case("garbage_data_file", "garbage", [DATA, "cannot read as .npz"]),
    data_case(
        "image_size_not_a_divisor",
        good_arrays,
        [DATA, "cannot downsample 32x32 to size 24"],
        "--config.data.image_size=24",
    ),
    # --- protocol
    case(
        "budget_larger_than_training_fold",
        ["budget of 1000 labels exceeds the training fold of 20 examples", "protocol.budgets"],
        "--config.protocol.budgets=(1000,)",
    ),
    case(
        "more_folds_than_groups",
        ["k=100 folds but only 40 distinct groups", "protocol.folds"],
        "--config.protocol.folds=100",
    ),
    # --- config flags and arms
    case("unknown_config_key", ["no such config key 'stepz'"], "--config.stages.segment.stepz=3"),
    case(
        "override_of_wrong_type",
        ["--config.stages.segment.steps=abc", "int"],
        "--config.stages.segment.steps=abc",
    ),
    case(
        "arm_with_unknown_stage",
        ["arms.scratch='nope' names unknown stages"],
        "--config.arms.scratch=nope",
    ),
    # --- stage chaining and transfer
    case(
        "init_from_not_an_earlier_stage",
        ["stages.segment.init_from.stage='scratch' is not an earlier stage"],
        "--config.stages.segment.init_from.stage=scratch",
    ),
    case(
        "init_from_subtree_missing_in_checkpoint",
        ["init_from.subtrees='decoder'", "missing"],
        "--config.stages.segment.init_from.subtrees=decoder",
    ),
    case(
        "init_from_subtrees_matching_nothing",
        ["segment", "init_from.subtrees='nothing' matches nothing"],
        "--config.stages.segment.init_from.subtrees=nothing",
    ),
    # --- devices, freezing, optimisation
    case(
        "batch_not_divisible_by_devices",
        ["batch_size=3 is not divisible by the 2 devices"],
        "--config.stages.localize.batch_size=3",  # localize is the first run
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    ),
    case(
        "freeze_plan_leaves_parameters_unmatched",
        ["segment", "freeze plan leaves 24 parameters unmatched"],
        "--config.stages.segment.freeze=encoder/=frozen",
    ),
    case(
        "unknown_freeze_preset",
        ["segment", "freeze preset 'bogus' is unknown"],
        "--config.stages.segment.freeze=bogus",
    ),
    case(
        "unknown_optimizer",
        ["segment", "optimizer.name='sgdx' is unknown"],
        "--config.stages.segment.optimizer.name=sgdx",
    ),
    case(
        "unknown_loss",
        ["segment", "loss 'bogus' is unknown"],
        "--config.stages.segment.loss=bogus",
    ),
    case(
        "unknown_task",
        ["segment", "task 'bogus' is unknown"],
        "--config.stages.segment.task=bogus",
    ),
    case(
        "non_positive_steps",
        ["segment", "steps=0"],
        "--config.stages.segment.steps=0",
    ),
    case(
        "unknown_preprocess_step",
        ["unknown preprocessing step 'sharpen'"],
        "--config.data.preprocess=sharpen",
    ),
    case(
        "val_fraction_out_of_range",
        ["scratch", "val_fraction", "1.5"],
        "--config.stages.scratch.val_fraction=1.5",
    ),
    # --- config and command line (issue 18): overrides of the tiny study here, config
    # arguments, config files and workdirs in test_bad_command_line_is_one_clear_error_line
    case(
        "data_path_with_a_generator_source",
        ["data.path='/no/such.npz'", "data.source='fundus'", "built-in generator"],
        "--config.data.path=/no/such.npz",
    ),
    case(
        "file_source_without_data_path",
        ["data.source='npz' reads a file: give data.path"],
        "--config.data.source=npz",
    ),
    case("budget_zero", ["protocol.budgets=(0,) holds 0"], "--config.protocol.budgets=(0,)"),
    case(
        "budget_fraction_above_one",
        ["protocol.budgets=(1.5,) holds 1.5"],
        "--config.protocol.budgets=(1.5,)",
    ),
    case("budget_twice", ["protocol.budgets=(4, 4) repeats 4"], "--config.protocol.budgets=(4,4)"),
    case("seed_twice", ["protocol.seeds=(0, 0) repeats 0"], "--config.protocol.seeds=(0,0)"),
    case("one_fold", ["protocol.folds=1 must be an int >= 2"], "--config.protocol.folds=1"),
    case(
        "negative_learning_rate",
        ["segment", "optimizer.learning_rate=-1.0 must be finite and > 0"],
        "--config.stages.segment.optimizer.learning_rate=-1",
    ),
    case(
        "nan_learning_rate",
        ["scratch", "optimizer.learning_rate=nan"],
        "--config.stages.scratch.optimizer.learning_rate=nan",
    ),
    case(
        "negative_warmup",
        ["localize", "optimizer.warmup_steps=-1 must be >= 0"],
        "--config.stages.localize.optimizer.warmup_steps=-1",
    ),
]

RAISING = "def get_config(arg):\n    return {}[arg]\n"  # a config file with a bug: KeyError
DEMO_WORDS = "accepted: tiny, controls, busi, data=PATH"
STUDY_WORDS = "accepted: scale=ci|cpu|paper, busi, data=PATH"


def cli_case(name, expected, config="configs/demo.py:tiny", workdir="work", **kw):
    """``config``: a path in the repo, or 'raising' (RAISING); ``workdir``: a path under the test's
    tmp dir ('file': a file there, 'readonly': a read-only directory; '' stays empty)."""
    return pytest.param(config, workdir, expected, id=name, **kw)


CLI_CASES = [
    cli_case(
        "misspelt_data_word",
        ["unknown config argument(s) 'scale=ci', 'dta=FILE'", DEMO_WORDS],
        "configs/demo.py:scale=ci,dta=FILE",
    ),
    cli_case(
        "misspelt_busi_in_a_study",
        ["unknown config argument(s) 'bsui'", STUDY_WORDS],
        "configs/studies/localization_transfer.py:scale=cpu,bsui",
    ),
    cli_case(
        "unknown_scale",
        ["config argument scale='huge' is not one of ci|cpu|paper"],
        "configs/studies/siamese.py:scale=huge",
    ),
    cli_case(
        "switch_given_a_value", ["'tiny=1' must read 'tiny'", DEMO_WORDS], "configs/demo.py:tiny=1"
    ),
    cli_case(
        "missing_config_file", ["no such config file", "/configs/nope.py'"], "configs/nope.py"
    ),
    cli_case("config_file_that_raises", ["KeyError: 'tiny'"], "raising:tiny"),
    cli_case(
        "config_file_refusing_its_argument",
        ["give structures=A+B[+...]"],
        "configs/studies/weight_distances.py:scale=ci,structures=benign",
    ),
    cli_case("empty_workdir", ["--workdir is empty"], workdir=""),
    cli_case("workdir_is_a_file", ["--workdir=", "is a file, not a directory"], workdir="file"),
    cli_case("workdir_under_a_file", ["--workdir=", "lies under a file"], workdir="file/work"),
    cli_case(
        "readonly_workdir",
        ["--workdir=", "Permission denied"],
        workdir="readonly",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders"),
    ),
]


@pytest.mark.parametrize(("config", "workdir", "expected"), CLI_CASES)
def test_bad_command_line_is_one_clear_error_line(tmp_path, config, workdir, expected):
    """Run from an empty folder, which must stay empty (an empty --workdir= would write there)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "readonly").mkdir(mode=0o555)
    if config.startswith("raising"):
        (tmp_path / "raising.py").write_text(RAISING)
        config = config.replace("raising", str(tmp_path / "raising.py"))
    else:
        config = f"{REPO}/{config}"
    target = str(tmp_path / workdir) if workdir else ""
    proc = run_main([f"--config={config}", f"--workdir={target}"], cwd, {})
    assert_one_error_line(proc, expected)
    assert not list(cwd.iterdir())
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(written) == sorted([tmp_path / "file", *tmp_path.glob("raising.py")])


def run_main(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m jaxseg.main ARGS`` on the CPU, from ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "jaxseg.main", *args],
        cwd=cwd,
        env=subprocess_env(JAX_PLATFORMS="cpu", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, expected: list[str]) -> None:
    """A non-zero exit whose stderr ends in one ``error:`` line holding every ``expected``
    text, and no traceback."""
    stderr = proc.stderr
    assert proc.returncode != 0, proc.stdout[-2000:] + stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr[-3000:]
    # One line: a message continued over several lines ends in a line without the prefix.
    assert sum(line.startswith("error: ") for line in lines) == 1, stderr[-3000:]
    for text in expected:
        assert text in lines[-1], f"{text!r} not in {lines[-1]!r}"


@pytest.mark.parametrize(("build", "overrides", "expected", "env"), CASES)
def test_bad_input_is_one_clear_error_line(tmp_path, build, overrides, expected, env):
    config = "configs/demo.py:tiny"
    path = tmp_path / "bad.npz"
    if build is not None:
        if build == "garbage":
            path.write_bytes(b"PK\x03\x04 not a zip archive \x00\xff" * 8)
        elif build != "missing":
            np.savez(path, **build())
        config += f",data={path}"
    workdir = tmp_path / "work"
    proc = run_main([f"--config={config}", f"--workdir={workdir}", *overrides], REPO, env)
    assert_one_error_line(proc, [str(path) if text == DATA else text for text in expected])
    partial = sorted(
        str(p.relative_to(workdir))
        for pattern in ("results.csv", "report.md", "result.json")
        for p in workdir.rglob(pattern)
    )
    assert not partial, f"partial results written before the error: {partial}"


# --- data import / inspect (issue 18)
# `python -m jaxseg.data import|inspect` (run in-process through its `main`): one `error:` line
# and exit 1 for unusable input, one `warning:` line per kind of doubtful input, and nothing the
# user owns written, moved or deleted.


def _data_cli(capsys, *argv: str) -> tuple[int, str, list[str]]:
    """(exit status, stdout, non-empty stderr lines) of `python -m jaxseg.data ARGV`."""
    from jaxseg.data import __main__ as data_cli

    code = data_cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _tree(path) -> dict[str, bytes | str]:
    """Every file (bytes), folder ('dir') and link ('-> target') under `path`, by relative path."""
    import os

    found: dict[str, bytes | str] = {}
    for root, dirs, names in os.walk(path):
        for name in dirs + names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                found[rel] = "-> " + os.readlink(full)
            elif os.path.isdir(full):
                found[rel] = "dir"
            else:
                with open(full, "rb") as f:
                    found[rel] = f.read()
    return found


def _one_error(code: int, err: list[str], *expected: str) -> None:
    assert code == 1, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for text in expected:
        assert text in err[0], f"{text!r} not in {err[0]!r}"


def _image_folders(tmp_path) -> tuple[str, str]:
    from test_data_import import _folders

    return _folders(tmp_path / "in")


def test_import_overwrite_refuses_a_users_folder(tmp_path, capsys):
    images, masks = _image_folders(tmp_path)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("four years of work")
    (out / "sub" / "data.csv").write_text("a,b\n1,2\n")
    before = _tree(tmp_path)
    code, _, err = _data_cli(capsys, "import", images, masks, str(out), "--overwrite")
    _one_error(code, err, str(out), "without jaxseg's jaxseg_import.json", "nothing was touched")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["folder_named_npz", "foreign_npz", "symlink", "file_as_tfds"])
def test_import_overwrite_refuses_what_jaxseg_did_not_write(tmp_path, capsys, kind):
    images, masks = _image_folders(tmp_path)
    own = tmp_path / "own.npz"
    assert _data_cli(capsys, "import", images, masks, str(own))[0] == 0
    out, why = {
        "folder_named_npz": (tmp_path / "x.npz", "is a folder, not an .npz file"),
        "foreign_npz": (tmp_path / "theirs.npz", "is an .npz without jaxseg's 'jaxseg_import' key"),
        "symlink": (tmp_path / "link.npz", "is a symbolic link"),
        "file_as_tfds": (tmp_path / "notes", "is a file, not a dataset folder"),
    }[kind]
    if kind == "folder_named_npz":
        out.mkdir()
        (out / "keep.txt").write_text("keep")
    elif kind == "foreign_npz":
        np.savez(out, **good_arrays(n=2, size=8))
    elif kind == "symlink":
        out.symlink_to(own)  # even a link to an import: the link is not what jaxseg wrote
    else:
        out.write_text("notes")
    before = _tree(tmp_path)
    code, _, err = _data_cli(capsys, "import", images, masks, str(out), "--overwrite")
    _one_error(code, err, str(out), why, "nothing was touched")
    assert _tree(tmp_path) == before


def test_import_overwrite_replaces_its_own_outputs(tmp_path, capsys):
    images, masks = _image_folders(tmp_path)
    for out in (tmp_path / "d.npz", tmp_path / "d_tfds"):
        assert _data_cli(capsys, "import", images, masks, str(out), "--size", "8")[0] == 0
        code, stdout, err = _data_cli(capsys, "import", images, masks, str(out), "--overwrite")
        assert code == 0 and not err and "wrote 3 examples of shape (16, 16, 1)" in stdout


def _pair(folder, stem: str, image: np.ndarray, mask: np.ndarray, mask_ext: str = ".png"):
    """Save image `stem`.png (.tif for float) and its mask `stem`_mask`mask_ext` in `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / f"{stem}{'.tif' if image.dtype.kind == 'f' else '.png'}")
    Image.fromarray(mask).save(folder / f"{stem}_mask{mask_ext}")


def _import_fails(tmp_path, capsys, images, masks, *expected: str) -> None:
    """The import is one error line naming `expected` and leaves everything as it was."""
    before = _tree(tmp_path)
    out = tmp_path / "out.npz"
    code, _, err = _data_cli(capsys, "import", str(images), str(masks), str(out))
    _one_error(code, err, *expected)
    assert _tree(tmp_path) == before


def _mask(value: int = 1, size: int = 8) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[2:5, 2:6] = value
    return m


def test_import_refuses_nan_pixels_naming_the_file(tmp_path, capsys):
    image = np.ones((8, 8), np.float32)
    _pair(tmp_path / "d", "ok", image, _mask())
    _pair(tmp_path / "d", "bad", poked(image, (3, 3), np.nan), _mask())
    bad = tmp_path / "d" / "bad.tif"
    _import_fails(tmp_path, capsys, tmp_path / "d", tmp_path / "d", f"{bad}: 1 NaN/inf pixels")


def test_import_refuses_jpeg_masks(tmp_path, capsys):
    _pair(tmp_path / "d", "a", np.full((8, 8), 90, np.uint8), _mask(255), mask_ext=".jpg")
    _import_fails(tmp_path, capsys, tmp_path / "d", tmp_path / "d", "a_mask.jpg: 1 mask file(s)",
                  "JPEG", "export the masks as PNG")  # fmt: skip


def test_import_refuses_mixed_bit_depths_naming_one_file_of_each(tmp_path, capsys):
    _pair(tmp_path / "d", "a8", np.full((8, 8), 90, np.uint8), _mask())
    _pair(tmp_path / "d", "b16", np.full((8, 8), 40000, np.uint16), _mask())
    d = tmp_path / "d"
    _import_fails(tmp_path, capsys, d, d, f"uint8 ({d / 'a8.png'}), uint16 ({d / 'b16.png'})",
                  "convert them to one bit depth")  # fmt: skip


def test_import_refuses_rgb_masks_whose_channels_differ(tmp_path, capsys):
    mask = np.stack([_mask(), _mask(), np.zeros((8, 8), np.uint8)], axis=-1)
    _pair(tmp_path / "d", "a", np.full((8, 8), 90, np.uint8), mask)
    d = tmp_path / "d"
    _import_fails(tmp_path, capsys, d, d, f"{d / 'a_mask.png'}: mask has colour channels that")


def test_import_reads_a_grey_mask_saved_as_rgb_as_one_channel(tmp_path, capsys):
    _pair(tmp_path / "d", "a", np.full((8, 8), 90, np.uint8), np.repeat(_mask()[..., None], 3, -1))
    out, d = tmp_path / "out.npz", str(tmp_path / "d")
    code, _, err = _data_cli(capsys, "import", d, d, str(out))
    assert code == 0 and not err
    np.testing.assert_array_equal(np.load(out)["masks"], _mask()[None])  # [N,H,W]: K = 1


def test_import_warns_once_about_binary_masks_with_more_values(tmp_path, capsys):
    three = _mask()
    three[5:7, 2:4] = 2
    for stem in ("a", "b"):
        _pair(tmp_path / "d", stem, np.full((8, 8), 90, np.uint8), three)
    _pair(tmp_path / "d", "c", np.full((8, 8), 90, np.uint8), _mask(255))  # 0/255: binary, fine
    out, d = tmp_path / "out.npz", tmp_path / "d"
    code, stdout, err = _data_cli(capsys, "import", str(d), str(d), str(out))
    assert code == 0 and "wrote 3 examples" in stdout
    assert err == [
        "warning: 2 mask file(s) expected binary hold more than two values; every nonzero value "
        "became foreground (pass --mask-classes to keep classes apart); first: "
        f"{d / 'a_mask.png'} [0, 1, 2]"
    ]
    np.testing.assert_array_equal(np.load(out)["masks"][0], three > 0)


def test_import_understands_busi_images_beside_their_masks(tmp_path, capsys):
    """BUSI: `benign (1).png`, `benign (1)_mask.png` and `benign (1)_mask_1.png` in one folder."""
    d = tmp_path / "benign"
    _pair(d, "benign (1)", np.full((8, 8), 90, np.uint8), _mask())
    second = np.zeros((8, 8), np.uint8)
    second[6, 6] = 255
    from PIL import Image

    Image.fromarray(second).save(d / "benign (1)_mask_1.png")
    _pair(d, "benign (2)", np.full((8, 8), 30, np.uint8), _mask())
    out = tmp_path / "busi.npz"
    code, _, err = _data_cli(capsys, "import", str(d), str(d), str(out))
    assert code == 0 and not err
    raw = np.load(out)
    np.testing.assert_array_equal(raw["ids"], ["benign (1)", "benign (2)"])
    np.testing.assert_array_equal(raw["n_mask_files"], [2, 1])
    assert raw["masks"][0].sum() == _mask().sum() + 1
    # The same folder given as IMAGES with another MASKS folder: one line saying how to call it.
    (tmp_path / "masks").mkdir()
    _import_fails(tmp_path, capsys, d, tmp_path / "masks", "3 files look like masks of its images",
                  "pass that folder as both IMAGES and MASKS")  # fmt: skip


def _inspect_fails(tmp_path, capsys, arrays: Arrays, *expected: str) -> None:
    """`inspect` of an .npz holding `arrays`: one error line, exit 1, no sheet or other file."""
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    before = _tree(tmp_path)
    code, _, err = _data_cli(capsys, "inspect", str(path))
    _one_error(code, err, str(path), *expected)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(masks=lambda a: a["masks"] * 255), "'masks' must hold only 0 and 1, found [  0 255]"),
        (dict(masks=lambda a: poked(a["masks"], (0, 0, 0), 2)), "found [0 1 2]"),
        (dict(images=lambda a: poked(a["images"], (1, 2, 3), np.nan)), "'images' contains NaN"),
        (dict(labels=lambda a: np.arange(len(a["images"]))), "'labels' span [0, 3] but"),
        (dict(masks=lambda a: a["masks"][:3]), "and 'masks' (3, 8, 8, 1) differ in N"),
    ],
    ids=["masks_0_255", "masks_3_values", "nan_images", "bad_labels", "fewer_masks"],
)
def test_inspect_refuses_what_training_refuses(tmp_path, capsys, change, expected):
    arrays = good_arrays(n=4, size=8)
    arrays["label_names"] = np.array(["a", "b"])
    arrays["labels"] = np.array([0, 1, 0, 1])
    for key, fn in change.items():
        arrays[key] = fn(arrays)
    _inspect_fails(tmp_path, capsys, arrays, expected)


def test_inspect_reads_a_grey_mask_saved_as_rgb_as_one_channel(tmp_path, capsys):
    arrays = good_arrays(n=4, size=8)
    arrays["masks"] = np.repeat(arrays["masks"][..., None], 3, axis=-1)
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    code, stdout, err = _data_cli(capsys, "inspect", str(path), "--sheet", "")
    assert code == 0 and not err
    fraction = arrays["masks"][..., 0].mean()
    assert f"foreground fraction per mask channel: {fraction:.4f}\n" in stdout


def test_inspect_with_an_unwritable_sheet_is_one_error_after_the_summary(tmp_path, capsys):
    import os

    arrays = good_arrays(n=4, size=8)
    ro = tmp_path / "ro"
    ro.mkdir()
    path = ro / "d.npz"
    np.savez(path, **arrays)
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root writes anyway: block the sheet's path with a folder
            ro.chmod(0o755)
            (ro / "d.npz.sheet.png").mkdir()
        before = _tree(tmp_path)
        code, stdout, err = _data_cli(capsys, "inspect", str(path))
        assert _tree(tmp_path) == before
    finally:
        ro.chmod(0o755)
    _one_error(code, err, f"{path}.sheet.png: cannot write the contact sheet", "--sheet ''")
    assert "4 examples of shape (8, 8, 1)" in stdout


# --- the study workdir (issue 18)


def test_a_folder_of_other_files_is_refused_as_workdir_and_left_as_it_was(tmp_path):
    workdir = tmp_path / "mine"
    (workdir / "sub").mkdir(parents=True)
    (workdir / "thesis.txt").write_text("years of work")
    (workdir / "sub" / "data.csv").write_text("a,b\n")
    before = _tree(workdir)
    proc = run_main(["--config=configs/demo.py:tiny", f"--workdir={workdir}"], REPO, {})
    assert_one_error_line(
        proc, [f"--workdir={workdir} is not empty (sub, thesis.txt)", "holds no jaxseg study"]
    )
    assert _tree(workdir) == before


def test_a_truncated_result_json_is_one_error_naming_it(tmp_path, tiny_study):
    workdir = tmp_path / "study"
    run = workdir / "fold_0" / "seed_0" / "localize"
    run.mkdir(parents=True)
    (workdir / "study_config.json").write_text(
        tiny_study.to_json_best_effort(sort_keys=True, indent=1)
    )
    (run / "result.json").write_text('{"stage": "localize", "metr')
    proc = run_main(["--config=configs/demo.py:tiny", f"--workdir={workdir}"], REPO, {})
    assert_one_error_line(proc, [f"{run / 'result.json'} is not valid JSON", "restore or delete"])
