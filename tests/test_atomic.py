"""jaxseg.atomic: whole files or nothing, old outputs removed only after the new one is in place."""

import json
import os

import pytest

from jaxseg import atomic


def test_write_json_and_text_replace_whole_file_and_leave_no_temporary(tmp_path):
    path = str(tmp_path / "r.json")
    atomic.write_text(path, "old text that is longer than the new one")
    atomic.write_json(path, {"a": [1, 2]})
    with open(path) as f:
        assert json.load(f) == {"a": [1, 2]}
    assert os.listdir(tmp_path) == ["r.json"]


def test_failed_write_keeps_old_file_and_removes_temporary(tmp_path):
    path = str(tmp_path / "r.json")
    atomic.write_text(path, "old")
    with pytest.raises(TypeError):
        atomic.write_json(path, {"not json": object()})
    with open(path) as f:
        assert f.read() == "old"
    assert os.listdir(tmp_path) == ["r.json"]


def test_replace_folder_swaps_in_new_and_deletes_old(tmp_path):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    atomic.replace(str(new), str(out))
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert os.listdir(out) == ["new.txt"]


def test_replace_file(tmp_path):
    (tmp_path / "a.tmp").write_text("new")
    (tmp_path / "a").write_text("old")
    atomic.replace(str(tmp_path / "a.tmp"), str(tmp_path / "a"))
    assert (tmp_path / "a").read_text() == "new"
    assert os.listdir(tmp_path) == ["a"]
