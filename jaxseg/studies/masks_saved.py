"""Masks saved: how many labelled masks the reference arm (scratch) needs to match a treated arm
(pretrained) trained on B masks.

For each budget B: the target is the treated arm's mean metric at B; the reference curve is
the reference arm's mean at each budget of the study, joined by straight lines on a log-budget
axis; the *equivalent budget* is where that curve first reaches the target, and masks saved =
equivalent budget − B. Where the reference curve is not monotone the first crossing counts (the
smallest budget that is enough; a later dip below the target is ignored). When the curve never
reaches the target the equivalent budget is +∞, reported as "> B_max"; when the reference arm's
smallest budget already beats the target it is −∞, reported as "< B_min" (exactly B_min when it
equals the target). For a metric where lower is better, "reaches" means "falls to".

Both curves use the (fold, seed) pairs present in both arms at every budget, so a resampled pair
moves both arms' results together. The 95 % interval is a percentile bootstrap over those pairs
(``statistics.BOOTSTRAP_RESAMPLES`` resamples, ``np.random.default_rng(statistics.
BOOTSTRAP_SEED)``): each resample recomputes both curves and the crossing, and the bounds are
resampled crossings themselves (``method='inverted_cdf'``), so ±∞ bounds stay meaningful.
Budgets are counts (masks saved in masks) or fractions of the fold's training images (masks
saved in that fraction); the study's budgets must all be one or the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from jaxseg.studies import statistics


def crossing(budgets, curves, targets) -> np.ndarray:
    """Where each curve [..., k] of means at the ascending ``budgets`` [k] first reaches its
    target [...] (≥; curves and targets broadcast), interpolated linearly in log(budget): a
    budget, −∞ when the first value already exceeds the target, +∞ when no value reaches it."""
    log_b = np.log(np.asarray(budgets, float))
    targets = np.asarray(targets, float)
    curves = np.asarray(curves, float)
    shape = np.broadcast_shapes(curves.shape[:-1], targets.shape)
    curves, targets = np.broadcast_to(curves, (*shape, len(log_b))), np.broadcast_to(targets, shape)
    reached = curves >= targets[..., None]
    first = np.argmax(reached, axis=-1)
    hi = np.clip(first, 1, len(log_b) - 1)
    lo = np.maximum(hi - 1, 0)
    m_lo = np.take_along_axis(curves, lo[..., None], -1)[..., 0]
    m_hi = np.take_along_axis(curves, hi[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):  # only where first == 0 (replaced)
        step = (targets - m_lo) / (m_hi - m_lo)
        needed = np.exp(log_b[lo] + step * (log_b[hi] - log_b[lo]))
    at_first = np.where(curves[..., 0] == targets, np.exp(log_b[0]), -math.inf)
    needed = np.where(first == 0, at_first, needed)
    return np.where(reached.any(axis=-1), needed, math.inf)


def masks_saved(
    treated: Mapping[float, Mapping], reference: Mapping[float, Mapping], higher_is_better=True
) -> list[dict]:
    """Per budget B of both arms ({budget: {(fold, seed): value}}): n (pairs), mean and
    reference_mean at B, the reference arm's equivalent budget ``needed`` with its bootstrap
    interval ``needed_low``/``needed_high``, and ``saved`` (= needed − B) with its interval; the
    interval is NaN under 2 pairs. [] when no pair is shared at every budget (or no budget)."""
    budgets = sorted(set(treated) & set(reference))
    shared = [set(treated[b]) & set(reference[b]) for b in budgets]
    keys = sorted(set.intersection(*shared)) if shared else []
    if not keys:
        return []
    a = np.array([[treated[b][k] for k in keys] for b in budgets])  # [budgets, pairs]
    r = np.array([[reference[b][k] for k in keys] for b in budgets])
    sign = 1.0 if higher_is_better else -1.0
    # the reference curve [1, budgets] against each budget's target [budgets]
    needed = crossing(budgets, sign * r.mean(1)[None], sign * a.mean(1))
    low = high = np.full(len(budgets), math.nan)
    if len(keys) >= 2:
        rng = np.random.default_rng(statistics.BOOTSTRAP_SEED)
        pick = rng.integers(0, len(keys), (statistics.BOOTSTRAP_RESAMPLES, len(keys)))
        curves, targets = r[:, pick].mean(-1).T, a[:, pick].mean(-1).T  # [resamples, budgets]
        boot = crossing(budgets, sign * curves[:, None], sign * targets)
        alpha = 1 - statistics.CONFIDENCE
        low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0, method="inverted_cdf")
    out = []
    for i, b in enumerate(budgets):
        out.append(
            dict(budget=b, n=len(keys), mean=float(a[i].mean()), reference_mean=float(r[i].mean()),
                 needed=float(needed[i]), needed_low=float(low[i]), needed_high=float(high[i]),
                 saved=float(needed[i] - b), saved_low=float(low[i] - b),
                 saved_high=float(high[i] - b))
        )  # fmt: skip
    return out


def format_budget(value: float, budgets) -> str:
    """An equivalent budget (or masks saved, with ``budgets`` shifted by B) for the report:
    '> B_max' for +∞, '< B_min' for −∞, '' for NaN, else 3 significant digits."""
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return f"> {max(budgets):g}" if value > 0 else f"< {min(budgets):g}"
    return f"{value:.3g}"


def markdown_table(rows: list[dict], arm: str, reference: str, budgets) -> str:
    """``masks_saved`` rows as a Markdown table (budget, arm's mean, equivalent budget of the
    reference arm [95 % CI], masks saved [95 % CI])."""
    lines = [
        f"| budget | {arm} mean | {reference} needs [95 % CI] | saved [95 % CI] |",
        "|---:|---:|---|---|",
    ]
    for s in rows:
        shifted = [b - s["budget"] for b in budgets]
        needed = [format_budget(s[k], budgets) for k in ("needed", "needed_low", "needed_high")]
        saved = [format_budget(s[k], shifted) for k in ("saved", "saved_low", "saved_high")]
        lines.append(
            f"| {s['budget']:g} | {s['mean']:.3f} | {needed[0]} [{needed[1]}, {needed[2]}] | "
            f"{saved[0]} [{saved[1]}, {saved[2]}] |"
        )
    return "\n".join(lines)
