"""Tests for jaxseg.data.nifti and the NIfTI import (volumes, resampling, 2-D slices)."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from jaxseg.data import importer, nifti, npz, tfds_store


def _save(path, ijk: np.ndarray, zooms=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0)) -> str:
    """Write voxels given in file order (i, j, k) with the given zooms (mm) and origin."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = origin
    img = nib.Nifti1Image(ijk, affine)
    img.header.set_zooms(zooms[: ijk.ndim])
    nib.save(img, path)
    return str(path)


def _case(root, name: str, shape=(6, 5, 4), zooms=(1.0, 1.0, 2.0), box=(1, 3, 1, 3, 1, 2)):
    """Image = i + 10 j + 100 k; label 1 in i0:i1, j0:j1, k0:k1 (file order)."""
    i, j, k = np.meshgrid(*map(np.arange, shape), indexing="ij")
    image = (i + 10 * j + 100 * k).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    i0, i1, j0, j1, k0, k1 = box
    label[i0:i1, j0:j1, k0:k1] = 1
    _save(root / "images" / f"{name}.nii.gz", image, zooms)
    _save(root / "labels" / f"{name}.nii.gz", label, zooms)
    return image, label


def test_read_transposes_to_dhw_and_reverses_spacing(tmp_path):
    image, _ = _case(tmp_path, "a")
    volume, spacing = nifti.read(str(tmp_path / "images" / "a.nii.gz"))
    assert volume.shape == (4, 5, 6)  # (D, H, W) = (k, j, i)
    np.testing.assert_array_equal(volume, image.transpose(2, 1, 0))
    np.testing.assert_array_equal(spacing, [2.0, 1.0, 1.0])
    shape, spacing, code, _ = nifti.header(str(tmp_path / "images" / "a.nii.gz"))
    assert shape == (4, 5, 6) and code == "RAS"
    assert nifti.stem("x/case_1.nii.gz") == "case_1" and nifti.stem("b.nii") == "b"


def test_resample_is_exact_on_linear_ramps_and_keeps_labels():
    d, h, w = np.meshgrid(np.arange(4), np.arange(6), np.arange(5), indexing="ij")
    ramp = (3.0 * d + 2.0 * h + w).astype(np.float32)
    out = nifti.resample(ramp, np.array([2.0, 1.0, 1.0]), np.array([1.0, 2.0, 0.5]), order=1)
    assert out.shape == nifti.resampled_shape(ramp.shape, [2.0, 1, 1], [1.0, 2, 0.5]) == (8, 3, 10)
    u, v, x = np.meshgrid(np.arange(8), np.arange(3), np.arange(10), indexing="ij")
    # output voxel (u, v, x) samples input (u/2, 2v, x/2), clamped to the last voxel
    expected = 3.0 * np.minimum(u / 2, 3) + 2.0 * 2 * v + np.minimum(x / 2, 4)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    labels = (d + h) % 3
    near = nifti.resample(labels.astype(np.uint8), np.ones(3), np.full(3, 0.5), order=0)
    assert near.dtype == np.uint8 and set(np.unique(near)) == {0, 1, 2}
    np.testing.assert_array_equal(near[::2, ::2, ::2], labels)
    two = nifti.resample(np.stack([ramp, -ramp], -1), np.ones(3), np.full(3, 2.0), order=1)
    np.testing.assert_allclose(two[..., 1], -two[..., 0])


