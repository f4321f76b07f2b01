"""Tests for jaxseg.data.splits: group-aware k-fold and nested label budgets."""

import numpy as np
import pytest

from jaxseg.data import splits


def _groups() -> np.ndarray:
    """40 examples in 15 groups of uneven size (1 to 5), interleaved."""
    sizes = [5, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1, 2]
    g = np.repeat(np.arange(len(sizes)), sizes)
    return np.random.default_rng(0).permutation(g)


def test_kfold_partitions_every_example_once():
    groups = _groups()
    folds = splits.kfold(groups, k=4, seed=0)
    assert len(folds) == 4
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(groups)))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0
        np.testing.assert_array_equal(np.union1d(train, test), np.arange(len(groups)))
        np.testing.assert_array_equal(train, np.sort(train))
        np.testing.assert_array_equal(test, np.sort(test))


def test_kfold_keeps_groups_together():
    groups = _groups()
    for train, test in splits.kfold(groups, k=4, seed=3):
        assert np.intersect1d(groups[train], groups[test]).size == 0


def test_kfold_balanced_sizes():
    # Largest-group-first greedy: fold sizes differ by at most the largest group (5 here).
    sizes = [len(te) for _, te in splits.kfold(_groups(), k=4, seed=0)]
    assert sum(sizes) == 40 and max(sizes) - min(sizes) <= 5
    # Singleton groups: 23 examples into 5 folds -> sizes 5, 5, 5, 4, 4.
    singleton_sizes = [len(te) for _, te in splits.kfold(np.arange(23), k=5, seed=0)]
    assert sorted(singleton_sizes) == [4, 4, 5, 5, 5]
    # One big group and many small ones: the big one fills a fold alone.
    groups = np.concatenate([np.zeros(10, int), np.arange(1, 21)])
    sizes = sorted(len(te) for _, te in splits.kfold(groups, k=3, seed=1))
    assert sizes == [10, 10, 10]


def test_kfold_deterministic_and_seed_dependent():
    groups = _groups()
    a = splits.kfold(groups, k=5, seed=7)
    b = splits.kfold(groups, k=5, seed=7)
    c = splits.kfold(groups, k=5, seed=8)
    for (tra, tea), (trb, teb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(tra, trb)
        np.testing.assert_array_equal(tea, teb)
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


def test_kfold_accepts_string_groups():
    groups = np.array(["p1", "p2", "p1", "p3", "p2", "p4"])
    for train, test in splits.kfold(groups, k=2, seed=0):
        assert not set(groups[train]) & set(groups[test])


def test_kfold_errors():
    with pytest.raises(ValueError, match="k >= 2"):
        splits.kfold(np.arange(10), k=1, seed=0)
    with pytest.raises(ValueError, match="only 3 distinct groups"):
        splits.kfold(np.array([0, 0, 1, 1, 2]), k=4, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        splits.kfold(np.zeros((2, 2)), k=2, seed=0)


def test_label_budget_int_and_fraction():
    train = np.arange(100, 150)
    sub = splits.label_budget(train, 8, seed=0)
    assert len(sub) == 8 and np.isin(sub, train).all() and len(np.unique(sub)) == 8
    np.testing.assert_array_equal(sub, np.sort(sub))
    assert len(splits.label_budget(train, 0.1, seed=0)) == 5
    assert len(splits.label_budget(train, 0.001, seed=0)) == 1  # at least one
    np.testing.assert_array_equal(splits.label_budget(train, 1.0, seed=0), train)
    assert len(splits.label_budget(train, 1, seed=0)) == 1  # int 1 is a count, not 100 %


def test_label_budget_nested_and_seeded():
    train = np.arange(0, 300, 3)
    small = splits.label_budget(train, 4, seed=2)
    large = splits.label_budget(train, 8, seed=2)
    frac = splits.label_budget(train, 0.5, seed=2)
    assert set(small) <= set(large) <= set(frac)
    np.testing.assert_array_equal(small, splits.label_budget(train, 4, seed=2))
    assert not np.array_equal(large, splits.label_budget(train, 8, seed=3))


def test_label_budget_errors():
    train = np.arange(10)
    with pytest.raises(ValueError, match=r"12 labels exceeds the training fold of 10"):
        splits.label_budget(train, 12, seed=0)
    with pytest.raises(ValueError, match="> 0"):
        splits.label_budget(train, 0, seed=0)
    with pytest.raises(ValueError, match="> 0"):
        splits.label_budget(train, -0.5, seed=0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        splits.label_budget(train, 1.5, seed=0)
    with pytest.raises(ValueError, match="int count"):
        splits.label_budget(train, True, seed=0)
    with pytest.raises(ValueError, match="empty"):
        splits.label_budget(np.arange(0), 0.5, seed=0)
