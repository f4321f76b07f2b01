"""A cheap-label pool beside a masked set (issue 16): folds, budgets and test images from the
masked images, every pretext stage on the pool, the overlap check in the report, and a pool
from another file joined by id or refused when it cannot be checked or leaks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from jaxseg.data import fundus, npz, splits
from jaxseg.studies.run import run_study
from tests.test_studies import study_config


def _fundus_npz(path, n: int, masked: np.ndarray, prefix: str = "f") -> str:
    """n fundus images of 32² as an .npz with masks where ``masked`` and centres for all."""
    a = fundus.generate(n, 32, seed=3).arrays
    np.savez(
        path, images=a["image"][..., 0], masks=a["mask"][..., 0].astype(np.uint8),
        has_mask=masked, centers=a["center"], ids=np.array([f"{prefix}{i}" for i in range(n)]),
    )  # fmt: skip
    return str(path)


def test_masked_folds_and_pretext_rows_keep_test_groups_out():
    groups = np.array([0, 1, 2, 3, 4, 5, 0, 1, 6, 7])
    has_mask = np.array([True] * 6 + [False] * 4)
    folds = splits.masked_folds(groups, has_mask, 2, seed=0)
    for train, test in folds:
        assert has_mask[train].all() and has_mask[test].all()
        pretext = splits.outside(groups, test)
        assert not np.isin(groups[pretext], groups[test]).any()
        assert set(pretext) >= set(train) | {8, 9}
    check = splits.pool_check(groups, has_mask, 2, seed=0)
    assert check["pool"] == 4 and check["masked"] == 6
    assert check["test_images_in_pretext"] == [0, 0]
    assert sum(check["excluded_per_fold"]) == 2  # rows 6 and 7 share groups 0 and 1
    everyone = splits.masked_folds(groups, np.ones(10, bool), 2, seed=0)
    for (tr, te), (tr2, te2) in zip(everyone, splits.kfold(groups, 2, 0), strict=True):
        np.testing.assert_array_equal(tr, tr2)
        np.testing.assert_array_equal(te, te2)


def test_study_with_ten_percent_masks_pretrains_on_the_pool(tmp_path):
    """Method 1's study (scale=ci) on an .npz where 8 of 80 images have masks: the localizer
    trains on every image outside the fold's test images, the budgets and tests are masked
    images, and the report states the pool and the overlap check."""
    masked = np.zeros(80, bool)
    masked[::10] = True
    path = _fundus_npz(tmp_path / "pool.npz", 80, masked)
    config = study_config("localization_transfer", f"scale=ci,data={path}")
    config.data.preprocess = ""
    workdir = str(tmp_path / "study")
    run_study(config, workdir)
    for fold in range(2):
        runs = os.path.join(workdir, f"fold_{fold}", "seed_0")
        with open(os.path.join(runs, "localize", "result.json")) as f:
            localize = json.load(f)
        with open(os.path.join(runs, "budget_4", "segment", "result.json")) as f:
            segment = json.load(f)
        assert localize["n_test"] == 4 and localize["n_train"] == 76
        assert segment["n_train"] == 4 and segment["test_index"] == localize["test_index"]
        assert masked[segment["test_index"]].all()
        assert localize["labels_derived"] == {}  # every centre is stored
    with open(os.path.join(workdir, "report.md")) as f:
        report = f.read()
    assert "Pool: 72 images without masks (the same data) beside 8 masked images" in report
    assert "test images of a fold in its pretext [0, 0] per fold" in report


def test_pool_from_another_file_joins_by_id(tmp_path):
    masked = _fundus_npz(tmp_path / "m.npz", 6, np.ones(6, bool), prefix="m")
    a = fundus.generate(10, 32, seed=4).arrays
    ids = np.array([f"p{i}" for i in range(10)])
    ids[0] = "m2"  # the same photograph as masked image m2 (pixels re-encoded)
    pool = tmp_path / "p.npz"
    np.savez(pool, images=a["image"][..., 0], centers=a["center"], ids=ids)
    ds = npz.load(masked, pool=str(pool))
    assert len(ds) == 16 and ds.arrays["has_mask"].sum() == 6
    assert ds.arrays["group"][6] == ds.arrays["group"][2]
    for _, test in splits.masked_folds(ds.arrays["group"], ds.arrays["has_mask"], 2, 0):
        pretext = splits.outside(ds.arrays["group"], test)
        assert (6 in pretext) == (2 not in test)


def test_leaking_or_unchecked_pool_is_refused_with_one_line(tmp_path):
    masked = _fundus_npz(tmp_path / "m.npz", 6, np.ones(6, bool), prefix="m")
    m = np.load(masked)
    leak = tmp_path / "leak.npz"  # masked image m1's pixels under another id
    np.savez(leak, images=m["images"][1:3], centers=m["centers"][1:3], ids=np.array(["x", "y"]))
    with pytest.raises(ValueError, match=r"pool image 'x' has the same pixels as masked image"):
        npz.load(masked, pool=str(leak))
    no_ids = tmp_path / "noids.npz"
    np.savez(no_ids, images=m["images"], centers=m["centers"])
    with pytest.raises(ValueError) as info:
        npz.load(masked, pool=str(no_ids))
    assert "noids.npz: has no 'ids'" in str(info.value) and "\n" not in str(info.value)
    same_file = tmp_path / "same.npz"  # a duplicate inside one file, in different groups
    images = np.concatenate([m["images"], m["images"][:1]])
    np.savez(same_file, images=images, masks=np.concatenate([m["masks"], m["masks"][:1]]),
             has_mask=np.array([True] * 6 + [False]))  # fmt: skip
    with pytest.raises(ValueError, match=r"pool image 'row 6' has the same pixels as masked"):
        npz.load(same_file)
