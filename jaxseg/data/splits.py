"""Deterministic evaluation-protocol helpers: group-aware k-fold and nested label budgets."""

from __future__ import annotations

import numbers

import numpy as np


def kfold(groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Group-aware k-fold split with folds balanced in number of examples.

    Groups are shuffled by `seed`, then assigned largest-first to the fold that currently holds
    the fewest examples (ties -> lowest fold index). All examples of a group land in the same test
    fold and every example is in exactly one test fold.

    Args:
      groups: [N] group id per example (any dtype that np.unique accepts, e.g. int or str).
      k: number of folds, 2 <= k <= number of distinct groups.
      seed: shuffling seed; the same (groups, k, seed) always gives the same folds.

    Returns:
      k pairs (train_idx, test_idx) of sorted int64 index arrays into the N examples.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"groups must be 1-D [N], got shape {groups.shape}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 2:
        raise ValueError(f"k-fold needs an integer k >= 2, got k={k!r}")
    uniq, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if k > len(uniq):
        raise ValueError(
            f"k={k} folds but only {len(uniq)} distinct groups to split; use k <= {len(uniq)} "
            "(protocol.folds)"
        )
    order = np.random.default_rng(seed).permutation(len(uniq))
    order = order[np.argsort(-counts[order], kind="stable")]  # largest first, shuffled ties
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    fold_size = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(fold_size))
        fold_of_group[g] = f
        fold_size[f] += counts[g]
    fold_of_example = fold_of_group[inverse]
    return [
        (np.flatnonzero(fold_of_example != f), np.flatnonzero(fold_of_example == f))
        for f in range(k)
    ]


def label_budget(train_idx: np.ndarray, budget: float | int, seed: int) -> np.ndarray:
    """Labelled subset of a training fold for a label-efficiency curve; nested across budgets.

    A fixed `seed`-permutation of train_idx is cut after its first n entries, so for one seed a
    smaller budget is always a subset of a larger one.

    Args:
      train_idx: [M] indices of the training fold.
      budget: int n with 1 <= n <= M (a count), or float f in (0, 1] (a fraction: n =
        max(1, round(f * M))).
      seed: permutation seed.

    Returns:
      sorted [n] subset of train_idx.
    """
    train_idx = np.asarray(train_idx)
    if train_idx.ndim != 1:
        raise ValueError(f"train_idx must be 1-D, got shape {train_idx.shape}")
    m = len(train_idx)
    if m == 0:
        raise ValueError("train_idx is empty; cannot take a label budget from an empty fold")
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise ValueError(f"budget must be an int count or a float fraction, got {budget!r}")
    if budget <= 0:
        raise ValueError(f"budget must be > 0, got {budget!r}")
    if isinstance(budget, numbers.Integral):
        n = int(budget)
        if n > m:
            raise ValueError(
                f"budget of {n} labels exceeds the training fold of {m} examples; use <= {m} "
                "(protocol.budgets)"
            )
    else:
        if budget > 1:
            raise ValueError(
                f"fractional budget must be in (0, 1], got {budget!r}; pass an int for a count"
            )
        n = max(1, round(float(budget) * m))
    perm = np.random.default_rng(seed).permutation(m)
    return np.sort(train_idx[perm[:n]])


def validation_split(
    train_idx: np.ndarray, groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Carve a validation set out of the training indices, group-aware: (train, val), sorted.

    About ``fraction`` of the training *groups* (at least one, and at least one left to train on)
    go to validation, chosen by a permutation seeded with ``seed``; a group never straddles.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction (val_fraction) must be in (0, 1), got {fraction!r}")
    train_idx = np.asarray(train_idx)
    uniq = np.unique(np.asarray(groups)[train_idx])
    if len(uniq) < 2:
        raise ValueError(
            f"cannot carve a validation set from {len(train_idx)} training examples in "
            f"{len(uniq)} group(s); set val_fraction=0 or raise the label budget"
        )
    n_val = min(max(1, round(fraction * len(uniq))), len(uniq) - 1)
    chosen = np.random.default_rng([seed, 7]).permutation(uniq)[:n_val]
    is_val = np.isin(np.asarray(groups)[train_idx], chosen)
    return np.sort(train_idx[~is_val]), np.sort(train_idx[is_val])


def masked_folds(
    groups: np.ndarray, has_mask: np.ndarray, k: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``kfold`` over the masked examples only, when a dataset holds masked and unmasked ones
    (a cheap-label pool beside a masked set): the masked set supplies the folds, their label
    budgets and their test images. Otherwise (every or no example masked) ``kfold`` over all.
    Indices point into all N examples."""
    has_mask = np.asarray(has_mask, bool)
    if has_mask.all() or not has_mask.any():
        return kfold(groups, k, seed)
    rows = np.flatnonzero(has_mask)
    return [(rows[tr], rows[te]) for tr, te in kfold(np.asarray(groups)[rows], k, seed)]


def outside(groups: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
    """Sorted indices of every example whose group has no example in ``test_idx``: what an
    ``examples='all'`` (pretext) stage may train on. With a pool beside the masked set this is
    the pool plus the masked training images; no test image, nor any image sharing its group
    (a patient, a duplicate photograph), enters that fold's pretext."""
    groups = np.asarray(groups)
    return np.flatnonzero(~np.isin(groups, groups[np.asarray(test_idx)]))


def pool_check(groups: np.ndarray, has_mask: np.ndarray, k: int, seed: int) -> dict:
    """What the report says about a cheap-label pool: its size (examples without a mask), the
    masked set's size, and per fold how many pool examples were kept out of the pretext because
    they share a group with that fold's test images, and how many test images reached the
    pretext (0: ``outside`` is checked here, not assumed)."""
    has_mask = np.asarray(has_mask, bool)
    groups = np.asarray(groups)
    excluded, leaked = [], []
    for _, test in masked_folds(groups, has_mask, k, seed):
        train = outside(groups, test)
        excluded.append(int((~has_mask).sum() - (~has_mask[train]).sum()))
        leaked.append(int(np.isin(groups[train], groups[test]).sum() + np.isin(train, test).sum()))
    return {
        "pool": int((~has_mask).sum()),
        "masked": int(has_mask.sum()),
        "excluded_per_fold": excluded,
        "test_images_in_pretext": leaked,
    }
