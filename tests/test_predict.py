"""``jaxseg predict`` / ``export`` end to end on tiny runs of the demo (32² windows, depth-2
U-Net): non-square images come back as masks of their own sizes, large inputs go through
sliding windows, TTA and fold ensembles average as documented, and the exported artefact
reproduces predict's probabilities in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, subprocess_env
from PIL import Image

from jaxseg.infer import cli, runs
from jaxseg.infer import predict as predict_lib
from jaxseg.infer.export import export
from jaxseg.infer.io import read_inputs
from jaxseg.train import rundir
from jaxseg.train.loop import train_and_evaluate


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_study, tiny_fundus):
    """Two finished scratch runs of the tiny demo (folds 0 and 1) and a study_config.json."""
    from conftest import make_run

    root = tmp_path_factory.mktemp("predict")
    dirs = []
    for fold in (0, 1):
        run = make_run(tiny_study, root, "scratch", fold=fold)
        train_and_evaluate(run.config, run.workdir, tiny_fundus)
        dirs.append(run.workdir)
    (root / "study_config.json").write_text(tiny_study.to_json_best_effort(sort_keys=True))
    return dict(root=root, dirs=dirs, images=tiny_fundus.arrays["image"])


def png_folder(folder, images: dict[str, np.ndarray]) -> str:
    folder.mkdir()
    for name, x in images.items():
        Image.fromarray(x).save(folder / f"{name}.png")
    return str(folder)


def grey(shape, seed=0) -> np.ndarray:
    """A uint8 image with a bright disc, like the fundus generator's."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 3) ** 2 < (min(shape) / 6) ** 2
    noise = np.random.default_rng(seed).normal(60, 10, shape)
    return np.clip(noise + 120 * disc, 0, 255).astype(np.uint8)


def test_non_square_pngs_come_back_as_masks_of_their_own_sizes(trained, tmp_path):
    sizes = {"wide": (90, 120), "tall": (120, 90), "small": (20, 30)}
    src = png_folder(tmp_path / "in", {k: grey(s) for k, s in sizes.items()})
    out = tmp_path / "out"
    code = cli.predict(["--from", trained["dirs"][0], "--input", src, "--output", str(out),
                        "--probabilities"])  # fmt: skip
    assert code == 0
    for name, shape in sizes.items():
        mask = np.asarray(Image.open(out / f"{name}_mask.png"))
        assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}
        prob = np.asarray(Image.open(out / f"{name}_prob.tif"))
        assert prob.shape == shape and prob.min() >= 0 and prob.max() <= 1
        np.testing.assert_array_equal(mask == 255, prob >= 0.5)
    again = cli.predict(["--from", trained["dirs"][0], "--input", src, "--output", str(out)])
    assert again == 1  # nothing is overwritten


def test_an_input_four_times_the_window_goes_through_sliding_windows(trained):
    networks = runs.load(trained["dirs"][:1])
    steps = predict_lib.run_pipeline(networks.config)
    image = predict_lib.standardize(grey((128, 128))[..., None], steps, 1)
    calls = []
    predict = networks.probabilities()

    def counting(batch):
        calls.append(batch.shape)
        return predict(batch)

    options = predict_lib.Options(overlap=0.5, batch_size=4)
    probs = predict_lib.probabilities(image, counting, networks, options)
    assert probs.shape == (128, 128, 1)
    assert calls and all(c == (4, 32, 32, 1) for c in calls)
    assert len(calls) == -(-(7 * 7) // 4)  # 7 windows per axis at stride 16, 4 per call
    # one window when the image fits: the same as the network on the padded image
    small = image[:32, :32]
    np.testing.assert_allclose(
        predict_lib.probabilities(small, predict, networks, options),
        np.asarray(predict(small[None]))[0],
        atol=1e-6,
    )


def test_tta_is_the_mean_over_flips(trained):
    networks = runs.load(trained["dirs"][:1])
    predict = networks.probabilities()
    x = trained["images"][:1]
    flips = [(), (1,), (2,), (1, 2)]
    by_hand = np.mean(
        [np.flip(np.asarray(predict(np.flip(x, f))), f) if f else np.asarray(predict(x))
         for f in flips], axis=0
    )  # fmt: skip
    with_tta = predict_lib.probabilities(x[0], predict, networks, predict_lib.Options(tta=True))
    np.testing.assert_allclose(with_tta, by_hand[0], atol=1e-5)
    plain = predict_lib.probabilities(x[0], predict, networks, predict_lib.Options())
    assert np.abs(with_tta - plain).max() > 1e-4  # a tiny net is not flip-invariant


def test_a_study_arm_is_a_fold_ensemble_averaging_probabilities(trained):
    dirs = runs.resolve(str(trained["root"]), arm="scratch", budget="4")
    assert dirs == trained["dirs"]
    both = runs.load(dirs).probabilities()
    one, two = (runs.load([d]).probabilities() for d in dirs)
    x = trained["images"][:2]
    mean = (np.asarray(one(x)) + np.asarray(two(x))) / 2
    np.testing.assert_allclose(np.asarray(both(x)), mean, atol=1e-6)
    assert np.abs(np.asarray(one(x)) - np.asarray(two(x))).max() > 1e-3
    with pytest.raises(ValueError, match="name the arm and budget"):
        runs.resolve(str(trained["root"]))
    with pytest.raises(ValueError, match="--arm='nope' is not an arm"):
        runs.resolve(str(trained["root"]), arm="nope", budget="4")


def test_the_exported_artefact_reproduces_predict_in_a_fresh_process(trained, tmp_path):
    src = png_folder(tmp_path / "in", {"wide": grey((90, 120), seed=3)})
    out = tmp_path / "export"
    export(trained["dirs"][0], str(out))
    assert json.loads((out / "predict.json").read_text())["window"] == [32, 32]
    networks = runs.load(trained["dirs"][:1])
    item = read_inputs(src)[0]
    _, (expected,) = predict_lib.predict_inputs(networks, [item], predict_lib.Options())
    code = (
        "import sys, numpy as np\n"
        "from PIL import Image\n"
        "from jaxseg.infer.export import load_exported\n"
        "x = np.asarray(Image.open(sys.argv[2]))[..., None]\n"
        "np.save(sys.argv[3], load_exported(sys.argv[1]).probabilities(x)[..., 0])\n"
    )
    result = tmp_path / "p.npy"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out), f"{src}/wide.png", str(result)],
        cwd=tmp_path, env=subprocess_env(JAX_PLATFORMS="cpu"), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(result), expected, atol=1e-5)
    with pytest.raises(ValueError, match="exists"):
        export(trained["dirs"][0], str(out))


