"""Tests for jaxseg.train.batches: deterministic epoch-covering training batches, padded eval
batches and ``take``."""

import numpy as np
import pytest

from jaxseg.train import batches


def _stream(n: int, batch_size: int, steps: int, seed: int = 0) -> np.ndarray:
    return np.concatenate([batches.train_indices(n, batch_size, s, seed) for s in range(steps)])


@pytest.mark.parametrize(
    "n,batch_size,steps",
    [(12, 4, 6), (10, 4, 10), (3, 8, 6), (1, 2, 3), (7, 7, 3), (5, 1, 12)],
)
def test_each_example_once_per_epoch(n, batch_size, steps):
    stream = _stream(n, batch_size, steps)
    assert len(stream) == steps * batch_size
    assert stream.dtype.kind == "i"
    epochs = len(stream) // n
    assert epochs >= 2
    for e in range(epochs):
        np.testing.assert_array_equal(np.sort(stream[e * n : (e + 1) * n]), np.arange(n))
    tail = stream[epochs * n :]  # a partial epoch: no repeats
    assert len(np.unique(tail)) == len(tail)


def test_batch_shapes_and_range():
    for step in range(5):
        idx = batches.train_indices(10, 4, step, seed=3)
        assert idx.shape == (4,)
        assert idx.min() >= 0 and idx.max() < 10
    # n < batch size: the batch repeats examples, each as often as possible evenly.
    idx = batches.train_indices(3, 8, 0, seed=0)
    assert idx.shape == (8,)
    assert sorted(np.bincount(idx, minlength=3)) == [2, 3, 3]


def test_deterministic_in_seed_and_step():
    a = [batches.train_indices(50, 8, s, seed=7) for s in (4, 0, 9)]
    b = [batches.train_indices(50, 8, s, seed=7) for s in (9, 4, 0)]  # other call order
    np.testing.assert_array_equal(a[0], b[1])
    np.testing.assert_array_equal(a[1], b[2])
    np.testing.assert_array_equal(a[2], b[0])


def test_different_seeds_and_epochs_differ():
    s0, s1 = _stream(50, 10, 5, seed=0), _stream(50, 10, 5, seed=1)
    assert not np.array_equal(s0, s1)
    two_epochs = _stream(50, 10, 10, seed=0)
    assert not np.array_equal(two_epochs[:50], two_epochs[50:])  # reshuffled each epoch
    assert not np.array_equal(s0, np.arange(50))  # shuffled at all


def test_empty_training_set_raises():
    with pytest.raises(ValueError, match="empty"):
        batches.train_indices(0, 4, 0, seed=0)


def _arrays(n: int) -> dict:
    return {
        "image": np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2, 1),
        "center": np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32),
        "mask": np.zeros((n, 2, 2, 1), np.float32),
    }


def test_take():
    arrays = _arrays(6)
    index = np.array([5, 0, 0, 2])
    batch = batches.take(arrays, index, ("image", "center"))
    assert set(batch) == {"image", "center", "weight"}
    np.testing.assert_array_equal(batch["image"], arrays["image"][[5, 0, 0, 2]])
    np.testing.assert_array_equal(batch["center"][:, 0], [5, 0, 0, 2])
    assert batch["weight"].dtype == np.float32
    np.testing.assert_array_equal(batch["weight"], np.ones(4))


@pytest.mark.parametrize("n,batch_size", [(10, 4), (8, 4), (3, 8), (1, 1)])
def test_eval_batches_cover_every_example_once_with_padding(n, batch_size):
    arrays = _arrays(n)
    out = list(batches.eval_batches(arrays, ("image", "center"), batch_size))
    assert len(out) == -(-n // batch_size)
    for b in out:
        assert set(b) == {"image", "center", "weight"}
        assert b["image"].shape == (batch_size, 2, 2, 1)
        assert b["center"].shape == (batch_size, 2)
        assert b["weight"].shape == (batch_size,) and b["weight"].dtype == np.float32
    weights = np.concatenate([b["weight"] for b in out])
    expected = np.zeros(len(out) * batch_size)
    expected[:n] = 1
    np.testing.assert_array_equal(weights, expected)  # only the tail of the last batch is 0
    seen = np.concatenate([b["center"][b["weight"] > 0, 0] for b in out])
    np.testing.assert_array_equal(seen, np.arange(n))  # in order, once each
    images = np.concatenate([b["image"][b["weight"] > 0] for b in out])
    np.testing.assert_array_equal(images, arrays["image"])
