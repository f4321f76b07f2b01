"""Tests for jaxseg.studies.statistics: paired comparison (checked against scipy on the same
numbers), degenerate cases, and the Holm / Benjamini–Hochberg corrections."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from jaxseg.studies import statistics

A = {(0, 0): 0.71, (0, 1): 0.64, (1, 0): 0.80, (1, 1): 0.58, (2, 0): 0.69, (2, 1): 0.75}
B = {(0, 0): 0.62, (0, 1): 0.60, (1, 0): 0.66, (1, 1): 0.59, (2, 0): 0.55, (2, 1): 0.70}


def test_paired_shares_and_sorts_keys():
    x, y = statistics.paired({(1, 0): 3.0, (0, 0): 1.0, (2, 0): 9.0}, {(0, 0): 2.0, (1, 0): 4.0})
    assert x.tolist() == [1.0, 3.0] and y.tolist() == [2.0, 4.0]


def test_compare_matches_scipy():
    c = statistics.compare(A, dict(reversed(list(B.items()))))  # key order must not matter
    x = np.array([A[k] for k in sorted(A)])
    y = np.array([B[k] for k in sorted(A)])
    d = x - y
    t = stats.ttest_rel(x, y)
    ci = t.confidence_interval(0.95)
    assert c["n"] == 6
    assert c["diff"] == pytest.approx(d.mean(), rel=1e-12)
    assert (c["ci_t_low"], c["ci_t_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    # by hand: mean ± t_{0.975, n-1} · sd / √n
    half = stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    assert c["ci_t_low"] == pytest.approx(d.mean() - half, rel=1e-9)
    boot = stats.bootstrap(
        (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), paired=True, n_resamples=9999,
        method="BCa", rng=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    assert (c["ci_boot_low"], c["ci_boot_high"]) == pytest.approx((boot.low, boot.high), rel=1e-12)
    assert c["ci_boot_low"] != pytest.approx(c["ci_t_low"], rel=1e-6)  # not the t interval
    assert c["p_t"] == pytest.approx(t.pvalue, rel=1e-12)
    assert c["p_wilcoxon"] == pytest.approx(stats.wilcoxon(x, y).pvalue, rel=1e-12)
    assert c["d_z"] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    assert c["d_z"] * math.sqrt(6) == pytest.approx(t.statistic, rel=1e-9)
    assert statistics.compare(A, B) == c  # reproducible: the bootstrap's generator is seeded


def test_compare_sign_follows_the_first_arm():
    ab, ba = statistics.compare(A, B), statistics.compare(B, A)
    assert ab["diff"] > 0 and ba["diff"] == pytest.approx(-ab["diff"])
    assert ba["d_z"] == pytest.approx(-ab["d_z"])
    assert (ba["ci_t_low"], ba["ci_t_high"]) == pytest.approx((-ab["ci_t_high"], -ab["ci_t_low"]))
    assert ba["p_t"] == pytest.approx(ab["p_t"]) and ba["p_wilcoxon"] == ab["p_wilcoxon"]


def test_compare_degenerate_cases_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = statistics.compare({(0, 0): 1.0}, {(0, 0): 2.0})
        none = statistics.compare({(0, 0): 1.0, (0, 1): 2.0}, {(1, 0): 1.0})
        same = statistics.compare(A, dict(A))
        # x − 0.1 in floats: differences equal up to rounding, still no spread
        shifted = statistics.compare(A, {k: v - 0.1 for k, v in A.items()})
        lower = statistics.compare({k: v - 0.1 for k, v in A.items()}, A)
    assert one["n"] == 1 and none["n"] == 0
    for c in (one, none):
        assert all(math.isnan(v) for k, v in c.items() if k != "n")
    assert same == dict(n=6, diff=0.0, ci_t_low=0.0, ci_t_high=0.0, ci_boot_low=0.0,
                        ci_boot_high=0.0, p_t=1.0, p_wilcoxon=1.0, d_z=0.0)  # fmt: skip
    assert shifted["diff"] == pytest.approx(0.1)
    assert shifted["ci_t_low"] == shifted["ci_t_high"] == shifted["diff"]
    assert shifted["ci_boot_low"] == shifted["ci_boot_high"] == shifted["diff"]
    assert shifted["p_t"] == 0.0 and shifted["d_z"] == math.inf and lower["d_z"] == -math.inf
    assert shifted["p_wilcoxon"] == pytest.approx(2 / 2**6)  # all six pairs one way


P = np.array([0.01, 0.04, 0.03, 0.005, 0.2])


def test_holm_hand_fixture():
    # sorted: 0.005, 0.01, 0.03, 0.04, 0.2 times 5, 4, 3, 2, 1 → 0.025, 0.04, 0.09, 0.08, 0.2,
    # then the running maximum → 0.025, 0.04, 0.09, 0.09, 0.2 (back in the input order)
    assert statistics.holm(P) == pytest.approx([0.04, 0.09, 0.09, 0.025, 0.2])
    assert statistics.holm(np.array([0.5, 0.6])) == pytest.approx([1.0, 1.0])  # capped at 1
    assert statistics.holm(np.array([0.03])) == pytest.approx([0.03])


def test_holm_rejects_as_the_step_down_procedure():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p, alpha = rng.random(7) ** 3, 0.05
        rejected, m = np.zeros(7, bool), len(p)
        for i, j in enumerate(np.argsort(p)):  # textbook: stop at the first p_(i) > α/(m − i)
            if p[j] > alpha / (m - i):
                break
            rejected[j] = True
        assert ((statistics.holm(p) <= alpha) == rejected).all()


def test_benjamini_hochberg():
    ref = stats.false_discovery_control(P, method="bh")
    assert statistics.benjamini_hochberg(P) == pytest.approx(ref, rel=1e-12)
    # by hand: sorted p·m/rank = 0.025, 0.025, 0.05, 0.05, 0.2 (running minimum from the top)
    assert statistics.benjamini_hochberg(P) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.2])


def test_correct_leaves_nan_out_of_the_family():
    p = np.array([0.01, math.nan, 0.04, 0.03, 0.005, 0.2])
    holm = statistics.correct(p)
    assert math.isnan(holm[1])
    assert np.delete(holm, 1) == pytest.approx(statistics.holm(P))
    bh = statistics.correct(p, "bh")
    assert np.delete(bh, 1) == pytest.approx(statistics.benjamini_hochberg(P))
    assert statistics.correct([], "bh").shape == (0,)
    assert math.isnan(statistics.correct([math.nan])[0])
    with pytest.raises(ValueError, match="'bonferroni' is not one of holm, bh"):
        statistics.correct(P, "bonferroni")


def test_correction_name():
    assert statistics.correction_name("holm") == "Holm"
    assert statistics.correction_name("bh") == "Benjamini–Hochberg"
    with pytest.raises(ValueError, match="correction 'fdr'"):
        statistics.correction_name("fdr")


def test_compare_wilcoxon_drops_zero_differences():
    # A zero difference is dropped (zero_method='wilcox', scipy's default): p over 4 pairs.
    a = {(0, s): v for s, v in enumerate([0.9, 0.8, 0.7, 0.6, 0.5])}
    b = {(0, s): v for s, v in enumerate([0.9, 0.5, 0.4, 0.3, 0.1])}
    x, y = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    p = statistics.compare(a, b)["p_wilcoxon"]
    assert p == pytest.approx(stats.wilcoxon(x, y).pvalue, rel=1e-12)
    assert p == pytest.approx(stats.wilcoxon(x[1:], y[1:]).pvalue, rel=1e-12)
    assert p == pytest.approx(2 / 2**4)
    # Only common keys pair up.
    c = {(1, 0): 0.2, **dict(reversed(list(b.items())))}
    assert statistics.compare(a, c)["p_wilcoxon"] == p