def test_import_volumes_pad_and_derive_geometry(tmp_path):
    _case(tmp_path, "a")
    _case(tmp_path, "b", box=(0, 2, 3, 5, 3, 4))
    csv = tmp_path / "g.csv"
    csv.write_text("id,group,label\na,p1,0\nb,p1,1\n")
    out = str(tmp_path / "vol.npz")
    report = importer.import_nifti(
        str(tmp_path / "images"), str(tmp_path / "labels"), out, csv_files=[str(csv)], multiple=4
    )
    assert report.image_shape == (4, 8, 8, 1)
    raw = np.load(out)
    assert raw["images"].shape == (2, 4, 8, 8) and raw["images"].dtype == np.float32
    np.testing.assert_array_equal(raw["spacing"], [[2, 1, 1]] * 2)
    # (4, 5, 6) padded to (4, 8, 8): offsets (0, 1, 1)
    np.testing.assert_array_equal(
        raw["images"][0, 2, 1:6, 1:7], 200 + np.add.outer(10 * np.arange(5), np.arange(6))
    )
    a, names = npz.read_arrays(out)
    assert names == ("class0", "class1")
    # a: i 1-2, j 1-2, k 1 -> x 2-3, y 2-3, z 1
    np.testing.assert_array_equal(a["box"][0], [2, 2, 1, 3, 3, 1])
    np.testing.assert_allclose(a["center"][0], [2.5, 2.5, 1.0])
    np.testing.assert_array_equal(a["box"][1], [1, 4, 3, 2, 5, 3])
    np.testing.assert_array_equal(a["group"], [0, 0])
    np.testing.assert_allclose(a["image"].mean(axis=(1, 2, 3, 4)), 0, atol=1e-5)
    assert a["spacing"].dtype == np.float32 and a["mask"].shape == (2, 4, 8, 8, 1)


def test_import_resamples_to_target_spacing(tmp_path):
    _case(tmp_path, "a", zooms=(1.0, 1.0, 2.0))
    _case(tmp_path, "b", zooms=(0.5, 1.0, 2.0), shape=(12, 5, 4), box=(2, 6, 1, 3, 1, 2))
    csv = tmp_path / "c.csv"
    csv.write_text("id,x,y,z\na,2,2,1\nb,4,2,1\n")
    out = str(tmp_path / "res.npz")
    images, labels = str(tmp_path / "images"), str(tmp_path / "labels")
    with pytest.raises(importer.InputError, match="inconsistent spacing"):
        importer.import_nifti(images, labels, out)
    assert not os.path.exists(out)
    importer.import_nifti(images, labels, out, spacing=(2, 1, 1), csv_files=[str(csv)], multiple=2)
    raw = np.load(out)
    np.testing.assert_array_equal(raw["spacing"], [[2, 1, 1]] * 2)
    assert raw["images"].shape == (2, 4, 6, 6)  # both (4, 5, 6) after resampling, padded to 2s
    # b's i (0.5 mm) halves: voxel x samples i = 2x, so image value 2x + 10 j + 100 k
    np.testing.assert_allclose(
        raw["images"][1, 1, 0:5, 0:6], 100 + np.add.outer(10 * np.arange(5), 2 * np.arange(6))
    )
    np.testing.assert_array_equal(raw["masks"][1, 1, 1:3, 1:3], 1)
    np.testing.assert_allclose(raw["centers"], [[2, 2, 1], [2, 2, 1]])


def test_slices_share_their_volume_group(tmp_path):
    _case(tmp_path, "a")
    _case(tmp_path, "b", box=(0, 2, 3, 5, 3, 4))
    out = str(tmp_path / "sl.npz")
    report = importer.import_nifti(
        str(tmp_path / "images"), str(tmp_path / "labels"), out, slices=True, resize="pad", size=4
    )
    raw = np.load(out)
    assert raw["images"].shape == (8, 4, 4) and report.image_shape == (4, 4, 1)
    np.testing.assert_array_equal(raw["ids"][:2], ["a:z0", "a:z1"])
    np.testing.assert_array_equal(raw["groups"], ["a"] * 4 + ["b"] * 4)
    np.testing.assert_allclose(raw["spacing"], [[1.5, 1.5]] * 8)  # 6x6 square -> 4x4
    a = npz.load(out).arrays
    np.testing.assert_array_equal(a["group"], [0] * 4 + [1] * 4)
    np.testing.assert_array_equal(a["has_object"], [0, 1, 0, 0, 0, 0, 0, 1])
    importer.import_nifti(str(tmp_path / "images"), str(tmp_path / "labels"), out, slices=True,
                          resize="pad", size=4, empty_slices=False, overwrite=True)  # fmt: skip
    np.testing.assert_array_equal(np.load(out)["ids"], ["a:z1", "b:z3"])


