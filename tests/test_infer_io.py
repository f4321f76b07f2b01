"""Tests for jaxseg.infer.io: reading predict's inputs and writing masks in their own geometry."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from jaxseg.infer import io as infer_io

SHAPE = (5, 6, 7)  # NIfTI voxel shape (i, j, k) in RAS order
RAS_CORNER = (3, 4, 5)  # near the right-anterior-superior corner: canonical (i, j, k)


def _png(path, x: np.ndarray) -> np.ndarray:
    Image.fromarray(x).save(path)
    return x


def _read(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _pages(path) -> list[np.ndarray]:
    with Image.open(path) as img:
        pages = []
        for k in range(img.n_frames):
            img.seek(k)
            pages.append(np.array(img))
        return pages


def _one_line_error(match: str, fn, *args) -> str:
    with pytest.raises(ValueError, match=match) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_png_folder_keeps_shapes_dtypes_and_writes_masks_at_input_size(tmp_path):
    rng = np.random.default_rng(0)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    grey = _png(src / "b_grey.png", rng.integers(0, 256, (90, 120), dtype=np.uint8))
    rgb = _png(src / "a_rgb.png", rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    deep = _png(src / "c_deep.png", rng.integers(0, 65536, (90, 120), dtype=np.uint16))
    Image.fromarray(grey).save(src / "d_photo.jpg")
    (src / "notes.txt").write_text("not an image")

    inputs = infer_io.read_inputs(str(src))
    assert [x.name for x in inputs] == ["a_rgb", "b_grey", "c_deep", "d_photo"]
    assert [x.kind for x in inputs] == ["png", "png", "png", "jpeg"]
    assert [(x.pixels.shape, x.pixels.dtype) for x in inputs] == [
        ((90, 120, 3), np.uint8),
        ((90, 120, 1), np.uint8),
        ((90, 120, 1), np.uint16),
        ((90, 120, 1), np.uint8),
    ]
    np.testing.assert_array_equal(inputs[0].pixels, rgb)
    np.testing.assert_array_equal(inputs[2].pixels[..., 0], deep)
    assert inputs[0].spacing is None

    masks = [(x.pixels[..., 0] > x.pixels.max() // 2).astype(np.uint8) for x in inputs]
    masks[3] = np.zeros((90, 120), np.uint8)
    masks[3][10:20, 30:100] = 2  # a class id stays as it is
    paths = infer_io.write_outputs(inputs, masks, str(out))
    assert [os.path.basename(p) for p in paths] == [
        "a_rgb_mask.png",
        "b_grey_mask.png",
        "c_deep_mask.png",
        "d_photo_mask.png",
    ]
    for path, mask in zip(paths[:3], masks, strict=False):
        written = _read(path)
        assert written.shape == (90, 120) and written.dtype == np.uint8
        np.testing.assert_array_equal(written, mask * 255)
    np.testing.assert_array_equal(_read(paths[3]), masks[3])


def test_tiff_round_trip_with_probabilities(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    x = np.linspace(0, 1, 7 * 11, dtype=np.float32).reshape(7, 11)
    Image.fromarray(x).save(src / "scan.tif")
    [inp] = infer_io.read_inputs(str(src))
    assert inp.kind == "tiff" and inp.pixels.dtype == np.float32
    np.testing.assert_array_equal(inp.pixels[..., 0], x)

    mask = (x > 0.5).astype(np.uint8)
    prob = np.stack([x, 1 - x], axis=-1)
    paths = infer_io.write_outputs([inp], [mask], str(out), probabilities=[prob])
    assert [os.path.basename(p) for p in paths] == ["scan_mask.tif", "scan_prob.tif"]
    np.testing.assert_array_equal(_read(paths[0]), mask * 255)
    pages = _pages(paths[1])
    assert [p.dtype for p in pages] == [np.float32, np.float32]
    np.testing.assert_array_equal(np.stack(pages, axis=-1), prob)

    infer_io.write_outputs([inp], [mask], str(tmp_path / "one"), probabilities=[x])
    [page] = _pages(tmp_path / "one" / "scan_prob.tif")
    np.testing.assert_array_equal(page, x)


def _volume(path, affine: np.ndarray, file_corner: tuple[int, int, int], shape) -> str:
    """A volume of small noise with one bright voxel at `file_corner` (file voxel order)."""
    data = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    data[file_corner] = 10.0
    img = nib.Nifti1Image(data, affine)
    nib.save(img, path)
    return str(path)


def test_nifti_orientations_read_canonical_and_write_back_in_file_geometry(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    ras = np.diag([0.8, 0.8, 0.8, 1.0])
    # i runs posterior (1.5 mm), j to the patient's left (0.7 mm), k superior (2.5 mm): 'PLS'
    pls = np.array([[0, -0.7, 0, 40.0], [-1.5, 0, 0, -12.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])
    pls_shape = (SHAPE[1], SHAPE[0], SHAPE[2])
    # canonical r = 4 - j, a = 5 - i, s = k: RAS_CORNER (3, 4, 5) is file voxel (1, 1, 5)
    pls_corner = (SHAPE[1] - 1 - RAS_CORNER[1], SHAPE[0] - 1 - RAS_CORNER[0], RAS_CORNER[2])
    _volume(src / "a_ras.nii.gz", ras, RAS_CORNER, SHAPE)
    _volume(src / "b_pls.nii", pls, pls_corner, pls_shape)
    assert "".join(nib.aff2axcodes(pls)) == "PLS"

    inputs = infer_io.read_inputs(str(src))
    assert [x.name for x in inputs] == ["a_ras", "b_pls"]
    k, j, i = RAS_CORNER[::-1]
    for x in inputs:
        assert x.kind == "nifti" and x.pixels.shape == (*SHAPE[::-1], 1)
        assert np.unravel_index(np.argmax(x.pixels), x.pixels.shape) == (k, j, i, 0)
        canonical = nib.as_closest_canonical(nib.load(x.source)).get_fdata(dtype=np.float32)
        np.testing.assert_array_equal(x.pixels[..., 0], canonical.transpose(2, 1, 0))
    assert inputs[0].spacing == pytest.approx((0.8, 0.8, 0.8))
    assert inputs[1].spacing == pytest.approx((2.5, 1.5, 0.7))

    masks = [(x.pixels[..., 0] > 5).astype(np.uint8) for x in inputs]
    probs = [x.pixels[..., 0] / 10 for x in inputs]
    paths = infer_io.write_outputs(inputs, masks, str(out), probabilities=probs)
    assert [os.path.basename(p) for p in paths] == [
        "a_ras_mask.nii.gz",
        "a_ras_prob.nii.gz",
        "b_pls_mask.nii.gz",
        "b_pls_prob.nii.gz",
    ]
    for x, affine, shape, corner, mask_path, prob_path in zip(
        inputs,
        [ras, pls],
        [SHAPE, pls_shape],
        [RAS_CORNER, pls_corner],
        paths[::2],
        paths[1::2],
        strict=True,
    ):
        written = nib.load(mask_path)
        assert written.shape == shape and written.get_data_dtype() == np.uint8
        np.testing.assert_allclose(written.affine, affine, atol=1e-6)
        np.testing.assert_allclose(written.affine, nib.load(x.source).affine)
        assert [tuple(v) for v in np.argwhere(np.asarray(written.dataobj))] == [corner]
        prob = nib.load(prob_path)
        assert prob.shape == shape and prob.get_data_dtype() == np.float32
        np.testing.assert_allclose(prob.affine, affine, atol=1e-6)
        np.testing.assert_allclose(prob.get_fdata(), nib.load(x.source).get_fdata() / 10, 1e-6)


def test_nifti_with_channels_reads_4d_and_writes_3d_and_4d(tmp_path):
    affine = np.array([[-1.0, 0, 0, 3], [0, -2.0, 0, 4], [0, 0, 1.5, 5], [0, 0, 0, 1]])  # LPS
    data = np.zeros((*SHAPE, 2), np.int16)
    data[1, 2, 3] = [7, 9]
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "two.nii.gz")
    [x] = infer_io.read_inputs(str(tmp_path / "two.nii.gz"))
    # L -> R flips i (r = 4 - i), P -> A flips j (a = 5 - j)
    assert x.pixels.shape == (*SHAPE[::-1], 2) and x.pixels.dtype == np.int16
    np.testing.assert_array_equal(x.pixels[3, 5 - 2, 4 - 1], [7, 9])
    mask = (x.pixels[..., 1] > 0).astype(np.uint8)
    prob = np.stack([mask, 1 - mask], axis=-1).astype(np.float32)
    infer_io.write_outputs([x], [mask], str(tmp_path / "out"), probabilities=[prob])
    written = nib.load(tmp_path / "out" / "two_mask.nii.gz")
    assert written.shape == SHAPE
    assert [tuple(v) for v in np.argwhere(np.asarray(written.dataobj))] == [(1, 2, 3)]
    written = nib.load(tmp_path / "out" / "two_prob.nii.gz")
    assert written.shape == (*SHAPE, 2)
    np.testing.assert_array_equal(written.get_fdata()[1, 2, 3], [1, 0])


def test_npz_round_trip_keeps_ids(tmp_path):
    images = np.random.default_rng(2).uniform(0, 1, (3, 10, 12)).astype(np.float32)
    np.savez(tmp_path / "set.npz", images=images, ids=np.array(["case_b", "case_a", "c"]))
    inputs = infer_io.read_inputs(str(tmp_path / "set.npz"))
    assert [x.name for x in inputs] == ["case_b", "case_a", "c"]
    assert {x.kind for x in inputs} == {"npz"} and inputs[0].pixels.shape == (10, 12, 1)
    masks = [(x.pixels[..., 0] > 0.5).astype(np.uint8) for x in inputs]
    probs = [x.pixels[..., 0] for x in inputs]
    [path] = infer_io.write_outputs(inputs, masks, str(tmp_path / "out"), probabilities=probs)
    assert os.path.basename(path) == "masks.npz"
    with np.load(path) as out:
        assert out["ids"].tolist() == ["case_b", "case_a", "c"]
        assert out["masks"].dtype == np.uint8
        np.testing.assert_array_equal(out["masks"], (images > 0.5).astype(np.uint8))
        np.testing.assert_array_equal(out["probabilities"], images)

    volumes = np.zeros((2, 4, 5, 6, 1), np.uint8)
    np.savez(tmp_path / "vol.npz", images=volumes)
    inputs = infer_io.read_inputs(str(tmp_path / "vol.npz"))
    assert [x.name for x in inputs] == ["0", "1"] and inputs[1].pixels.shape == (4, 5, 6, 1)
    masks = [np.ones((4, 5, 6), np.uint8)] * 2
    [path] = infer_io.write_outputs(inputs, masks, str(tmp_path / "vol"))
    with np.load(path) as out:
        assert out["masks"].shape == (2, 4, 5, 6) and out["ids"].tolist() == ["0", "1"]
        assert "probabilities" not in out.files


def test_refuses_to_overwrite_and_writes_nothing(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b"):
        _png(src / f"{name}.png", np.zeros((4, 6), np.uint8))
    inputs = infer_io.read_inputs(str(src))
    masks = [np.zeros((4, 6), np.uint8)] * 2
    out.mkdir()
    (out / "b_mask.png").write_bytes(b"the user's file")
    _one_line_error("b_mask.png: exists already", infer_io.write_outputs, inputs, masks, str(out))
    assert sorted(os.listdir(out)) == ["b_mask.png"]
    assert (out / "b_mask.png").read_bytes() == b"the user's file"

    never = str(tmp_path / "never")
    _one_line_error(
        "mask has shape", infer_io.write_outputs, inputs, [masks[0][:3], masks[1]], never
    )
    assert not os.path.exists(never)
    written = infer_io.write_outputs(inputs, masks, str(tmp_path / "new" / "deep"))
    assert [os.path.basename(p) for p in written] == ["a_mask.png", "b_mask.png"]


def test_read_errors_are_one_line_naming_the_file(tmp_path):
    _one_line_error("no such file or folder", infer_io.read_inputs, str(tmp_path / "gone"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    _one_line_error("no PNG, JPEG, TIFF or NIfTI", infer_io.read_inputs, str(empty))

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _png(mixed / "a.png", np.zeros((3, 3), np.uint8))
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)), mixed / "v.nii.gz")
    _one_line_error("mixes 2-D images", infer_io.read_inputs, str(mixed))

    nan = tmp_path / "nan"
    nan.mkdir()
    Image.fromarray(np.full((3, 4), np.nan, np.float32)).save(nan / "bad.tif")
    _one_line_error(r"bad\.tif: 12 NaN", infer_io.read_inputs, str(nan))
    images = np.zeros((2, 3, 3), np.float32)
    images[1, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", images=images)
    _one_line_error(r"nan\.npz: 1 NaN", infer_io.read_inputs, str(tmp_path / "nan.npz"))

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"not a png")
    _one_line_error(r"x\.png: cannot read", infer_io.read_inputs, str(broken))

    twice = tmp_path / "twice"
    twice.mkdir()
    _png(twice / "a.png", np.zeros((3, 3), np.uint8))
    _png(twice / "a.tif", np.zeros((3, 3), np.uint8))
    _one_line_error("same name as", infer_io.read_inputs, str(twice))
