"""Deterministic batching: the batch at step s depends only on (seed, s), so a resumed run sees
exactly the data order of an uninterrupted one. Arrays are in memory or streamed
(``data.stream.Rows``: only the batch's examples are read)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np


def train_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Indices into [0, n) of the training batch at ``step``: [batch_size].

    The stream is a concatenation of per-epoch permutations (epoch e shuffled by (seed, e)), so
    every example is seen once per epoch, even when ``n`` < ``batch_size``.
    """
    if n < 1:
        raise ValueError("the training set is empty; check the split and label budget")
    start = step * batch_size
    out = []
    pos = start
    while pos < start + batch_size:
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = min(n - offset, start + batch_size - pos)
        out.append(perm[offset : offset + take])
        pos += take
    return np.concatenate(out)


def take(arrays: Mapping[str, np.ndarray], index: np.ndarray, keys: tuple[str, ...]) -> dict:
    """The batch {key: arrays[key][index]} plus ``weight`` [B] = 1 (a streamed array,
    ``data.stream.Rows``, reads just these examples)."""
    batch = {k: np.asarray(arrays[k][index]) for k in keys}
    batch["weight"] = np.ones(len(index), np.float32)
    return batch


def eval_batches(
    arrays: Mapping[str, np.ndarray], keys: tuple[str, ...], batch_size: int
) -> Iterator[dict]:
    """Fixed-size batches over all examples in order; the last is padded with weight 0."""
    n = len(arrays[keys[0]])
    for start in range(0, n, batch_size):
        index = np.arange(start, start + batch_size)
        valid = index < n
        batch = take(arrays, np.where(valid, index, n - 1), keys)
        batch["weight"] = valid.astype(np.float32)
        yield batch