def test_bad_volumes_are_reported(tmp_path):
    image, label = _case(tmp_path, "a")
    bad = image.copy()
    bad[0, 0, 0] = np.nan
    _save(tmp_path / "images" / "nan.nii.gz", bad)
    _save(tmp_path / "labels" / "nan.nii.gz", label)
    _save(tmp_path / "images" / "short.nii.gz", image)
    _save(tmp_path / "labels" / "short.nii.gz", label[:, :, :3])
    _save(tmp_path / "images" / "far.nii.gz", image)
    _save(tmp_path / "labels" / "far.nii.gz", label, zooms=(1.0, 1.0, 3.0))
    _save(tmp_path / "labels" / "orphan.nii.gz", label)
    _save(tmp_path / "images" / "moved.nii.gz", image)
    _save(tmp_path / "labels" / "moved.nii.gz", label, origin=(0.0, 5.0, 0.0))
    _save(tmp_path / "images" / "classes.nii.gz", image)
    _save(tmp_path / "labels" / "classes.nii.gz", label * 7)
    out = tmp_path / "o.npz"
    with pytest.raises(importer.InputError) as info:
        importer.import_nifti(
            str(tmp_path / "images"), str(tmp_path / "labels"), str(out), mask_classes=(0, 1)
        )
    problems = "\n".join(info.value.problems)
    assert "nan.nii.gz: 1 NaN/inf voxels" in problems
    assert "short.nii.gz: label shape (3, 5, 6) != image shape (4, 5, 6)" in problems
    assert "far.nii.gz: label spacing (3.0, 1.0, 1.0) != image spacing (2.0, 1.0, 1.0)" in problems
    assert "orphan.nii.gz: label volume without image" in problems
    assert (
        "labels/moved.nii.gz: label affine [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 5.0]" in problems
    )
    assert f"(RAS) of image {tmp_path}/images/moved.nii.gz" in problems
    assert "classes.nii.gz: mask value(s) [7] outside the declared classes [0, 1]" in problems
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if "tmp" in f]


def test_volume_npz_loads_as_dataset(tmp_path):
    _case(tmp_path, "a")
    out = str(tmp_path / "v.npz")
    importer.import_nifti(str(tmp_path / "images"), str(tmp_path / "labels"), out, multiple=4)
    ds = npz.load(out)
    assert ds.arrays["center"].shape == (1, 3) and ds.arrays["spacing"].shape == (1, 3)


def _oriented(root, name: str, codes: str, planted=(4, 1, 2)) -> None:
    """One anatomy (RAS grid 6x5x4, 0.8x1x2.5 mm, translated; a bright voxel labelled 1 at
    RAS voxel `planted`) stored with voxel axes along `codes`."""
    affine = np.diag([0.8, 1.0, 2.5, 1.0])
    affine[:3, 3] = (-30.0, 12.0, 40.0)
    ornt = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt(codes)
    )
    image, label = np.ones((6, 5, 4), np.float32), np.zeros((6, 5, 4), np.uint8)
    image[planted], label[planted] = 100, 1
    for folder, data in (("images", image), ("labels", label)):
        os.makedirs(root / folder, exist_ok=True)
        nib.save(
            nib.Nifti1Image(data, affine).as_reoriented(ornt), root / folder / f"{name}.nii.gz"
        )


