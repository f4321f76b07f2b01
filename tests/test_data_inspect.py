"""Tests for jaxseg.data.inspection: the dataset summary, duplicate detection, contact sheet."""

from __future__ import annotations

import numpy as np
from PIL import Image

from jaxseg.data import __main__ as cli
from jaxseg.data import inspection


def _dataset(tmp_path) -> str:
    """5 images 16x16: #1 = exact copy of #0, #2 = #0 brightened by 3 (near duplicate),
    #3 and #4 unrelated; masks: #3 empty, the others 8 pixels (2x4)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 200, (16, 16)).astype(np.uint8)
    stripes = np.tile(np.arange(16, dtype=np.uint8) * 15, (16, 1))
    other = rng.integers(0, 255, (16, 16))
    images = np.stack([base, base, base + 3, other, stripes]).astype(np.uint8)
    masks = np.zeros((5, 16, 16), np.uint8)
    masks[[0, 1, 2, 4], 4:6, 4:8] = 1
    path = tmp_path / "d.npz"
    np.savez(path, images=images, masks=masks, labels=np.array([0, 0, 1, 1, 1]),
             label_names=np.array(["a", "b"]), groups=np.array(["p", "p", "q", "r", "s"]),
             ids=np.array([f"i{k}" for k in range(5)]))  # fmt: skip
    return str(path)


def test_summary_counts_balance_duplicates(tmp_path, capsys):
    path = _dataset(tmp_path)
    s = inspection.inspect(path)
    assert s["count"] == 5 and s["shape"] == [16, 16, 1] and s["dtype"] == "uint8"
    assert s["classes"] == {"a": 2, "b": 3}
    assert s["empty_masks"] == ["i3"]
    np.testing.assert_allclose(s["foreground_fraction"], [4 * 8 / (5 * 256)])
    assert s["groups"] == {"count": 4, "largest": 2}
    assert s["exact_duplicates"] == [["i0", "i1"]]
    near = {(a, b) for a, b, _ in s["near_duplicates"]}
    assert near == {("i0", "i2"), ("i1", "i2")}  # the exact pair is listed only as exact
    assert s["intensity"][0] == min(0, s["intensity"][0]) and s["intensity"][1] <= 255
    sheet = Image.open(s["sheet"])
    assert s["sheet"] == path + ".sheet.png" and sheet.size[0] > 100
    out = capsys.readouterr().out
    assert "exact duplicates: 1 sets" in out and "empty masks: 1 (i3)" in out


def test_difference_hash_and_pairs():
    ramp = np.tile(np.arange(9, dtype=np.float32), (8, 1))[..., None]
    assert inspection.difference_hash(ramp).all()  # brighter to the right everywhere
    assert not inspection.difference_hash(ramp[:, ::-1]).any()
    hashes = np.zeros((3, 64), bool)
    hashes[1, :3] = True
    hashes[2, :10] = True
    assert inspection.near_duplicates(hashes, 3) == [(0, 1, 3)]
    assert inspection.near_duplicates(hashes, 7) == [(0, 1, 3), (1, 2, 7)]
    same = np.zeros((3, 2, 2, 1), np.uint8)
    same[2] = 1
    assert inspection.exact_duplicates(same) == [[0, 1]]


def test_cli_inspect(tmp_path, capsys):
    path = _dataset(tmp_path)
    sheet = tmp_path / "s.png"
    assert cli.main(["inspect", path, "--sheet", str(sheet)]) == 0
    assert sheet.is_file() and "5 examples" in capsys.readouterr().out
    assert cli.main(["inspect", str(tmp_path / "missing.npz")]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_label_coverage_per_kind_without_masks(tmp_path, capsys):
    """A file with centres for some images, masks for none and multi-hot labels: inspect says
    how many examples carry each kind of label (nothing derived: there is no mask)."""
    images = np.random.default_rng(0).integers(0, 255, (4, 16, 16)).astype(np.uint8)
    centers = np.array([[3.0, 4.0], [np.nan, np.nan], [5.0, 5.0], [1.0, 1.0]])
    multi = np.array([[1, -1], [0, 0], [-1, -1], [1, 1]])
    path = tmp_path / "c.npz"
    np.savez(path, images=images, centers=centers, labels=multi, label_names=np.array(["a", "b"]))
    s = inspection.inspect(str(path), sheet="")
    assert s["labels"]["center"] == {"available": 3, "derived": 0}
    assert s["labels"]["mask"]["available"] == 0 and s["labels"]["labels"]["available"] == 3
    assert s["classes"] == {
        "a": {"positive": 2, "uncertain": 1},
        "b": {"positive": 1, "uncertain": 2},
    }
    assert s["empty_masks"] == [] and s["foreground_fraction"] == []
    assert "center 3," in capsys.readouterr().out
