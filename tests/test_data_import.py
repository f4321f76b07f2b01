"""Tests for jaxseg.data.importer (2-D folders + CSV -> .npz) and the `python -m jaxseg.data`
CLI; the result trains one tiny stage through configs/demo.py:data=PATH."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import make_run
from PIL import Image

from configs import demo
from jaxseg.data import __main__ as cli
from jaxseg.data import importer, npz
from jaxseg.data.importer.placement import place


def _save(path, array) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def _image(i: int, shape=(12, 16)) -> np.ndarray:
    return ((np.arange(shape[0] * shape[1]).reshape(shape) * (i + 3)) % 251).astype(np.uint8)


def _folders(tmp_path, n: int = 3, shape=(12, 16)):
    """Images c0..c{n-1} (12x16 uint8) and masks: c{i}_mask.png = rows 2-4, cols 3+i..7 (255);
    c0 also has c0_mask_2.png = rows 9-10, cols 12-13."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    for i in range(n):
        _save(images / f"c{i}.png", _image(i, shape))
        m = np.zeros(shape, np.uint8)
        m[2:5, 3 + i : 8] = 255
        _save(masks / f"c{i}_mask.png", m)
    extra = np.zeros(shape, np.uint8)
    extra[9:11, 12:14] = 255
    _save(masks / "c0_mask_2.png", extra)
    return str(images), str(masks)


def test_pad_policy_writes_busi_layout_and_derives_geometry(tmp_path, capsys):
    images, masks = _folders(tmp_path)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    out = str(tmp_path / "out.npz")
    report = importer.import_folders(images, masks, out)
    assert report.count == 3 and report.image_shape == (16, 16, 1)
    assert any("centres from the masks" in s for s in report.derived)
    assert any("notes.txt" in s for s in report.skipped)
    assert "wrote 3 examples" in capsys.readouterr().out
    raw = np.load(out)
    assert raw["images"].dtype == np.uint8 and raw["images"].shape == (3, 16, 16)
    np.testing.assert_array_equal(raw["images"][1, 2:14], _image(1))  # centred: 2 rows on top
    np.testing.assert_array_equal(raw["images"][1, :2], 0)
    np.testing.assert_array_equal(raw["ids"], ["c0", "c1", "c2"])
    np.testing.assert_array_equal(raw["n_mask_files"], [2, 1, 1])
    assert "centers" not in raw.files and "boxes" not in raw.files
    a = npz.load(out).arrays
    # c1: rows 2-4 -> 4-6 after padding, cols 4-7: box (4, 4, 7, 6), centre (5.5, 5).
    np.testing.assert_array_equal(a["box"][1], [4, 4, 7, 6])
    np.testing.assert_allclose(a["center"][1], [5.5, 5.0])
    # c0: two masks OR-merged: 15 + 4 pixels; box spans both.
    m0 = a["mask"][0, ..., 0]
    assert m0.sum() == 15 + 4 and m0[11:13, 12:14].all()
    np.testing.assert_array_equal(a["box"][0], [3, 4, 13, 12])
    np.testing.assert_array_equal(a["group"], [0, 1, 2])


def test_csv_geometry_labels_groups_through_resize(tmp_path):
    images, masks = _folders(tmp_path)
    csv = tmp_path / "a.csv"
    csv.write_text(
        "id,x,y,x0,y0,x1,y1,class,group\n"
        "c0.png,5,3,3,2,7,4,benign,p1\nc1,5,3,4,2,7,4,malignant,p1\nc2,6,3,5,2,7,4,benign,p2\n"
    )
    out = str(tmp_path / "out.npz")
    report = importer.import_folders(images, masks, out, csv_files=[str(csv)], size=8)
    assert report.class_names == ("benign", "malignant")
    raw = np.load(out)
    # 12x16 padded to 16x16 (top 2) then halved: x' = (x + 0.5) / 2 - 0.5, y' = (y + 2.5) / 2 - 0.5
    np.testing.assert_allclose(raw["centers"][0], [2.25, 2.25])
    # box: floor((p + off) / 2) .. ceil((p + off + 1) / 2) - 1
    np.testing.assert_array_equal(raw["boxes"][0], [1, 2, 3, 3])
    np.testing.assert_array_equal(raw["labels"], [0, 1, 0])
    a = npz.load(out).arrays
    np.testing.assert_array_equal(a["group"], [0, 0, 1])
    np.testing.assert_array_equal(a["label"], [0, 1, 0])
    np.testing.assert_allclose(a["center"][0], [2.25, 2.25])
    # masks: area-averaged and thresholded: c1 rows 4-6 / cols 4-7 -> rows 2-3 (half), cols 2-3
    np.testing.assert_array_equal(np.argwhere(raw["masks"][1])[[0, -1]], [[2, 2], [3, 3]])


