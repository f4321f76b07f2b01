"""Compare two networks stage by stage: representation similarity (linear CKA of activations)
and the distance between their learned convolution kernels, as a Markdown table.

Stages follow the parameter-tree contract (docs/design.md §2): ``encoder/stage_i``,
``bottleneck``, ``decoder/stage_i`` and ``head``, named by selectors (``surgery.paths``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxseg.checkpoint import flatten
from jaxseg.surgery import paths


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


def stage_groups(params: Any) -> dict[str, str]:
    """{group name: selector} of the U-Net stages present in ``params`` (nested or flat), along
    the longest path: encoder/stage_0..L-1, bottleneck, decoder/stage_L-1..0, head."""
    keys = [p.split("/") for p in flatten(params)]
    roots = {k[0] for k in keys}

    def stages(part: str) -> list[int]:
        found = {int(k[1][6:]) for k in keys if k[0] == part and re.fullmatch(r"stage_\d+", k[1])}
        return sorted(found)

    names = [f"encoder/stage_{i}" for i in stages("encoder")]
    names += ["bottleneck"] if "bottleneck" in roots else []
    names += [f"decoder/stage_{i}" for i in reversed(stages("decoder"))]
    names += ["head"] if "head" in roots else []
    return {name: name for name in names}


def conv_kernels(params: Any) -> dict[str, np.ndarray]:
    """{path: kernel} of the convolution (and transposed-convolution) kernels: the leaves named
    'kernel' with ndim ≥ 3 (dense kernels are 2-D and left out)."""
    return {
        p: np.asarray(v)
        for p, v in flatten(params).items()
        if p.rsplit("/", 1)[-1] == "kernel" and np.ndim(v) >= 3
    }


def weight_distance(
    params_a: Any, params_b: Any, groups: dict[str, str] | None = None
) -> dict[str, float]:
    """{group: mean over the group's conv kernels of ||Wa - Wb||_2 / sqrt(Wa.size)}, i.e. the
    average root-mean-square difference of their convolution kernels (``conv_kernels``), plus
    'all' over every conv kernel of the net.

    ``groups`` maps names to selectors (default ``stage_groups(params_a)``); a group without
    conv kernels (e.g. a dense head) is left out. Raises when the trees' conv kernels differ in
    paths or shapes, or a selector selects no parameter.
    """
    ka, kb = conv_kernels(params_a), conv_kernels(params_b)
    missing = sorted(set(ka) ^ set(kb))
    if missing:
        raise ValueError(f"conv kernels in only one tree: {missing}")
    shapes = [f"{p}: {ka[p].shape} vs {kb[p].shape}" for p in ka if ka[p].shape != kb[p].shape]
    if shapes:
        raise ValueError(f"conv kernel shapes differ: {shapes}")
    rms = {
        p: float(np.linalg.norm((ka[p].astype(np.float64) - kb[p]).ravel()) / np.sqrt(ka[p].size))
        for p in ka
    }
    out = {}
    flat = list(flatten(params_a))
    for name, spec in (stage_groups(params_a) if groups is None else groups).items():
        regex = paths.selector(spec)
        if not any(paths.matches(regex, p) for p in flat):
            raise ValueError(f"group {name!r}: selector {spec!r} selects no parameter")
        values = [d for p, d in rms.items() if paths.matches(regex, p)]
        if values:
            out[name] = float(np.mean(values))
    if rms:
        out["all"] = float(np.mean(list(rms.values())))
    return out


def bidirectional(d_ab: dict[str, float], d_ba: dict[str, float]) -> dict[str, float]:
    """{key: (d_ab + d_ba) / 2}: the mean of the two directional distances (d(A(s), B|A(s)) and
    d(B(s), A|B(s))), in ``d_ab``'s order. Both must hold the same keys."""
    if set(d_ab) != set(d_ba):
        raise ValueError(
            f"keys differ: only in d_ab {sorted(set(d_ab) - set(d_ba))}, "
            f"only in d_ba {sorted(set(d_ba) - set(d_ab))}"
        )
    return {k: (d_ab[k] + d_ba[k]) / 2 for k in d_ab}


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
