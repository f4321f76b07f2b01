"""Tests for jaxseg.studies.masks_saved: the log-budget crossing (hand-computed points, first
crossing on a non-monotone curve, beyond either end), masks saved on a synthetic study with a
known answer, its bootstrap interval, and the report table."""

import math

import numpy as np
import pytest

from jaxseg.studies import masks_saved

BUDGETS = (4.0, 8.0, 16.0, 32.0, 64.0)
KEYS = [(f, s) for f in range(5) for s in range(2)]


def test_crossing_interpolates_in_log_budget():
    # 0.5 at 4, 0.7 at 16: 0.6 is halfway in log2 (2 → 4), so at 2^3 = 8
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.6) == pytest.approx(8.0)
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.55) == pytest.approx(2**2.5)
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.7) == pytest.approx(16.0)
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.5) == 4.0  # reached at the first
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.71) == math.inf
    assert masks_saved.crossing([4, 16], [0.5, 0.7], 0.49) == -math.inf
    assert masks_saved.crossing([0.25, 0.5], [0.5, 0.7], 0.6) == pytest.approx(2**-1.5)


def test_crossing_takes_the_first_on_a_non_monotone_curve():
    curve = [0.5, 0.8, 0.6, 0.9]  # at 4, 8, 16, 32
    b = [4, 8, 16, 32]
    assert masks_saved.crossing(b, curve, 0.7) == pytest.approx(2 ** (2 + 2 / 3))  # not 16–32
    assert masks_saved.crossing(b, curve, 0.85) == pytest.approx(2 ** (4 + 0.25 / 0.3))


def test_crossing_vectorised_and_single_budget():
    curves = np.array([[0.5, 0.7], [0.6, 0.8], [0.1, 0.2]])
    out = masks_saved.crossing([4, 16], curves, np.array([0.6, 0.6, 0.6]))
    assert out == pytest.approx([8.0, 4.0, math.inf])
    assert masks_saved.crossing([4], [[0.5], [0.7]], np.array([0.6, 0.6])).tolist() == [
        math.inf, -math.inf
    ]  # fmt: skip


def _log_study(noise: float, seed: int = 0) -> tuple[dict, dict]:
    """Scratch Dice = 0.3 + 0.1·log2(budget), pretrained at B = scratch at 2B, plus noise."""
    rng = np.random.default_rng(seed)
    scratch, pretrained = {}, {}
    for b in BUDGETS:
        scratch[b] = {k: 0.3 + 0.1 * math.log2(b) + noise * rng.normal() for k in KEYS}
        pretrained[b] = {k: 0.3 + 0.1 * math.log2(2 * b) + noise * rng.normal() for k in KEYS}
    return pretrained, scratch


def test_masks_saved_known_answer():
    pretrained, scratch = _log_study(noise=0.0)
    rows = masks_saved.masks_saved(pretrained, scratch)
    assert [r["budget"] for r in rows] == list(BUDGETS)
    for r in rows[:-1]:  # scratch needs 2B: B masks saved, the same in every resample
        b = r["budget"]
        assert r["n"] == len(KEYS)
        assert r["mean"] == pytest.approx(0.3 + 0.1 * math.log2(2 * b))
        assert r["reference_mean"] == pytest.approx(0.3 + 0.1 * math.log2(b))
        assert r["needed"] == pytest.approx(2 * b) and r["saved"] == pytest.approx(b)
        assert r["needed_low"] == pytest.approx(2 * b) == r["needed_high"]
        assert r["saved_low"] == pytest.approx(b) == r["saved_high"]
    last = rows[-1]  # pretrained at 64 = scratch at 128: beyond the study's budgets
    assert last["needed"] == last["needed_low"] == last["needed_high"] == math.inf
    assert last["saved"] == math.inf


def test_masks_saved_bootstrap_interval_covers_the_truth():
    """Over 20 noisy studies the 95 % intervals of the budgets 4, 8, 16 hold scratch's true
    need 2B about 95 % of the time."""
    covered = []
    for seed in range(20):
        pretrained, scratch = _log_study(noise=0.03, seed=seed)
        rows = masks_saved.masks_saved(pretrained, scratch)
        for r in rows[:3]:
            b = r["budget"]
            assert r["needed_low"] < r["needed"] < r["needed_high"] < 4 * b
            assert r["saved_low"] == pytest.approx(r["needed_low"] - b)
            covered.append(r["needed_low"] <= 2 * b <= r["needed_high"])
        assert masks_saved.masks_saved(pretrained, scratch) == rows  # seeded: reproducible
    assert 0.85 <= np.mean(covered) < 1


def test_masks_saved_interval_is_the_resampled_crossings():
    """Two pairs: a resample is both pairs (p = 1/2) or one of them twice (1/4 each), so the
    2.5 % and 97.5 % quantiles are the crossings of each pair alone."""
    budgets = (4.0, 16.0)
    scratch = {4.0: {0: 0.5, 1: 0.5}, 16.0: {0: 0.7, 1: 0.9}}
    pretrained = {4.0: {0: 0.6, 1: 0.6}, 16.0: {0: 0.95, 1: 0.95}}
    (r, _) = masks_saved.masks_saved(pretrained, scratch)
    alone = [float(masks_saved.crossing(budgets, [0.5, top], 0.6)) for top in (0.7, 0.9)]
    both = masks_saved.crossing(budgets, [0.5, 0.8], 0.6)
    assert r["needed"] == pytest.approx(both) == pytest.approx(4 * 4 ** (1 / 3))
    assert (r["needed_low"], r["needed_high"]) == pytest.approx((alone[1], alone[0]))


def test_masks_saved_lower_is_better_and_shared_pairs():
    pretrained, scratch = _log_study(noise=0.0)
    error = {b: {k: 1 - v for k, v in d.items()} for b, d in pretrained.items()}
    error_scratch = {b: {k: 1 - v for k, v in d.items()} for b, d in scratch.items()}
    del error_scratch[16.0][KEYS[0]]  # a missing run: that pair leaves every budget
    rows = masks_saved.masks_saved(error, error_scratch, higher_is_better=False)
    assert rows[0]["n"] == len(KEYS) - 1
    assert rows[0]["needed"] == pytest.approx(8.0)
    assert masks_saved.masks_saved(error, error_scratch)[0]["needed"] == -math.inf
    one = {b: {KEYS[0]: v[KEYS[0]]} for b, v in pretrained.items()}
    single = masks_saved.masks_saved(one, scratch)[0]
    assert single["needed"] == pytest.approx(8.0) and math.isnan(single["needed_low"])
    assert masks_saved.masks_saved({4.0: {(0, 0): 1.0}}, {4.0: {(1, 0): 1.0}}) == []
    assert masks_saved.masks_saved(pretrained, {}) == []  # an arm without results


def test_markdown_table():
    pretrained, scratch = _log_study(noise=0.0)
    rows = masks_saved.masks_saved(pretrained, scratch)
    lines = masks_saved.markdown_table(rows, "pretrained", "scratch", BUDGETS).splitlines()
    assert lines[0] == "| budget | pretrained mean | scratch needs [95 % CI] | saved [95 % CI] |"
    assert lines[2] == "| 4 | 0.600 | 8 [8, 8] | 4 [4, 4] |"
    assert lines[-1] == "| 64 | 1.000 | > 64 [> 64, > 64] | > 0 [> 0, > 0] |"
    assert masks_saved.format_budget(-math.inf, BUDGETS) == "< 4"
    assert masks_saved.format_budget(math.nan, BUDGETS) == ""
    assert masks_saved.format_budget(12.345, BUDGETS) == "12.3"
