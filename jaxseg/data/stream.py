"""Datasets larger than memory: `Rows`, a lazy [N, ...] array read from disk per batch.

Indexing a `Rows` (an index array, a boolean mask, a slice) gives another `Rows` over those
examples and reads nothing; `np.asarray(rows)` reads exactly its examples from the source and
applies its per-image transforms (standardisation, preprocessing, padding). So splits, label
budgets and class filters stay lazy, and training reads one batch at a time
(`train.batches.take`), in the per-step order of `train.batches.train_indices`: a streamed run
sees the same batches, bit for bit, as the same data held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

Reader = Callable[[np.ndarray], np.ndarray]  # source rows [n] -> stacked examples [n, ...]
CHUNK = 32  # examples per read of a pass over the whole source (`chunks`)


class Rows:
    """A lazy array of the examples ``index`` of a random-access source.

    Args:
      read: source rows -> the stacked examples (as stored).
      row_shape: the shape of one example after ``transforms``.
      dtype: their dtype after ``transforms``.
      index: source rows, in order (None: all ``n``).
      transforms: functions of a batch [n, ...] -> [n, ...], applied in order after reading;
        each must treat every example on its own (a batch gives what the whole set would).
    """

    def __init__(
        self,
        read: Reader,
        n: int,
        row_shape: tuple[int, ...],
        dtype: np.dtype | type,
        index: np.ndarray | None = None,
        transforms: tuple[Callable[[np.ndarray], np.ndarray], ...] = (),
    ) -> None:
        self.read, self.n = read, n
        self.index = np.arange(n) if index is None else np.asarray(index)
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.transforms = transforms

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: object) -> Rows | np.ndarray:
        """A lazy view of the selected examples (an int key reads that one example)."""
        if isinstance(key, tuple):
            raise TypeError("a streamed array is indexed by examples only; read it first")
        index = self.index[key]
        if np.ndim(index) == 0:
            return np.asarray(self._view(np.atleast_1d(index)))[0]
        return self._view(index)

    def _view(self, index: np.ndarray) -> Rows:
        return Rows(self.read, self.n, self.row_shape, self.dtype, index, self.transforms)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> Rows:
        """These rows with ``fn`` applied to every batch read (its output shape and dtype taken
        from one example)."""
        transforms = (*self.transforms, fn)
        one = Rows(self.read, self.n, self.row_shape, self.dtype, self.index[:1], transforms)
        probe = np.asarray(one)
        return Rows(self.read, self.n, probe.shape[1:], probe.dtype, self.index, transforms)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        del copy  # a read is always a fresh array
        x = self.read(self.index)
        for fn in self.transforms:
            x = fn(x)
        return np.asarray(x, dtype or self.dtype)


def chunks(n: int, size: int = 0) -> Iterator[np.ndarray]:
    """Source rows [0, n) in consecutive blocks of at most ``size`` (0: `CHUNK`): one pass,
    bounded memory."""
    size = size or CHUNK
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


def per_batch(x: np.ndarray | Rows, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray | Rows:
    """``fn(x)`` for an array in memory; for `Rows`, ``fn`` on every batch read."""
    return x.map(fn) if isinstance(x, Rows) else fn(x)


__all__ = ["CHUNK", "Rows", "chunks", "per_batch"]