def test_mixed_orientations_are_reoriented_to_ras(tmp_path):
    for name, codes in (("a", "RAS"), ("b", "LPS"), ("c", "SLA")):
        _oriented(tmp_path, name, codes)
    files = {n: nib.load(tmp_path / "labels" / f"{n}.nii.gz") for n in "abc"}
    # CSV centres in each file's own voxel indices (x, y, z) = (i, j, k) of the planted voxel
    at = {n: np.argwhere(np.asanyarray(f.dataobj))[0] for n, f in files.items()}
    csv = tmp_path / "c.csv"
    csv.write_text("id,x,y,z\n" + "".join(f"{n},{i},{j},{k}\n" for n, (i, j, k) in at.items()))
    images, labels = str(tmp_path / "images"), str(tmp_path / "labels")
    out = str(tmp_path / "o.npz")
    report = importer.import_nifti(images, labels, out, csv_files=[str(csv)], multiple=2)
    assert "reoriented 2 volume(s) to RAS (closest canonical): 1 from LPS, 1 from SLA" in (
        report.imported
    )
    raw = np.load(out)
    # RAS (i, j, k) = (4, 1, 2) -> array (d, h, w) = (2, 1, 4); (4, 5, 6) padded to (4, 6, 6)
    for n in range(3):
        assert np.argwhere(raw["masks"][n]).tolist() == [[2, 1, 4]]
        assert np.unravel_index(raw["images"][n].argmax(), (4, 6, 6)) == (2, 1, 4)
    np.testing.assert_allclose(raw["centers"], [[4, 1, 2]] * 3)
    np.testing.assert_allclose(raw["spacing"], [[2.5, 1.0, 0.8]] * 3)
    np.testing.assert_array_equal(raw["orientations"], ["RAS", "LPS", "SLA"])
    np.testing.assert_array_equal(raw["affines"], [files[n].affine for n in "abc"])
    assert raw["affines"].dtype == np.float64
    np.testing.assert_array_equal(raw["file_shapes"], [[4, 5, 6]] * 3)
    np.testing.assert_array_equal(raw["original_shapes"], [[4, 5, 6]] * 3)
    np.testing.assert_array_equal(raw["placement_offsets"], [[0, 0, 0]] * 3)
    tfds_out = str(tmp_path / "o_tfds")
    importer.import_nifti(images, labels, tfds_out, multiple=2)
    stored, back = npz.read_placements(out), tfds_store.read_raw(tfds_out)
    assert sorted(stored) == sorted(npz.PLACEMENT_KEYS)
    for key, value in stored.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_ct_window_sees_the_imported_hounsfield_units(tmp_path):
    """int16 HU volume -> import -> data.load: `ct_window:110:380` ([-80, 300] HU, method 4)
    clips what lies outside in HU (before issue 16 it saw z-scores and clipped nothing)."""
    from jaxseg import data

    hu = np.random.default_rng(0).integers(-1000, 1000, (8, 8, 8)).astype(np.int16)
    _save(tmp_path / "images" / "ct.nii.gz", hu, (1.0, 1.0, 1.0))
    _save(tmp_path / "labels" / "ct.nii.gz", (hu > 0).astype(np.uint8), (1.0, 1.0, 1.0))
    out = str(tmp_path / "ct.npz")
    importer.import_nifti(str(tmp_path / "images"), str(tmp_path / "labels"), out, multiple=8)
    stored = np.load(out)["images"]  # HU as float32
    np.testing.assert_array_equal(np.sort(stored.ravel()), np.sort(hu.ravel()))
    config = dict(source="npz", path=out, image_size=0, preprocess="ct_window:110:380")
    image = data.load(type("C", (), config)).arrays["image"]
    clipped = np.isclose(image, image.min()) | np.isclose(image, image.max())
    outside = (stored <= -80) | (stored >= 300)  # at the bounds counts as clipped
    assert 0.75 < outside.mean() < 0.85  # [-80, 300] of [-1000, 1000)
    np.testing.assert_array_equal(clipped.reshape(stored.shape), outside)
    np.testing.assert_allclose(image.mean(), 0, atol=1e-5)  # `normalize` appended


