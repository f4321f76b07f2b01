"""Tests for jaxseg.data.tfds_store: TF-free tfds export (array_record) and reading it back."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import subprocess_env
from test_data_import import _folders

from jaxseg.data import importer, npz, tfds_store


def test_tfds_export_matches_npz(tmp_path):
    images, masks = _folders(tmp_path)
    csv = tmp_path / "g.csv"
    csv.write_text("id,group,label,x,y\nc0,p,x,5,3\nc1,p,y,5,3\nc2,q,x,6,3\n")
    kwargs = dict(csv_files=[str(csv)], size=8)
    importer.import_folders(images, masks, str(tmp_path / "a.npz"), **kwargs)
    out = str(tmp_path / "a_tfds")
    report = importer.import_folders(images, masks, out, **kwargs)
    assert report.count == 3
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith(".")) == []  # no temp left
    ds = tfds_store.load(out)
    ref = npz.load(str(tmp_path / "a.npz"))
    assert ds.class_names == ref.class_names == ("x", "y") and ds.name == out
    for key, value in ref.arrays.items():
        np.testing.assert_array_equal(ds.arrays[key], value, err_msg=key)
    source, meta = tfds_store.open_source(out)
    assert len(source) == 3 and source[2]["id"] == b"c2" and meta["mask_names"] == ["foreground"]
    assert tfds_store.load(out, image_size=4).arrays["image"].shape == (3, 4, 4, 1)


def test_tfds_refuses_overwrite_and_replaces_with_flag(tmp_path):
    images, masks = _folders(tmp_path)
    out = str(tmp_path / "t")
    importer.import_folders(images, masks, out, size=8)
    with pytest.raises(ValueError, match="already exists"):
        importer.import_folders(images, masks, out, size=4)
    importer.import_folders(images, masks, out, size=4, overwrite=True)
    assert tfds_store.load(out).arrays["image"].shape == (3, 4, 4, 1)
    (tmp_path / "masks" / "c1_mask.png").unlink()
    with pytest.raises(importer.InputError, match="image without mask"):
        importer.import_folders(images, masks, out, size=8, overwrite=True)
    assert tfds_store.load(out).arrays["image"].shape == (3, 4, 4, 1)  # old output untouched
    assert [f for f in os.listdir(tmp_path) if f.startswith(".")] == []
    with pytest.raises(ValueError, match="not a tfds dataset folder"):
        tfds_store.load(str(tmp_path / "images"))


def test_volumes_round_trip_without_tensorflow(tmp_path):
    """Write and read in a fresh interpreter: TensorFlow is never imported."""
    code = f"""
import sys, numpy as np
from jaxseg.data import tfds_store
from jaxseg.data.layout import Layout
rows = [dict(image=np.full((2, 4, 4, 1), i, np.float32), mask=np.ones((2, 4, 4, 1), np.uint8),
             id=f"v{{i}}", group="g", label=0, n_mask_files=1, spacing=np.array([2.0, 1, 1]))
        for i in range(2)]
meta = Layout(class_names=("c",), mask_names=("fg",), keys=frozenset({{"spacing"}}),
              image_shape=(2, 4, 4, 1), image_dtype=np.float32)
assert tfds_store.write({str(tmp_path / "v")!r}, iter(rows), meta) == 2
raw = tfds_store.read_raw({str(tmp_path / "v")!r})
assert raw["images"].shape == (2, 2, 4, 4, 1) and raw["spacing"].tolist() == [[2, 1, 1]] * 2
assert raw["images"][1].min() == 1 and list(raw["ids"]) == ["v0", "v1"]
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
