"""Tests for the procedural fundus source and the Dataset / load API of jaxseg.data."""

import time
import types

import ml_collections
import numpy as np
import pytest

import jaxseg.data as data
from jaxseg.data import fundus


@pytest.fixture(scope="module")
def ds() -> data.Dataset:
    return fundus.generate(60, image_size=32, seed=0)


def test_contract_shapes_and_dtypes(ds):
    a = ds.arrays
    assert len(ds) == 60 and ds.name == "fundus"
    assert ds.class_names == ("small_cup", "medium_cup", "large_cup")
    assert a["image"].shape == (60, 32, 32, 1) and a["image"].dtype == np.float32
    assert a["mask"].shape == (60, 32, 32, 1) and a["mask"].dtype == np.float32
    assert set(np.unique(a["mask"])) == {0.0, 1.0}
    assert a["center"].shape == (60, 2) and a["box"].shape == (60, 4)
    assert a["has_object"].all()
    np.testing.assert_array_equal(a["group"], np.arange(60))
    assert a["label"].dtype == np.int32 and set(a["label"]) <= {0, 1, 2}


def test_images_normalised_per_image(ds):
    img = ds.arrays["image"]
    np.testing.assert_allclose(img.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(img.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_center_and_box_match_mask(ds):
    for m, c, b in zip(ds.arrays["mask"], ds.arrays["center"], ds.arrays["box"], strict=True):
        rows, cols = np.nonzero(m[..., 0])
        np.testing.assert_allclose(c, [cols.mean(), rows.mean()], atol=1e-4)
        np.testing.assert_array_equal(b, [cols.min(), rows.min(), cols.max(), rows.max()])


def test_disc_size_and_inside_field_of_view():
    d = fundus.generate(40, image_size=64, seed=1).arrays
    S = 64
    radius = np.sqrt(d["mask"].sum(axis=(1, 2, 3)) / np.pi) / S
    assert radius.min() > 0.06 and radius.max() < 0.14
    dist = np.hypot(*(d["center"] - (S - 1) / 2).T)
    assert dist.max() < 0.45 * S
    assert (d["box"][:, :2] >= 1).all() and (d["box"][:, 2:] <= S - 2).all()


def test_task_is_learnable_but_not_trivial():
    d = fundus.generate(100, image_size=64, seed=2).arrays
    x, m = d["image"][..., 0], d["mask"][..., 0] > 0
    disc_mean = np.array([x[i][m[i]].mean() for i in range(len(x))])
    assert disc_mean.min() > 0.5  # every disc is brighter than the image average
    dices = []
    for t in np.linspace(0, 4, 41):  # the best single global threshold must not solve the task
        p = x > t
        dices.append((2 * (p & m).sum((1, 2)) / (p.sum((1, 2)) + m.sum((1, 2)))).mean())
    assert 0.3 < max(dices) < 0.85


def test_labels_roughly_balanced():
    labels = fundus.generate(300, image_size=16, seed=0).arrays["label"]
    counts = np.bincount(labels, minlength=3)
    assert counts.min() >= 70, counts


def test_deterministic_and_prefix_stable():
    a = fundus.generate(10, image_size=32, seed=5)
    b = fundus.generate(5, image_size=32, seed=5)
    for key in a.arrays:
        np.testing.assert_array_equal(a.subset(np.arange(5)).arrays[key], b.arrays[key])
    c = fundus.generate(5, image_size=32, seed=6)
    assert not np.array_equal(b.arrays["image"], c.arrays["image"])
    assert not np.array_equal(b.arrays["image"][0], b.arrays["image"][1])


def test_generate_speed():
    t0 = time.perf_counter()
    fundus.generate(300, image_size=64, seed=0)
    assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_images": 0}, "num_images must be an integer >= 1"),
        ({"num_images": 2.5}, "num_images"),
        ({"num_images": 2, "image_size": 8}, "image_size must be an integer >= 16"),
        ({"num_images": 2, "image_size": 40}, "multiple of 16, got 40; try 32 or 48"),
        ({"num_images": 2, "seed": -1}, "seed"),
    ],
)
def test_generate_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fundus.generate(**kwargs)


# --- Dataset and load -----------------------------------------------------------------------


def test_subset_indexes_every_array(ds):
    idx = np.array([3, 0, 7])
    sub = ds.subset(idx)
    assert isinstance(sub, data.Dataset) and len(sub) == 3
    assert sub.class_names == ds.class_names and sub.name == ds.name
    for key, value in ds.arrays.items():
        np.testing.assert_array_equal(sub.arrays[key], value[idx])
    mask = np.zeros(len(ds), bool)
    mask[[1, 2]] = True
    np.testing.assert_array_equal(ds.subset(mask).arrays["group"], [1, 2])
    assert len(ds.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(ValueError, match="1-D"):
        ds.subset(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="boolean subset index has length 3"):
        ds.subset(np.ones(3, bool))


def test_dataset_rejects_broken_arrays(ds):
    arrays = dict(ds.arrays)
    del arrays["box"]
    with pytest.raises(ValueError, match=r"missing keys \['box'\]"):
        data.Dataset(arrays, ds.class_names, "x")
    with pytest.raises(ValueError, match="'label' has dtype int64"):
        data.Dataset({**ds.arrays, "label": ds.arrays["label"].astype(np.int64)}, ("a",) * 3, "x")
    with pytest.raises(ValueError, match="'center' has shape"):
        data.Dataset({**ds.arrays, "center": ds.arrays["box"]}, ds.class_names, "x")
    with pytest.raises(ValueError, match="expected N=60"):
        data.Dataset({**ds.arrays, "group": ds.arrays["group"][:5]}, ds.class_names, "x")
    with pytest.raises(ValueError, match=r"labels span \[0, 2\] but there are 1 class names"):
        data.Dataset(ds.arrays, ("only",), "x")


def test_load_fundus_from_config():
    cfg = ml_collections.ConfigDict(
        {"source": "fundus", "num_images": 4, "image_size": 16, "seed": 3, "path": ""}
    )
    got = data.load(cfg)
    want = fundus.generate(4, image_size=16, seed=3)
    np.testing.assert_array_equal(got.arrays["image"], want.arrays["image"])
    assert data.SOURCES["fundus"] is fundus.generate


def test_load_errors():
    with pytest.raises(
        ValueError, match=r"unknown data source 'mnist'.*\['fundus', 'kidneys', 'npz', 'tfds'\]"
    ):
        data.load(types.SimpleNamespace(source="mnist"))
    with pytest.raises(ValueError, match="lacks field 'seed'"):
        data.load(types.SimpleNamespace(source="fundus", num_images=2, image_size=16))


def test_centre_only_pool_beside_a_small_masked_set():
    """num_masked: the first images keep their masks, the rest are a centre-only pool whose
    centres are the discs' (identical to the fully masked set's) and that has no mask or box."""
    full = fundus.generate(12, 16, seed=1).arrays
    a = fundus.generate(12, 16, seed=1, num_masked=3).arrays
    np.testing.assert_array_equal(a["has_mask"], np.arange(12) < 3)
    assert a["mask"][3:].sum() == 0 and (a["mask"][:3] == full["mask"][:3]).all()
    np.testing.assert_array_equal(a["center"], full["center"])
    assert a["has_center"].all() and not a["center_derived"].any()
    np.testing.assert_array_equal(a["has_box"], np.arange(12) < 3)
    assert a["has_object"].all()
    with pytest.raises(ValueError, match="num_masked=13 exceeds num_images=12"):
        fundus.generate(12, 16, num_masked=13)