def test_crop_and_pad16_policies(tmp_path):
    images, masks = _folders(tmp_path)
    out = str(tmp_path / "crop.npz")
    importer.import_folders(images, masks, out, resize="crop")
    raw = np.load(out)
    assert raw["images"].shape == (3, 12, 12)
    np.testing.assert_array_equal(raw["images"][2], _image(2)[:, 2:14])
    np.testing.assert_array_equal(npz.load(out).arrays["box"][1], [2, 2, 5, 4])
    tall = tmp_path / "tall"
    images, masks = _folders(tall, shape=(20, 10))
    out = str(tmp_path / "pad16.npz")
    importer.import_folders(images, masks, out, resize="pad16")
    raw = np.load(out)
    assert raw["images"].shape == (3, 32, 16)  # (20, 10) -> multiples of 16, centred
    np.testing.assert_array_equal(raw["images"][0, 6:26, 3:13], _image(0, (20, 10)))


def test_channels_mask_classes_color_and_bit_depth(tmp_path):
    images, masks = _folders(tmp_path)
    out = str(tmp_path / "ch.npz")
    report = importer.import_folders(images, masks, out, multi_mask="channels")
    assert report.mask_names == ("mask", "2")
    raw = np.load(out)
    assert raw["masks"].shape == (3, 16, 16, 2)
    assert raw["masks"][0, ..., 1].sum() == 4 and raw["masks"][1, ..., 1].sum() == 0

    rgb, cls = tmp_path / "rgb", tmp_path / "cls"
    pixel = np.zeros((4, 4, 3), np.uint8)
    pixel[..., 0], pixel[..., 1], pixel[..., 2] = 100, 200, 50
    _save(rgb / "a.png", pixel)
    _save(cls / "a_mask.png", np.array([[0, 1, 2, 2]] * 4, np.uint8))
    out = str(tmp_path / "gray.npz")
    importer.import_folders(str(rgb), str(cls), out, mask_classes=(0, 1, 2))
    raw = np.load(out)
    expected = round(0.2125 * 100 + 0.7154 * 200 + 0.0721 * 50)
    np.testing.assert_array_equal(raw["images"], expected)
    np.testing.assert_array_equal(raw["masks"][0, 0], [[0, 0], [1, 0], [0, 1], [0, 1]])
    importer.import_folders(str(rgb), str(cls), out, mask_classes=(0, 1, 2), color="rgb",
                            overwrite=True)  # fmt: skip
    np.testing.assert_array_equal(np.load(out)["images"][0, 0, 0], [100, 200, 50])

    deep, deep_masks = tmp_path / "deep", tmp_path / "deep_masks"
    _save(deep / "b.png", np.array([[0, 40000], [65535, 7]], np.uint16))
    _save(deep_masks / "b_mask.png", np.array([[0, 1], [0, 0]], np.uint8))
    out = str(tmp_path / "deep.npz")
    importer.import_folders(str(deep), str(deep_masks), out, resize="pad16", multiple=2)
    raw = np.load(out)
    assert raw["images"].dtype == np.uint16
    np.testing.assert_array_equal(raw["images"][0], [[0, 40000], [65535, 7]])


def test_bad_input_is_reported_per_file_and_nothing_written(tmp_path):
    images, masks = _folders(tmp_path, n=4)
    (tmp_path / "images" / "c3.png").write_bytes(b"not a png")
    _save(tmp_path / "masks" / "ghost_mask.png", np.zeros((12, 16), np.uint8))
    _save(tmp_path / "images" / "lonely.png", _image(0))
    _save(tmp_path / "masks" / "c2_mask.png", np.zeros((8, 8), np.uint8))
    out = tmp_path / "out.npz"
    with pytest.raises(importer.InputError) as info:
        importer.import_folders(images, masks, str(out))
    problems = "\n".join(info.value.problems)
    assert "ghost_mask.png: mask without image" in problems
    assert "lonely.png: image without mask" in problems
    assert "c3.png: cannot read as an image" in problems
    assert "c2_mask.png: mask size (8, 8) != image size (12, 16)" in problems
    assert "nothing written" in str(info.value) and "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["images", "masks"]  # no output, no temp file

    report = importer.import_folders(images, masks, str(out), skip_bad=True)
    assert report.count == 2 and len(report.skipped) >= 4
    np.testing.assert_array_equal(np.load(out)["ids"], ["c0", "c1"])
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        importer.import_folders(images, masks, str(out), skip_bad=True)