def _centres_csv(root, names: str) -> str:
    """A CSV of the planted voxel's (x, y, z) = (i, j, k) in each named file's own voxel order."""
    at = {n: np.argwhere(np.asanyarray(nib.load(root / "labels" / f"{n}.nii.gz").dataobj))[0]
          for n in names}  # fmt: skip
    csv = root / "centres.csv"
    csv.write_text("id,x,y,z\n" + "".join(f"{n},{i},{j},{k}\n" for n, (i, j, k) in at.items()))
    return str(csv)


def test_volumes_without_labels_import_with_a_centres_csv(tmp_path, capsys):
    """Image volumes alone + CSV centres in file voxel indices: no 'masks' key, has_mask False,
    the centres moved to RAS (an LPS and an SLA file: a wrong transform misses), the third
    volume without a centre carries none, and a localization task trains on the other two."""
    from jaxseg.tasks.localization import localization

    for name, codes in (("a", "LPS"), ("b", "SLA"), ("c", "RAS")):
        _oriented(tmp_path, name, codes)
    csv = _centres_csv(tmp_path, "ab")
    out = str(tmp_path / "o.npz")
    report = importer.import_nifti(str(tmp_path / "images"), None, out, csv_files=[csv], multiple=2)
    assert "centres from CSV for 2 of 3 volumes (the others have none)" in report.imported
    assert report.imported[0].endswith("no label volumes") and not report.derived
    raw = np.load(out)
    assert "masks" not in raw.files and raw["images"].shape == (3, 4, 6, 6)
    np.testing.assert_array_equal(raw["n_mask_files"], [0, 0, 0])
    np.testing.assert_allclose(raw["centers"][:2], [[4, 1, 2]] * 2)  # RAS voxel, array (2, 1, 4)
    for n in range(3):
        assert np.unravel_index(raw["images"][n].argmax(), (4, 6, 6)) == (2, 1, 4)
    a = npz.load(out).arrays
    assert not a["has_mask"].any() and not a["center_derived"].any()
    np.testing.assert_array_equal(a["has_center"], [True, True, False])
    np.testing.assert_array_equal(localization().usable(a), [True, True, False])
    np.testing.assert_allclose(a["center"][:2], [[4, 1, 2]] * 2)
    assert a["mask"].shape == (3, 4, 6, 6, 1) and not a["mask"].any()


def test_cli_imports_volume_slices_without_labels(tmp_path, capsys):
    """IMAGES OUT.npz --slices: every slice is an example (no mask, labels and groups of its
    volume); --drop-empty-slices, per-volume CSV centres on slices are one error line each."""
    from jaxseg.data import __main__ as cli

    _case(tmp_path, "a")
    _case(tmp_path, "b")
    images, out = str(tmp_path / "images"), str(tmp_path / "s.npz")
    labels = tmp_path / "l.csv"
    labels.write_text("id,label,group\na,1,p1\nb,0,p2\n")
    argv = ["import", images, out, "--slices", "--size", "4", "--csv", str(labels)]
    assert cli.main(argv) == 0
    raw = np.load(out)
    assert "masks" not in raw.files and raw["images"].shape == (8, 4, 4)
    np.testing.assert_array_equal(raw["labels"], [1] * 4 + [0] * 4)
    np.testing.assert_array_equal(raw["groups"], ["p1"] * 4 + ["p2"] * 4)
    assert not npz.load(out).arrays["has_mask"].any()
    capsys.readouterr()
    assert cli.main([*argv, "--overwrite", "--drop-empty-slices"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "needs label volumes" in err
    centres = tmp_path / "c.csv"
    centres.write_text("id,x,y,z\na,1,1,1\n")
    assert cli.main([*argv, "--overwrite", "--csv", str(centres)]) == 1
    assert "slices carry none (omit --slices)" in capsys.readouterr().err
