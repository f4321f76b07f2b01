"""Compare two networks' representations stage by stage: linear CKA of their activations, and
the Markdown table that sets it beside method 5's weight distance (``jaxseg.eval.weights``).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA (Kornblith et al. 2019) of x [n,p] and y [n,q] (rows are the same n examples):
    ||Yc^T Xc||_F² / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc, in float64.

    In [0, 1]; 1 for identical inputs; invariant to orthogonal maps and isotropic scaling of
    either side. Computed through the n×n Gram matrices when those are smaller (same value).
    NaN when either side is constant over the examples.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"linear_cka takes [n,p] and [n,q] arrays, got {x.shape} and {y.shape}")
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if y.shape[0] != n:
        raise ValueError(f"linear_cka needs the same examples: {n} rows vs {y.shape[0]}")
    if n < 2:
        raise ValueError(f"linear_cka needs at least 2 examples, got {n}")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    if 2 * n * n < p * p + q * q + p * q:
        gx, gy = x @ x.T, y @ y.T  # ||Yc^T Xc||_F² = <Gx, Gy>_F, ||Xc^T Xc||_F = ||Gx||_F
        num, den = np.sum(gx * gy), np.linalg.norm(gx) * np.linalg.norm(gy)
    else:
        num = np.linalg.norm(y.T @ x) ** 2
        den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else float("nan")


def activation_cka(acts_a: dict[str, Any], acts_b: dict[str, Any]) -> dict[str, float]:
    """{path: linear CKA} of two networks' activations [N,h,w,c] of the same N images, per path
    (in ``acts_a``'s order), each flattened to [N, h·w·c]. Both must hold the same paths."""
    only_a, only_b = sorted(set(acts_a) - set(acts_b)), sorted(set(acts_b) - set(acts_a))
    if only_a or only_b:
        raise ValueError(f"activation paths differ: only in a {only_a}, only in b {only_b}")
    out = {}
    for path, a in acts_a.items():
        a, b = np.asarray(a), np.asarray(acts_b[path])
        out[path] = linear_cka(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))
    return out


def similarity_table(cka: dict[str, float], distance: dict[str, float]) -> str:
    """Markdown table `stage | linear CKA | weight distance (RMS)`: one row per key of
    ``distance`` (its order), then the keys only in ``cka``; '—' marks a missing value."""
    keys = list(distance) + [k for k in cka if k not in distance]
    rows = ["| stage | linear CKA | weight distance (RMS) |", "|---|---|---|"]
    for k in keys:
        c = f"{cka[k]:.4f}" if k in cka else "—"
        d = f"{distance[k]:.4g}" if k in distance else "—"
        rows.append(f"| {k} | {c} | {d} |")
    return "\n".join(rows)
