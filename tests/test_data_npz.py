"""Tests for jaxseg.data.npz: the .npz loader, its validation errors and the real BUSI file."""

import os
import types
from pathlib import Path

import numpy as np
import pytest

import jaxseg.data as data
from jaxseg.data import npz

BUSI = Path(
    os.environ.get(
        "JAXSEG_BUSI", Path(__file__).resolve().parents[1].parent / "shared/data/busi/busi.npz"
    )
)


def _raw(n: int = 4, size: int = 16) -> dict[str, np.ndarray]:
    """Tiny BUSI-like arrays: example i has a rectangle, the last one an empty mask."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    masks[0, 2:6, 4:12] = 1  # rows 2-5, cols 4-11
    masks[1, 8:16, 0:4] = 1
    masks[2, 5:7, 5:7] = 1  # 2x2 blob: vanishes when downsampled by 4 (a quarter of a block)
    return {
        "images": images,
        "masks": masks,
        "labels": np.array([1, 2, 1, 0][:n], np.int8),
        "label_names": np.array(["normal", "benign", "malignant"]),
        "ids": np.array([f"case {i}" for i in range(n)]),
    }


def _write(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return str(path)


def test_happy_path_derives_contract(tmp_path):
    raw = _raw()
    path = _write(tmp_path, **raw)
    ds = npz.load(path)
    a = ds.arrays
    assert ds.name == path and len(ds) == 4
    assert ds.class_names == ("normal", "benign", "malignant")
    assert a["image"].shape == (4, 16, 16, 1) and a["mask"].shape == (4, 16, 16, 1)
    np.testing.assert_allclose(a["image"].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(a["image"].std(axis=(1, 2, 3)), 1, atol=1e-5)
    np.testing.assert_array_equal(a["mask"][..., 0], raw["masks"])
    np.testing.assert_allclose(a["center"][:2], [[7.5, 3.5], [1.5, 11.5]])
    np.testing.assert_array_equal(a["box"][:2], [[4, 2, 11, 5], [0, 8, 3, 15]])
    np.testing.assert_array_equal(a["has_object"], [True, True, True, False])
    np.testing.assert_array_equal(a["center"][3], [0, 0])
    np.testing.assert_array_equal(a["label"], [1, 2, 1, 0])
    np.testing.assert_array_equal(a["group"], np.arange(4))
    assert "ids" not in a


def test_groups_and_stored_geometry_are_used(tmp_path):
    raw = _raw()
    centers = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    boxes = np.array([[0, 0, 3, 3], [4, 4, 7, 7], [8, 8, 11, 11], [1, 1, 2, 2]], float)
    groups = np.array(["b", "a", "b", "c"])
    path = _write(tmp_path, **raw, groups=groups, centers=centers, boxes=boxes)
    a = npz.load(path).arrays
    np.testing.assert_array_equal(a["group"], [1, 0, 1, 2])
    np.testing.assert_allclose(a["center"][:3], centers[:3])
    np.testing.assert_array_equal(a["box"][:3], boxes[:3])
    np.testing.assert_array_equal(a["center"][3], [0, 0])  # empty mask: zeroed per the contract
    small = npz.load(path, image_size=4).arrays
    np.testing.assert_allclose(small["center"][0], [(1 + 0.5) / 4 - 0.5, (2 + 0.5) / 4 - 0.5])
    np.testing.assert_array_equal(small["box"][1], [1, 1, 1, 1])


def test_downsample_recomputes_masks_and_geometry(tmp_path):
    path = _write(tmp_path, **_raw())
    a = npz.load(path, image_size=4).arrays
    assert a["image"].shape == (4, 4, 4, 1) and a["mask"].shape == (4, 4, 4, 1)
    np.testing.assert_allclose(a["image"].std(axis=(1, 2, 3)), 1, atol=1e-5)
    # Rows 2-5, cols 4-11 in 4x4 blocks: block rows 0 and 1 are each half covered (kept, >= 0.5),
    # block cols 1 and 2 fully covered -> box (1, 0, 2, 1). The 2x2 blob covers a quarter block.
    np.testing.assert_array_equal(a["box"][0], [1, 0, 2, 1])
    np.testing.assert_allclose(a["center"][0], [1.5, 0.5])
    np.testing.assert_array_equal(a["has_object"], [True, True, False, False])


def test_channel_axes_are_kept(tmp_path):
    raw = _raw()
    images = np.repeat(raw["images"][..., None], 3, axis=3)
    masks = np.stack([raw["masks"], np.zeros_like(raw["masks"])], axis=3)
    a = npz.load(_write(tmp_path, images=images, masks=masks)).arrays
    assert a["image"].shape == (4, 16, 16, 3) and a["mask"].shape == (4, 16, 16, 2)


def test_optional_labels(tmp_path):
    raw = _raw()
    ds = npz.load(_write(tmp_path, images=raw["images"], masks=raw["masks"]))
    assert ds.class_names == ("unlabelled",)
    np.testing.assert_array_equal(ds.arrays["label"], 0)
    ds = npz.load(_write(tmp_path, images=raw["images"], masks=raw["masks"], labels=raw["labels"]))
    assert ds.class_names == ("class0", "class1", "class2")


def test_labels_per_example_masks_centres_boxes(tmp_path):
    """A file whose masks exist for some rows only: mask rows are ignored where has_mask is
    False, a stored centre wins and one is derived from a mask only where it is missing (and
    flagged), NaN centres are unknown, several boxes per image are kept with their enclosing
    box, and -1 marks an unknown class label."""
    raw = _raw()
    raw["masks"][3, 0:2, 0:2] = 1  # a mask row that must be ignored (has_mask False)
    centers = np.array([[7.0, 3.0], [np.nan, np.nan], [np.nan, np.nan], [1.0, 2.0]])
    boxes = np.full((4, 2, 4), np.nan)
    boxes[3] = [[0, 0, 3, 3], [10, 12, 14, 15]]
    ds = npz.load(
        _write(
            tmp_path,
            **{**raw, "labels": np.array([1, -1, 2, 0])},
            centers=centers,
            has_mask=np.array([True, True, False, False]),
            boxes=boxes,
        )
    )
    a = ds.arrays
    np.testing.assert_array_equal(a["has_mask"], [True, True, False, False])
    assert a["mask"][3].sum() == 0 and a["mask"][2].sum() == 0
    np.testing.assert_array_equal(a["has_center"], [True, True, False, True])
    np.testing.assert_array_equal(a["center_derived"], [False, True, False, False])
    np.testing.assert_allclose(a["center"][[0, 1, 3]], [[7, 3], [1.5, 11.5], [1, 2]])
    np.testing.assert_array_equal(a["has_box"], [True, True, False, True])
    np.testing.assert_array_equal(a["box"][3], [0, 0, 14, 15])
    np.testing.assert_array_equal(a["boxes"][3], boxes[3])
    np.testing.assert_array_equal(a["boxes"][0, 0], [4, 2, 11, 5])  # derived from the mask
    assert np.isnan(a["boxes"][2]).all() and np.isnan(a["boxes"][0, 1]).all()
    np.testing.assert_array_equal(a["has_object"], [True, True, False, True])
    np.testing.assert_array_equal(a["has_label"], [True, False, True, True])


def test_file_without_masks_and_multi_hot_labels(tmp_path):
    raw = _raw()
    multi = np.array([[1, 0, -1], [0, 0, 0], [-1, -1, -1], [0, 1, 1]], np.int8)
    path = _write(
        tmp_path, images=raw["images"], centers=np.array([[1.0, 2.0]] * 4),
        has_center=np.array([True, False, True, True]), labels=multi,
        label_names=raw["label_names"],
    )  # fmt: skip
    a = npz.load(path).arrays
    assert not a["has_mask"].any() and a["mask"].shape == (4, 16, 16, 1)
    np.testing.assert_array_equal(a["has_center"], [True, False, True, True])
    assert not a["center_derived"].any()
    np.testing.assert_array_equal(a["labels"], multi)
    assert not a["has_label"].any()


def test_dup_group_gives_groups(tmp_path):
    raw = _raw()
    ds = npz.load(_write(tmp_path, **raw, dup_group=np.array([-1, 5, -1, 5], np.int16)))
    g = ds.arrays["group"]
    assert g[1] == g[3] and len({g[0], g[1], g[2]}) == 3


def test_load_npz_through_config(tmp_path):
    path = _write(tmp_path, **_raw())
    cfg = types.SimpleNamespace(source="npz", path=path, image_size=8, num_images=1, seed=0)
    ds = data.load(cfg)
    assert ds.arrays["image"].shape == (4, 8, 8, 1)
    assert data.SOURCES["npz"] is npz.load


def _bad(raw: dict, **changes) -> dict:
    out = {**raw, **changes}
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"images": None}, r"missing required key 'images'"),
        ({"masks": None, "has_mask": np.ones(4, bool)}, r"'has_mask' marks masks but the file"),
        ({"has_mask": np.ones(4, np.uint8)}, r"'has_mask' has dtype uint8; expected bool"),
        ({"labels": np.full((4, 3), 2)}, r"multi-hot 'labels' \(4, 3\) must hold 1, 0 or -1"),
        ({"labels": np.zeros((4, 2), int)}, r"has 2 columns but 'label_names' has 3"),
        ({"labels": np.array([0, -2, 1, 0])}, r"'labels' span \[-2, 1\]"),
        ({"centers": np.array([[1, np.nan]] * 4)}, r"'centers' has rows with some coordinates NaN"),
        (
            {"centers": np.full((4, 2), np.nan), "has_center": np.ones(4, bool)},
            r"'has_center' \[N\] must be bool and False where 'centers' is NaN",
        ),
        ({"boxes": np.zeros((4, 2, 3))}, r"'boxes' has shape \(4, 2, 3\); expected \(4, 4\) or"),
        ({"boxes": np.array([[[0, 0, 1, np.nan]]] * 4)}, r"'boxes' has boxes with some coord"),
        ({"images": np.zeros((3, 16, 16), np.uint8)}, r"'images' \(3, 16, 16, 1\) and 'masks'"),
        ({"images": np.zeros((4, 16, 12), np.uint8)}, r"differ in N, H or W"),
        ({"masks": np.full((4, 16, 16), 255, np.uint8)}, r"'masks' must hold only 0 and 1.*255"),
        ({"images": np.full((4, 16, 16), np.nan)}, r"'images' contains NaN or inf"),
        ({"images": np.zeros((4, 256), np.uint8)}, r"'images' has shape \(4, 256\)"),
        ({"masks": np.zeros((4, 16, 16, 1, 1), np.uint8)}, r"'masks' has shape \(4, 16, 16, 1, 1"),
        ({"labels": np.array([0, 1, 2, 3])}, r"'labels' span \[0, 3\] but 'label_names' has 3"),
        ({"labels": np.zeros(3, int)}, r"'labels' has shape \(3,\); expected \[4\] or \[4,L\]"),
        ({"groups": np.zeros(5, int)}, r"'groups' has shape \(5,\)"),
        ({"centers": np.zeros((4, 3))}, r"'centers' has shape \(4, 3\); expected \(4, 2\)"),
        ({"boxes": np.full((4, 4), np.inf)}, r"'boxes' must be finite numbers or NaN"),
    ],
)
def test_bad_contents(tmp_path, changes, match):
    path = _write(tmp_path, **_bad(_raw(), **changes))
    with pytest.raises(ValueError, match=match) as info:
        npz.load(path)
    assert path in str(info.value) and "\n" not in str(info.value)


def test_bad_files_and_sizes(tmp_path):
    with pytest.raises(ValueError, match=r"missing\.npz: no such file"):
        npz.load(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=r"notes\.npz: cannot read as \.npz"):
        npz.load(text)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"one\.npy: holds a single array"):
        npz.load(single)
    path = _write(tmp_path, **_raw())
    with pytest.raises(ValueError, match=r"d\.npz: cannot downsample 16x16 to size 5.*\[1, 2, 4"):
        npz.load(path, image_size=5)
    with pytest.raises(ValueError, match="image_size must be an int >= 0"):
        npz.load(path, image_size=-4)


def test_real_busi_file():
    if not BUSI.is_file():
        pytest.skip(f"BUSI not found at {BUSI} (set JAXSEG_BUSI to its path)")
    ds = npz.load(BUSI, image_size=64)
    a = ds.arrays
    assert len(ds) == 780
    assert ds.class_names == ("normal", "benign", "malignant")
    assert a["image"].shape == (780, 64, 64, 1) and a["mask"].shape == (780, 64, 64, 1)
    assert (~a["has_object"]).sum() == 133
    np.testing.assert_array_equal(np.bincount(a["label"]), [133, 437, 210])
    assert not a["has_object"][a["label"] == 0].any()  # 'normal' images have no lesion
    np.testing.assert_array_equal(a["group"], np.arange(780))


def test_files_without_placements_still_load(tmp_path):
    path = _write(tmp_path, **_raw())
    assert npz.read_placements(path) == {} and len(npz.load(path)) == 4
    with pytest.raises(ValueError, match="'placement_scales' has shape"):
        npz.read_placements(_write(tmp_path, **_raw(), placement_scales=np.ones(3)))


def test_an_int16_hu_volume_is_windowed_in_hu_then_standardised(tmp_path):
    hu = np.random.default_rng(1).integers(-1000, 1000, (2, 4, 8, 8)).astype(np.int16)
    path = _write(tmp_path, images=hu, masks=(hu > 0).astype(np.uint8),
                  spacing=np.ones((2, 3)))  # fmt: skip
    config = types.SimpleNamespace(
        source="npz", path=path, image_size=0, preprocess="ct_window:110:380,normalize"
    )
    image = data.load(config).arrays["image"][..., 0]
    for x, h in zip(image, hu, strict=True):
        clipped = np.isclose(x, x.min()) | np.isclose(x, x.max())
        np.testing.assert_array_equal(clipped, (h <= -80) | (h >= 300))
        np.testing.assert_allclose([x.mean(), x.std()], [0, 1], atol=1e-5)
    # read directly (inspect, notebooks), a file is standardised as before
    np.testing.assert_allclose(npz.load(path).arrays["image"].std(axis=(1, 2, 3, 4)), 1, atol=1e-5)