def test_bad_mask_values_and_csv(tmp_path):
    images, masks = _folders(tmp_path)
    with pytest.raises(importer.InputError, match=r"c0_mask\.png: mask value\(s\) \[255\] outside"):
        importer.import_folders(images, masks, str(tmp_path / "o.npz"), mask_classes=(0, 1))
    csv = tmp_path / "bad.csv"
    csv.write_text("id,label\nc0,a\nc1,b\nc9,a\nc1,a\n")
    with pytest.raises(importer.InputError) as info:
        importer.import_folders(images, masks, str(tmp_path / "o.npz"), csv_files=[str(csv)])
    problems = "\n".join(info.value.problems)
    assert "second 'label' for id 'c1'" in problems
    assert "id 'c9' matches no imported image" in problems
    assert "no 'label' for id(s) ['c2']" in problems
    assert not (tmp_path / "o.npz").exists()


def test_helpers_pairing_and_placement():
    pairs, orphans = importer.pair_files(
        ["case1", "case1_b", "x"], ["case1_mask", "case1_mask_2", "case1_b_mask", "y_mask"], "_mask"
    )
    assert pairs == {
        "case1": [("case1_mask", ""), ("case1_mask_2", "2")],
        "case1_b": [("case1_b_mask", "")],
        "x": [],
    }
    assert orphans == ["y_mask"]
    where = importer.placement((12, 16), "pad", 8, (16, 16))
    assert where == importer.Placement((2, 0), 0.5, (8, 8))
    center, box = importer.place_geometry(
        np.array([5.0, 3.0]), np.array([3.0, 2.0, 7.0, 4.0]), where, "x"
    )
    np.testing.assert_allclose(center, [2.25, 2.25])
    np.testing.assert_array_equal(box, [1, 2, 3, 3])
    with pytest.raises(ValueError, match="CSV centre falls outside"):
        importer.place_geometry(np.array([20.0, 3.0]), None, where, "x")
    onehot = importer.mask_channels(np.array([[0, 3], [5, 3]]), (0, 3, 5), "m")
    np.testing.assert_array_equal(onehot[..., 0], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(onehot[..., 1], [[0, 0], [1, 0]])


def test_cli_import_and_errors(tmp_path, capsys):
    images, masks = _folders(tmp_path)
    out = str(tmp_path / "cli.npz")
    assert cli.main(["import", images, masks, out, "--size", "8"]) == 0
    assert np.load(out)["images"].shape == (3, 8, 8)
    assert cli.main(["import", images, masks, out]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert cli.main(["import", images, masks, out, "--spacing", "1,1,1"]) == 1


def _training_set(tmp_path, n: int = 16, side: int = 32):
    rng = np.random.default_rng(0)
    images, masks = tmp_path / "ti", tmp_path / "tm"
    for i in range(n):
        img = rng.integers(0, 60, (side, side)).astype(np.uint8)
        m = np.zeros((side, side), np.uint8)
        r, c = rng.integers(4, side - 12, 2)
        m[r : r + 8, c : c + 8] = 255
        img[m > 0] += 150
        _save(images / f"s{i:02d}.png", img)
        _save(masks / f"s{i:02d}_mask.png", m)
    return str(images), str(masks)


def test_imported_npz_trains_one_tiny_stage(tmp_path):
    from jaxseg.train.loop import train_and_evaluate

    images, masks = _training_set(tmp_path)
    out = str(tmp_path / "mine.npz")
    importer.import_folders(images, masks, out)
    study = demo.get_config(f"tiny,data={out}")
    assert study.data.source == "npz" and study.data.path == out
    run = make_run(study, tmp_path / "runs", "scratch")
    result = train_and_evaluate(run.config, run.workdir)
    assert result["steps"] == 6
    assert np.isfinite(result["metrics"]["dice"])
    assert result["n_train"] == 4 and result["n_test"] == 8  # budget 4 of fold 0; 2 folds


def test_placement_is_stored_and_unplace_maps_masks_back(tmp_path):
    images, masks = _folders(tmp_path)  # 12x16 -> pad to 16x16 (offset 2, 0) -> 8x8
    out = str(tmp_path / "p.npz")
    importer.import_folders(images, masks, out, size=8)
    stored = npz.read_placements(out)
    np.testing.assert_array_equal(stored["original_shapes"], [[12, 16]] * 3)
    np.testing.assert_array_equal(stored["placement_offsets"], [[2, 0]] * 3)
    np.testing.assert_array_equal(stored["placement_scales"], [0.5] * 3)
    where = importer.Placement((2, 0), 0.5, (8, 8))
    back = importer.unplace(np.load(out)["masks"][2], where, (12, 16))
    expected = np.zeros((12, 16), np.uint8)
    expected[2:6, 4:8] = 1  # c2: rows 2-4, cols 5-7, to the 2x2 blocks of the 8x8 grid ...
    expected[4:6, 4:6] = 0  # ... at least half covered (this block only a quarter)
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("policy, size", [("pad", 64), ("crop", 64), ("pad16", 0)])
def test_unplace_inverts_place(policy, size):
    shape = (90, 120)
    r, c = np.mgrid[:90, :120]
    blob = (((r - 40) / 25) ** 2 + ((c - 65) / 30) ** 2 < 1).astype(np.uint8)
    where = importer.placement(shape, policy, size, (96, 128))
    placed = place(blob[..., None], where, True)
    back = importer.unplace(placed[..., 0], where, shape)
    assert back.shape == shape and back.dtype == np.uint8
    if where.scale == 1.0:
        np.testing.assert_array_equal(back, blob)
    else:
        assert (back & blob).sum() / (back | blob).sum() > 0.9
    probs = importer.unplace(np.ones((*where.shape, 2), np.float32), where, shape)
    assert probs.shape == (*shape, 2) and probs.dtype == np.float32
    kept = np.zeros(shape, bool)  # what the placement kept: all but crop's 15 columns each side
    kept[:, 15:105] = True
    np.testing.assert_allclose(probs[..., 1], 1.0 if policy != "crop" else kept)


def test_image_folder_without_masks_imports_with_a_centres_csv(tmp_path, capsys):
    """IMAGES OUT.npz --csv: no masks; centres for two of three images (the third unknown:
    NaN), two boxes for c0 (rows of one id), and the loaded set has no mask rows."""
    images, _ = _folders(tmp_path)
    csv = tmp_path / "c.csv"
    csv.write_text("id,x,y\nc0,3,4\nc2,5,6\n")
    boxes = tmp_path / "b.csv"
    boxes.write_text("id,x0,y0,x1,y1\nc0,1,1,2,2\nc0,10,5,12,7\nc1,0,0,3,3\n")
    out = str(tmp_path / "o.npz")
    assert cli.main(["import", images, out, "--csv", str(csv), "--csv", str(boxes)]) == 0
    printed = capsys.readouterr().out
    assert "centres from CSV for 2 of 3 images (the others have none)" in printed
    assert "boxes from CSV for 2 of 3 images, 1 with several" in printed
    raw = np.load(out)
    assert "masks" not in raw.files and raw["boxes"].shape == (3, 2, 4)
    np.testing.assert_allclose(raw["centers"][[0, 2]], [[3, 6], [5, 8]])  # 2 rows padded on top
    assert np.isnan(raw["centers"][1]).all() and np.isnan(raw["boxes"][1, 1]).all()
    np.testing.assert_allclose(raw["boxes"][0], [[1, 3, 2, 4], [10, 7, 12, 9]])
    a = npz.load(out).arrays
    assert not a["has_mask"].any() and not a["center_derived"].any()
    np.testing.assert_array_equal(a["has_center"], [True, False, True])
    np.testing.assert_array_equal(a["box"][0], [1, 3, 12, 9])  # enclosing both boxes
    assert cli.main(["inspect", out, "--sheet", ""]) == 0
    assert "center 2," in capsys.readouterr().out
    assert cli.main(["import", images, str(tmp_path / "tf"), "--csv", str(csv)]) == 1
    assert "without masks is written as .npz only" in capsys.readouterr().err
    for flag in (["--mask-classes", "0,1"], ["--multi-mask", "channels"]):
        assert cli.main(["import", images, str(tmp_path / "x.npz"), "--csv", str(csv), *flag]) == 1
        assert "images imported without masks take neither" in capsys.readouterr().err


def test_multi_hot_csv_labels_load_as_n_by_l(tmp_path, capsys):
    """`label:NAME` columns give labels [N,L]: 1, 0, -1 (uncertain), 1.0 as CheXpert writes it,
    blank = 0 (not mentioned); names in column order, as written; a repeated row of an id (here
    in a second file) agrees; .npz and tfds load them as [N,L], inspect counts them."""
    from jaxseg.data import tfds_store
    from jaxseg.tasks.classification import multilabel

    images, masks = _folders(tmp_path)
    first = tmp_path / "a.csv"
    first.write_text("id,label:Effusion,label:edema\nc0,1,-1\nc1,,0\nc2,1.0,\n")
    second = tmp_path / "b.csv"
    second.write_text("id,x,y,label:Effusion,label:edema\nc0,3,4,1,-1\n")
    out = str(tmp_path / "m.npz")
    report = importer.import_folders(images, masks, out, csv_files=[str(first), str(second)])
    assert "multi-hot labels from CSV (2 classes) for 3 of 3 images: 2 positive, 1 uncertain" in (
        report.imported
    )
    raw = np.load(out)
    np.testing.assert_array_equal(raw["labels"], [[1, -1], [0, 0], [1, 0]])
    np.testing.assert_array_equal(raw["label_names"], ["Effusion", "edema"])
    ds = npz.load(out)
    assert ds.arrays["labels"].shape == (3, 2) and ds.class_names == ("Effusion", "edema")
    assert multilabel().usable(ds.arrays).all()
    capsys.readouterr()
    assert cli.main(["inspect", out, "--sheet", ""]) == 0
    printed = capsys.readouterr().out
    assert "Effusion {'positive': 2, 'uncertain': 0}, edema {'positive': 0, 'uncertain': 1}" in (
        printed
    )
    assert "labels 3" in printed
    folder = str(tmp_path / "m_tfds")
    importer.import_folders(images, masks, folder, csv_files=[str(first)])
    back = tfds_store.load(folder).arrays["labels"]
    np.testing.assert_array_equal(back, ds.arrays["labels"])


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"a": "id,label:x,label:y\nc0,1,0\nc1,2,0\nc2,0,0\n"},
            "a.csv:3: column 'label:x' holds '2'",
        ),
        ({"a": "id,label:x,label:y\nc0,1,0\nc1,yes,0\nc2,0,0\n"}, "a.csv:3: column 'label:x'"),
        ({"a": "id,label,label:x\nc0,1,0\n"}, "has a 'label' column and 'label:NAME' columns"),
        ({"a": "id,label:x\nc0,1\nc1,0\nc2,0\n", "b": "id,label\nc0,1\n"}, "not both"),
        (
            {"a": "id,label:x\nc0,1\nc1,0\nc2,0\n", "b": "id,label:x\nc0,0\n"},
            "b.csv:2: second 'labels' for id 'c0' ({'x': 0}; before: {'x': 1})",
        ),
        ({"a": "id,label:x,Label:x\nc0,1,1\n"}, "columns need distinct names, got ['x', 'x']"),
        ({"a": "id,label:x\nc0,1\nc1,0\nc2,0\n", "b": "id,label:y\nc0,1\n"}, "differ from ['x']"),
        ({"a": "id,label:x\nc0,1\nc1,0\n"}, "no 'labels' for id(s) ['c2']"),
    ],
)
def test_bad_multi_hot_csv_is_refused(tmp_path, files, message):
    images, _ = _folders(tmp_path)
    paths = []
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
        paths.append(str(tmp_path / f"{name}.csv"))
    out = tmp_path / "o.npz"
    with pytest.raises(importer.InputError) as info:
        importer.import_folders(images, None, str(out), csv_files=paths)
    assert message in str(info.value)
    assert not out.exists()


def test_label_values_of_class_and_multi_hot_tables():
    """One class per id keeps text classes sorted; multi-hot rows come in column order, and an
    id without a row (only under skip_bad) is all -1 (unknown), not invented negatives."""
    from jaxseg.data.importer import annotations

    names, values = annotations.label_values(
        {"a": {"label": "tumour"}, "b": {"label": "cyst"}}, "ab"
    )
    assert names == ("cyst", "tumour") and values == {"a": 1, "b": 0}
    table = {"a": {"labels": (("edema", 1), ("effusion", -1))}, "b": {}}
    names, values = annotations.label_values(table, ["a", "b"])
    assert names == ("edema", "effusion")
    np.testing.assert_array_equal(values["a"], [1, -1])
    np.testing.assert_array_equal(values["b"], [-1, -1])
