"""Paired statistics of two arms of a study and the correction for testing many of them.

Values are dicts keyed by (fold, seed): a pair is the two arms' results on the same fold with
the same seed, so the fold's difficulty and the seed's luck cancel in the difference
d = a − b. ``compare`` gives, over the n keys both arms hold:

- ``diff``: mean(d), with a 95 % confidence interval by the t distribution (n − 1 degrees of
  freedom, as ``scipy.stats.ttest_rel(a, b).confidence_interval()``) and by the bootstrap over
  pairs (``scipy.stats.bootstrap`` with ``paired=True``, BCa, ``BOOTSTRAP_RESAMPLES``
  resamples drawn by ``np.random.default_rng(BOOTSTRAP_SEED)``, so a report is reproducible);
- ``p_t``: the two-sided paired t-test; ``p_wilcoxon``: the two-sided Wilcoxon signed-rank
  test;
- ``d_z``: Cohen's d_z = mean(d) / sd(d) (sample sd, no Hedges correction), the effect size
  of a paired design: t = d_z·√n.

All are symmetric in the arms, so they serve metrics where higher is better (Dice) and where
lower is better (centre error) alike; the sign of ``diff`` says which arm scored higher.

Zero differences in the Wilcoxon test use scipy's default ``zero_method='wilcox'``: a pair whose
arms scored exactly the same (e.g. both Dice 0 on a fold where nothing was learnt) says nothing
about which arm is better and is dropped, as in Wilcoxon's original test and R's
``wilcox.test(paired=TRUE)``, so the p-value equals a plain ``scipy.stats.wilcoxon(a, b)``.
'zsplit' would keep such pairs as half a rank for each side, pulling p towards 1 by an amount
that depends on the ranks of the zeros among the real differences, which is harder to read. With
n ≤ 13 nonzero pairs scipy's p is exact (with ties or zeros, by enumerating all sign flips).
Note that with n pairs the smallest two-sided Wilcoxon p is 2/2^n: 0.0625 for 5 pairs, so five
folds × one seed can never reach p < 0.05 with it, whatever the effect.

Degenerate cases give numbers, not warnings: under 2 pairs everything but n is NaN; when every
difference is the same (within ``CONSTANT``, relative) the spread is zero, so both intervals are
[d, d], p_t is 1 if d = 0 (identical arms) and 0 otherwise (t = ±∞), d_z is 0 or ±∞, and the
Wilcoxon p is 1 for identical arms (and scipy's exact value otherwise).

``correct`` adjusts the p-values of a family of tests (a study's pairs × budgets of one metric):
Holm's step-down (controls the family-wise error rate, no assumption on how the tests depend)
or Benjamini–Hochberg (controls the false discovery rate, for independent or positively
dependent tests). NaN p-values (tests that could not run) are left out of the family.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
CONSTANT = 1e-12  # differences whose range is below this × their largest size count as equal
CORRECTIONS = {"holm": "Holm", "bh": "Benjamini–Hochberg"}  # config.correction: the name


def paired(a: Mapping, b: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``a`` and ``b`` at the keys both hold, sorted by key."""
    keys = sorted(set(a) & set(b))
    return np.array([a[k] for k in keys], float), np.array([b[k] for k in keys], float)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _bootstrap_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    result = stats.bootstrap(
        (x, y), _mean_difference, paired=True, vectorized=True, confidence_level=CONFIDENCE,
        n_resamples=BOOTSTRAP_RESAMPLES, method="BCa", rng=np.random.default_rng(BOOTSTRAP_SEED),
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def compare(a: Mapping, b: Mapping) -> dict:
    """Paired statistics of ``a`` − ``b`` over their shared keys (see the module doc): n, diff,
    ci_t_low/high, ci_boot_low/high, p_t, p_wilcoxon, d_z."""
    x, y = paired(a, b)
    d = x - y
    n = len(d)
    out = dict(n=n, diff=math.nan, ci_t_low=math.nan, ci_t_high=math.nan, ci_boot_low=math.nan,
               ci_boot_high=math.nan, p_t=math.nan, p_wilcoxon=math.nan, d_z=math.nan)  # fmt: skip
    if n < 2:
        return out
    diff = float(d.mean())
    out["diff"] = diff
    if np.ptp(d) <= CONSTANT * np.abs(d).max():  # no spread: a t statistic of 0/0 or ±∞
        out.update(ci_t_low=diff, ci_t_high=diff, ci_boot_low=diff, ci_boot_high=diff)
        if diff == 0:
            out.update(p_t=1.0, p_wilcoxon=1.0, d_z=0.0)
        else:
            out.update(p_t=0.0, p_wilcoxon=float(stats.wilcoxon(x, y).pvalue))
            out["d_z"] = math.copysign(math.inf, diff)
        return out
    t = stats.ttest_rel(x, y)
    ci = t.confidence_interval(CONFIDENCE)
    out.update(ci_t_low=float(ci.low), ci_t_high=float(ci.high))
    out["ci_boot_low"], out["ci_boot_high"] = _bootstrap_interval(x, y)
    out.update(p_t=float(t.pvalue), p_wilcoxon=float(stats.wilcoxon(x, y).pvalue))
    out["d_z"] = diff / float(d.std(ddof=1))
    return out


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values: the i-th smallest of m becomes max over j ≤ i of
    min(1, (m − j + 1)·p_(j)), so rejecting where the adjusted p < α is Holm's step-down test."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(stepped)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)."""
    p = np.asarray(p, float)
    return stats.false_discovery_control(p, method="bh") if len(p) else p


def correction_name(method: str) -> str:
    """The name of correction ``method`` ('holm' → 'Holm'); ValueError if there is none."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r} is not one of {', '.join(CORRECTIONS)}")
    return CORRECTIONS[method]


def correct(p, method: str = "holm") -> np.ndarray:
    """``p`` adjusted for multiple comparisons by ``method`` ('holm' or 'bh'); NaN entries stay
    NaN and are not counted in the family."""
    correction_name(method)
    p = np.asarray(p, float)
    out = np.full(p.shape, math.nan)
    ok = ~np.isnan(p)
    out[ok] = (holm if method == "holm" else benjamini_hochberg)(p[ok])
    return out
