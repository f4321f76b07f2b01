"""Pools larger than memory (jaxseg.data.stream, tfds_store.streamed): lazy rows read per batch,
and a stage trained on a tfds pool whose arrays exceed a memory cap the test sets, bit-identical
to the same pool held in memory."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest
from conftest import read_variables

from jaxseg import data
from jaxseg.data import stream, tfds_store
from jaxseg.data.layout import Layout
from jaxseg.train.loop import train_and_evaluate

N, SIZE, CAP = 48, 32, 8  # the pool's 48 examples exceed the cap of 8 held at once


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> str:
    """A tfds folder of N noisy 32² images, each with a bright disc as its mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    rows = []
    for i in range(N):
        cx, cy, r = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(3, 7)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.uint8)[..., None]
        image = (100 * mask + rng.normal(50, 10, mask.shape)).astype(np.float32)
        rows.append(dict(image=image, mask=mask, id=f"e{i}", group=f"p{i // 2}",
                         label=i % 2, n_mask_files=1))  # fmt: skip
    layout = Layout(("a", "b"), ("fg",), frozenset(), (SIZE, SIZE, 1), np.float32)
    out = str(tmp_path_factory.mktemp("pool") / "pool")
    assert tfds_store.write(out, iter(rows), layout) == N
    return out


@pytest.fixture
def capped(monkeypatch):
    """Stream every tfds set and fail any read of more than CAP examples at once."""
    monkeypatch.setattr(tfds_store, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(stream, "CHUNK", CAP)
    reads, read = [], stream.Rows.__array__

    def bounded(self, *args, **kwargs):
        assert len(self) <= CAP, f"read {len(self)} examples at once (cap {CAP})"
        reads.append(len(self))
        return read(self, *args, **kwargs)

    monkeypatch.setattr(stream.Rows, "__array__", bounded)
    return reads


def test_rows_index_lazily_and_read_only_what_is_asked():
    calls = []

    def read(index):
        calls.append(list(index))
        return np.stack([np.full((2,), i, np.float32) for i in index])

    rows = stream.Rows(read, 10, (2,), np.float32)
    view = rows[np.array([7, 3, 5])][1:]  # lazy: nothing read yet
    assert calls == [] and view.shape == (2, 2) and len(rows[rows.index > 4]) == 5
    np.testing.assert_array_equal(np.asarray(view), [[3, 3], [5, 5]])
    doubled = view.map(lambda x: np.concatenate([x, 2 * x], axis=1))
    assert doubled.shape == (2, 4) and calls == [[3, 5], [3]]  # map probes one example
    np.testing.assert_array_equal(np.asarray(doubled)[1], [5, 5, 10, 10])
    assert rows[4][0] == 4  # an int key reads one example
    with pytest.raises(TypeError, match="indexed by examples only"):
        rows[:, 0]
    assert [list(c) for c in stream.chunks(5, 2)] == [[0, 1], [2, 3], [4]]


def whole(config, monkeypatch) -> data.Dataset:
    """The set read whole into memory (the reference)."""
    with monkeypatch.context() as m:
        m.setattr(tfds_store, "IN_MEMORY_BYTES", 1 << 40)
        return data.load(config)


def pool_config(path: str, **fields) -> ml_collections.ConfigDict:
    fields = dict(source="tfds", path=path, image_size=0, preprocess="", pad_multiple=0) | fields
    return ml_collections.ConfigDict(fields)


def test_a_streamed_pool_equals_it_read_whole(pool, capped, monkeypatch):
    config = pool_config(pool, preprocess="gamma:0.5", pad_multiple=48)
    streamed, want = data.load(config), whole(config, monkeypatch)
    assert isinstance(streamed.arrays["image"], stream.Rows)
    assert streamed.arrays["image"].shape == want.arrays["image"].shape == (N, 48, 48, 1)
    for key in want.arrays:
        got = streamed.arrays[key]
        got = np.asarray(got[-CAP:]) if isinstance(got, stream.Rows) else got[-CAP:]
        np.testing.assert_array_equal(got, want.arrays[key][-CAP:], err_msg=key)
    assert max(capped) <= CAP
    with pytest.raises(ValueError, match="zscore"):
        data.load(pool_config(pool, preprocess="zscore"))
    with pytest.raises(ValueError, match="streams at its stored size"):
        data.load(pool_config(pool, image_size=16))


def test_a_stage_trains_on_a_pool_larger_than_the_cap(pool, capped, monkeypatch, tiny_run,
                                                      tmp_path):  # fmt: skip
    """Every read stays within the cap, and the run is bit-identical to the pool in memory."""
    run = tiny_run(tmp_path / "streamed", "scratch")
    run.config.data = pool_config(pool)
    result = train_and_evaluate(run.config, run.workdir)
    assert capped and max(capped) <= CAP and sum(capped) > N  # read in batches, every epoch
    reference = tiny_run(tmp_path / "whole", "scratch")
    reference.config.data = pool_config(pool)
    want = train_and_evaluate(
        reference.config, reference.workdir, whole(run.config.data, monkeypatch)
    )
    for key in ("per_example", "metrics", "test_index", "n_train", "n_test", "steps"):
        assert json.dumps(result[key], sort_keys=True) == json.dumps(want[key], sort_keys=True)
    assert result["n_test"] > CAP and len(result["per_example"]["dice"]) == result["n_test"]
    mine, theirs = (
        read_variables(os.path.join(r.workdir, "checkpoints")) for r in (run, reference)
    )
    assert all(np.array_equal(mine[p], theirs[p]) for p in theirs)