@pytest.mark.parametrize("verb", ["predict", "export"])
def test_help_names_the_flags(verb):
    proc = subprocess.run(
        [sys.executable, "-m", "jaxseg", verb, "--help"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--from", "--output", "--window", "--overlap", "--threshold"):
        assert flag in proc.stdout
    assert ("--tta" in proc.stdout) == (verb == "predict")


def test_bad_runs_are_one_error_line(trained, tmp_path, capsys):
    assert cli.predict(["--from", str(tmp_path), "--input", str(tmp_path), "--output", "o"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --from=") and "neither a run" in err[0]


def test_nifti_volumes_of_mixed_orientations_come_back_in_their_own_geometry(tmp_path):
    """A tiny 3-D dense net (method 4's, the siamese study at scale=ci: 16³ windows) segments
    two NIfTI volumes larger than its window, stored in different orientations with
    non-identity affines: each label volume has its input's shape and affine, and the same
    anatomy gets the same labels in both."""
    import nibabel as nib
    from conftest import make_run

    from configs.studies import siamese
    from jaxseg import data

    study = siamese.get_config("scale=ci")
    run = make_run(study, tmp_path / "study", "scratch")
    train_and_evaluate(run.config, run.workdir, data.load(study.data))
    rng = np.random.default_rng(0)
    volume = rng.normal(0, 50, (24, 20, 28)).astype(np.float32)  # voxel axes i, j, k
    volume[8:16, 6:14, 10:20] += 300  # a bright block
    ras = np.diag([0.8, 0.9, 1.1, 1.0])
    ras[:3, 3] = (-10, 5, 30)
    # LPS: the same anatomy with voxel axes i and j reversed
    to_ras_voxel = np.array([[-1, 0, 0, 23], [0, -1, 0, 19], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    lps = ras @ to_ras_voxel
    assert "".join(nib.aff2axcodes(lps)) == "LPS"
    src = tmp_path / "nifti"
    src.mkdir()
    nib.save(nib.Nifti1Image(volume, ras), src / "a_ras.nii.gz")
    nib.save(nib.Nifti1Image(volume[::-1, ::-1].copy(), lps), src / "b_lps.nii.gz")
    out = tmp_path / "out"
    assert cli.predict(["--from", run.workdir, "--input", str(src), "--output", str(out)]) == 0
    labels = {}
    for name, affine in (("a_ras", ras), ("b_lps", lps)):
        written = nib.load(out / f"{name}_mask.nii.gz")
        assert written.shape == (24, 20, 28)
        np.testing.assert_allclose(written.affine, affine, atol=1e-5)
        labels[name] = np.asarray(written.dataobj)
    # back in RAS voxel order, both files hold the same labels for the same anatomy
    np.testing.assert_array_equal(labels["a_ras"], labels["b_lps"][::-1, ::-1])


def test_resize_places_images_on_the_training_grid_and_maps_masks_back(trained, tmp_path):
    """--resize pad: a 60×80 image is padded to 80², resized to the 32² window (as the import
    does), predicted there and mapped back to 60×80."""
    from jaxseg.data.importer.placement import place, placement, unplace

    image = grey((60, 80), seed=5)
    src = png_folder(tmp_path / "in", {"x": image})
    out = tmp_path / "out"
    argv = ["--from", trained["dirs"][0], "--input", src, "--output", str(out)]
    assert cli.predict([*argv, "--resize", "pad", "--probabilities"]) == 0
    prob = np.asarray(Image.open(out / "x_prob.tif"))
    assert prob.shape == (60, 80)
    networks = runs.load(trained["dirs"][:1])
    where = placement((60, 80), "pad", 32, ())
    assert where.scale == 32 / 80
    placed = place(image[..., None].astype(np.float32), where, is_mask=False)
    x = predict_lib.standardize(placed, predict_lib.run_pipeline(networks.config), 1)
    grid = np.asarray(networks.probabilities()(x[None]))[0]
    np.testing.assert_allclose(prob, unplace(grid, where, (60, 80), order=1)[..., 0], atol=1e-5)


def test_held_out_masks_come_back_at_the_original_image_sizes(tiny_study, tmp_path):
    """A study on imported non-square PNGs (padded to squares, resized to 32²): --held-out
    predicts each example with the fold model that did not train on it and writes its mask at
    the example's original size, mapped back through the stored placement."""
    from conftest import make_run

    from jaxseg import data
    from jaxseg.data.importer import import_folders
    from jaxseg.infer import held_out

    sizes = [(40, 56), (56, 40), (48, 48), (36, 60)] * 3
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for k, shape in enumerate(sizes):
        x = grey(shape, seed=k)
        Image.fromarray(x).save(images / f"case{k}.png")
        Image.fromarray(((x > 150) * 255).astype(np.uint8)).save(masks / f"case{k}_mask.png")
    path = tmp_path / "data.npz"
    import_folders(str(images), str(masks), str(path), size=32)
    study = tiny_study.copy_and_resolve_references()
    study.data.update(source="npz", path=str(path), image_size=32)
    root = tmp_path / "study"
    dataset = data.load(study.data)
    for fold in (0, 1):
        run = make_run(study, root, "scratch", fold=fold)
        train_and_evaluate(run.config, run.workdir, dataset)
    (root / "study_config.json").write_text(study.to_json_best_effort(sort_keys=True))
    out = tmp_path / "held_out"
    argv = ["--from", str(root), "--arm", "scratch", "--budget", "4", "--output", str(out)]
    assert cli.predict([*argv, "--held-out", "--probabilities"]) == 0
    for k, shape in enumerate(sizes):
        assert np.asarray(Image.open(out / f"case{k}_mask.png")).shape == shape
    # case 0 by hand: its fold's model on the training grid, unplaced
    dirs = runs.study_runs(str(root), "scratch", "4")
    fold = next(d for d in dirs if 0 in rundir.read_result(d)["test_index"])
    grid = held_out.held_out_probabilities([fold], dataset, predict_lib.Options())[0]
    placements, _, factor = held_out.stored_layout(study.data, dataset)
    expected = held_out.back(grid, placements, 0, factor)[..., 0]
    prob = np.asarray(Image.open(out / "case0_prob.tif"))
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    with pytest.raises(SystemExit):  # --input and --held-out exclude each other
        cli.predict([*argv[:2], "--input", "x", "--held-out", "--output", "o"])


def test_held_out_volumes_go_back_to_their_files_grid_and_affine(tmp_path):
    """back() undoes the pad16 offsets and the --spacing resampling; target() writes the mask
    in the file's own orientation and affine (here LPS, so voxel order differs from RAS)."""
    import nibabel as nib

    from jaxseg.infer import held_out, io

    lps = np.diag([-2.0, -1.0, 0.5, 1.0])
    lps[:3, 3] = (40, 20, -5)
    placements = {
        "original_shapes": np.array([[10, 12, 14]]),  # after resampling, before placement
        "placement_offsets": np.array([[3, 2, 1]]),  # centred in the 16³ grid
        "placement_scales": np.array([1.0]),
        "file_shapes": np.array([[20, 12, 7]]),  # D, H, W of the RAS-oriented file grid
        "affines": lps[None],
    }
    grid = np.zeros((16, 16, 16, 1), np.float32)
    grid[3:13, 2:14, 1:15] = 0.9  # exactly the placed volume
    volume = held_out.back(grid, placements, 0, factor=1)
    assert volume.shape == (20, 12, 7, 1)
    np.testing.assert_allclose(volume, 0.9, atol=1e-6)  # nothing of the padding leaks in
    item = held_out.target(placements, "case", volume.shape[:-1], 0)
    (path,) = io.write_outputs([item], [(volume[..., 0] > 0.5).astype(np.uint8)], str(tmp_path))
    written = nib.load(path)
    np.testing.assert_allclose(written.affine, lps)
    assert written.shape == (7, 12, 20) and np.asarray(written.dataobj).all()
