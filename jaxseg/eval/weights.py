"""Method 5: distances between the learned convolution kernels of networks, per stage, per depth
and as a matrix over several runs.

The distance of two nets over a group of conv kernels is the mean over the group's kernels of
their Euclidean (L2) difference ``||Wa - Wb||_2`` (``weight_distance``), method 5's "average
Euclidean (L2) distance between learned convolution kernel weights"; a *kernel* is one conv
layer's whole weight tensor. ``distance='rms'`` divides each by ``sqrt(W.size)`` (the root-mean-
square difference per weight, comparable across layers of different sizes). For two fixed trees
it is symmetric. Method 5's *asymmetric* bidirectional distances come from *which* nets are
compared: d(A(s), B|A(s)) compares the scratch net of tissue A with the net fine-tuned from it
onto B, d(B(s), A|B(s)) the scratch net of B with the net fine-tuned from it onto A;
``bidirectional`` averages the two and ``asymmetry`` takes their difference.

Groups follow the parameter-tree contract (docs/design.md §2) and are named by selectors
(``surgery.paths``): ``encoder/stage_i``, ``bottleneck``, ``decoder/stage_i``, ``head``, or per
depth ``encoder_i`` / ``decoder_i`` (encoder and decoder stage i apart, so method 5's finding
that fine-tuning moves the shallow *decoder* most can be tested).

CLI: ``jaxseg weights --runs=a=DIR,b=DIR,... [--group=all] [--distance=l2|rms] [--out=DIR]``
(or ``python -m jaxseg.eval.weights ...``) prints the per-stage and per-depth distances of every
pair and the distance matrix of ``--group``, and with ``--out`` writes ``weights.md``,
``weight_matrix.csv`` and ``weight_matrix.png``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxseg import checkpoint, plotting
from jaxseg.checkpoint import flatten
from jaxseg.surgery import paths

# ---- groups and kernels ----------------------------------------------------------------------


def _stage_indices(params: Any, part: str) -> list[int]:
    """The sorted i of the ``part/stage_i`` subtrees of ``params`` (nested or flat)."""
    found = set()
    for p in flatten(params):
        keys = p.split("/")
        if len(keys) > 1 and keys[0] == part and re.fullmatch(r"stage_\d+", keys[1]):
            found.add(int(keys[1][6:]))
    return sorted(found)


def stage_groups(params: Any) -> dict[str, str]:
    """{group name: selector} of the U-Net stages present in ``params`` (nested or flat), along
    the longest path: encoder/stage_0..L-1, bottleneck, decoder/stage_L-1..0, head."""
    roots = {p.split("/")[0] for p in flatten(params)}
    names = [f"encoder/stage_{i}" for i in _stage_indices(params, "encoder")]
    names += ["bottleneck"] if "bottleneck" in roots else []
    names += [f"decoder/stage_{i}" for i in reversed(_stage_indices(params, "decoder"))]
    names += ["head"] if "head" in roots else []
    return {name: name for name in names}


def depth_groups(params: Any) -> dict[str, str]:
    """{group name: selector} per resolution level, shallow to deep, encoder and decoder apart:
    ``encoder_i`` = ``encoder/stage_i`` and ``decoder_i`` = ``decoder/stage_i`` (the stages at
    1/2^i; a part without stage i is left out), then ``bottleneck``. The head is in no level."""
    enc, dec = set(_stage_indices(params, "encoder")), set(_stage_indices(params, "decoder"))
    groups = {}
    for i in sorted(enc | dec):
        for part, present in (("encoder", enc), ("decoder", dec)):
            if i in present:
                groups[f"{part}_{i}"] = f"{part}/stage_{i}"
    if any(p.split("/")[0] == "bottleneck" for p in flatten(params)):
        groups["bottleneck"] = "bottleneck"
    return groups


def conv_kernels(params: Any) -> dict[str, np.ndarray]:
    """{path: kernel} of the convolution (and transposed-convolution) kernels: the leaves named
    'kernel' with ndim ≥ 3 (dense kernels are 2-D and left out)."""
    return {
        p: np.asarray(v)
        for p, v in flatten(params).items()
        if p.rsplit("/", 1)[-1] == "kernel" and np.ndim(v) >= 3
    }


# ---- distances -------------------------------------------------------------------------------


DISTANCES = ("l2", "rms")  # per kernel: ||Wa - Wb||_2, or that / sqrt(W.size)


def check_distance(distance: str) -> None:
    """ValueError naming ``distance`` unless it is one of ``DISTANCES``."""
    if distance not in DISTANCES:
        raise ValueError(f"distance={distance!r} is unknown; use one of {list(DISTANCES)}")


def kernel_distance(a: np.ndarray, b: np.ndarray, distance: str = "l2") -> float:
    """The distance of two kernels of one shape (float64): 'l2' = ``||a - b||_2`` over all their
    weights (method 5), 'rms' = that / ``sqrt(a.size)``."""
    check_distance(distance)
    norm = float(np.linalg.norm((np.asarray(a, np.float64) - b).ravel()))
    return norm / np.sqrt(np.size(a)) if distance == "rms" else norm


def weight_distance(
    params_a: Any, params_b: Any, groups: dict[str, str] | None = None, distance: str = "l2"
) -> dict[str, float]:
    """{group: mean over the group's conv kernels (``conv_kernels``) of ``kernel_distance``},
    plus 'all' over every conv kernel of the net: by default the average Euclidean (L2)
    distance of method 5, with ``distance='rms'`` the average root-mean-square difference.
    Symmetric in a and b.

    ``groups`` maps names to selectors (default ``stage_groups(params_a)``); a group without
    conv kernels (e.g. a dense head) is left out. Raises when the trees' conv kernels differ in
    paths or shapes, or a selector selects no parameter.
    """
    check_distance(distance)
    ka, kb = conv_kernels(params_a), conv_kernels(params_b)
    missing = sorted(set(ka) ^ set(kb))
    if missing:
        raise ValueError(f"conv kernels in only one tree: {missing}")
    shapes = [f"{p}: {ka[p].shape} vs {kb[p].shape}" for p in ka if ka[p].shape != kb[p].shape]
    if shapes:
        raise ValueError(f"conv kernel shapes differ: {shapes}")
    per_kernel = {p: kernel_distance(ka[p], kb[p], distance) for p in ka}
    out = {}
    flat = list(flatten(params_a))
    for name, spec in (stage_groups(params_a) if groups is None else groups).items():
        regex = paths.selector(spec)
        if not any(paths.matches(regex, p) for p in flat):
            raise ValueError(f"group {name!r}: selector {spec!r} selects no parameter")
        values = [d for p, d in per_kernel.items() if paths.matches(regex, p)]
        if values:
            out[name] = float(np.mean(values))
    if per_kernel:
        out["all"] = float(np.mean(list(per_kernel.values())))
    return out


def per_depth(params_a: Any, params_b: Any, distance: str = "l2") -> dict[str, float]:
    """{'encoder_0', 'decoder_0', ..., 'encoder_{L-1}', 'decoder_{L-1}', 'bottleneck':
    distance}: ``weight_distance`` per depth with encoder and decoder stage i apart
    (``depth_groups``), the per-depth profile that method 5 plots (enc_layer i, dec_layer i).
    Groups without conv kernels are left out."""
    out = weight_distance(params_a, params_b, depth_groups(params_a), distance)
    out.pop("all", None)
    return out


def depth_profile(distances: Mapping[str, float]) -> dict[str, list[tuple[int, float]]]:
    """``per_depth``'s {'encoder_i'/'decoder_i'/'bottleneck': d} (other keys ignored) as
    {'encoder': [(i, d), ...], 'decoder': [(i, d), ...]} sorted by depth i, the bottleneck at
    depth L (one past the deepest stage) closing both paths: the two curves of method 5's
    encoder-vs-decoder comparison. A part without stages is left out."""
    out: dict[str, list[tuple[int, float]]] = {}
    for key, value in distances.items():
        part, _, index = key.partition("_")
        if part in ("encoder", "decoder") and index.isdigit():
            out.setdefault(part, []).append((int(index), float(value)))
    out = {part: sorted(points) for part, points in out.items()}
    if "bottleneck" in distances:
        deepest = 1 + max((i for points in out.values() for i, _ in points), default=-1)
        for points in out.values():
            points.append((deepest, float(distances["bottleneck"])))
    return out


def _check_same_keys(d_ab: Mapping[str, float], d_ba: Mapping[str, float]) -> None:
    if set(d_ab) != set(d_ba):
        raise ValueError(
            f"keys differ: only in d_ab {sorted(set(d_ab) - set(d_ba))}, "
            f"only in d_ba {sorted(set(d_ba) - set(d_ab))}"
        )


def bidirectional(d_ab: dict[str, float], d_ba: dict[str, float]) -> dict[str, float]:
    """{key: (d_ab + d_ba) / 2}: the mean of the two directional distances (d(A(s), B|A(s)) and
    d(B(s), A|B(s))), in ``d_ab``'s order. Both must hold the same keys."""
    _check_same_keys(d_ab, d_ba)
    return {k: (d_ab[k] + d_ba[k]) / 2 for k in d_ab}


def asymmetry(d_ab: dict[str, float], d_ba: dict[str, float]) -> dict[str, float]:
    """{key: d_ab - d_ba}, in ``d_ab``'s order: how much further fine-tuning moved A's scratch
    net towards B (d(A(s), B|A(s))) than B's towards A (d(B(s), A|B(s))). Method 5 reads a
    positive value for (F, T) as: fine-tuning from F onto T moves the weights further than
    fine-tuning from T onto F. Both must hold the same keys."""
    _check_same_keys(d_ab, d_ba)
    return {k: d_ab[k] - d_ba[k] for k in d_ab}


def distance_matrix(
    params: Mapping[str, Any],
    groups: dict[str, str] | None = None,
    group: str = "all",
    distance: str = "l2",
) -> tuple[list[str], np.ndarray]:
    """(labels, D [R,R]) with D[i,j] = ``weight_distance(params[i], params[j], groups,
    distance)[group]`` for the R labelled trees of ``params``: zero diagonal and symmetric by
    construction (the distance of two fixed trees is symmetric, so only i < j are computed).

    Method 5's asymmetry is not a property of this matrix: it arises from which nets are compared
    (e.g. A(s) vs B|A(s) against B(s) vs A|B(s)); put those nets in ``params`` and read the two
    entries, or use ``asymmetry``. ``groups`` defaults to ``stage_groups`` of the first tree;
    ``group`` must be 'all' or one of its names. Raises on trees whose conv kernels differ.
    """
    labels = list(params)
    trees = [params[k] for k in labels]
    matrix = np.zeros((len(labels), len(labels)))
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            d = weight_distance(trees[i], trees[j], groups, distance)
            if group not in d:
                raise ValueError(f"group {group!r} has no conv kernel; groups: {list(d)}")
            matrix[i, j] = matrix[j, i] = d[group]
    return labels, matrix


# ---- I/O -------------------------------------------------------------------------------------


def checkpoint_dir(path: str) -> str:
    """The orbax checkpoint directory of ``path``: for a stage directory (holding
    ``checkpoints/``) that of its best validated step when it kept one, else ``checkpoints/``
    (``checkpoint.run_weights``); else ``path`` itself. Raises FileNotFoundError when the
    directory does not exist."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no such directory: {path}")
    if os.path.isdir(os.path.join(path, checkpoint.LATEST)):
        return checkpoint.run_weights(path)[0]
    return path


def load_params(workdir_or_ckpt: str, step: int | None = None) -> dict[str, Any]:
    """The ``params`` tree (numpy arrays) of a stage directory's best validated (else latest)
    checkpoint, or of the latest (or given) step of a checkpoints directory itself."""
    directory = checkpoint_dir(workdir_or_ckpt)
    variables = checkpoint.load_variables(directory, step, collections=("params",))
    if not variables["params"]:
        raise ValueError(f"the checkpoint under {directory} holds no params")
    return checkpoint.unflatten({p: np.asarray(v) for p, v in flatten(variables["params"]).items()})


def markdown_matrix(labels: Sequence[str], matrix: Any, fmt: str = ".4g") -> str:
    """Markdown table of a square matrix: a header row of ``labels``, then one row per label with
    its values formatted by ``fmt``."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"matrix of shape {matrix.shape} for {len(labels)} labels")
    rows = ["| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, values in zip(labels, matrix, strict=True):
        rows.append(f"| {label} | " + " | ".join(format(v, fmt) for v in values) + " |")
    return "\n".join(rows)


def markdown_columns(
    columns: Mapping[str, Mapping[str, float]], first: str = "stage", fmt: str = ".4g"
) -> str:
    """Markdown table with one column per entry of ``columns`` ({column: {row: value}}) and one
    row per key in order of first appearance; '—' marks a missing value."""
    keys = list(dict.fromkeys(k for col in columns.values() for k in col))
    rows = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for k in keys:
        cells = (format(col[k], fmt) if k in col else "—" for col in columns.values())
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def csv_matrix(labels: Sequence[str], matrix: Any) -> str:
    """CSV of a square matrix: header ``,label...``, then ``label,value...`` rows (repr floats)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *labels])
    for label, values in zip(labels, np.asarray(matrix), strict=True):
        writer.writerow([label, *(repr(float(v)) for v in values)])
    return out.getvalue()


# ---- CLI -------------------------------------------------------------------------------------


def parse_runs(items: Sequence[str]) -> dict[str, str]:
    """['a=DIR', ...] -> {'a': 'DIR'}; a bare DIR is labelled by its last path component."""
    runs = {}
    for item in items:
        label, sep, path = item.partition("=")
        label, path = (label, path) if sep else (item.rstrip("/").split("/")[-1], item)
        if label in runs:
            raise ValueError(f"--runs names {label!r} twice")
        runs[label] = path
    return runs


DISTANCE_TEXT = {
    "l2": "mean over conv kernels of the Euclidean (L2) norm of the kernel difference",
    "rms": "mean over conv kernels of the root-mean-square kernel difference",
}


def report(
    runs: Mapping[str, str],
    group: str = "all",
    out_dir: str | None = None,
    distance: str = "l2",
) -> str:
    """Load the ``runs`` ({label: stage or checkpoints dir}), compare every pair by ``distance``
    (``DISTANCES``) and return the Markdown report; with ``out_dir``, also write weights.md,
    weight_matrix.csv and the heat map weight_matrix.png."""
    if len(runs) < 2:
        raise ValueError(f"--runs needs at least two runs to compare, got {list(runs)}")
    params = {label: load_params(path) for label, path in runs.items()}
    first = next(iter(params.values()))
    groups = {**stage_groups(first), **depth_groups(first)}
    labels = list(params)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    stages = {
        f"{a} vs {b}": weight_distance(params[a], params[b], None, distance) for a, b in pairs
    }
    depths = {f"{a} vs {b}": per_depth(params[a], params[b], distance) for a, b in pairs}
    labels, matrix = distance_matrix(params, groups, group, distance)
    text = "\n".join([
        "# Weight distances (method 5)",
        "",
        "Runs: " + ", ".join(f"{k} = `{v}`" for k, v in runs.items()) + ".",
        f"Distance: {DISTANCE_TEXT[distance]} (symmetric per pair).",
        "",
        "## Per stage",
        "",
        markdown_columns(stages),
        "",
        "## Per depth (encoder and decoder stage i apart)",
        "",
        markdown_columns(depths, first="depth"),
        "",
        f"## Matrix ({group})",
        "",
        markdown_matrix(labels, matrix),
    ])  # fmt: skip
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "weight_matrix.csv"), "w") as f:
            f.write(csv_matrix(labels, matrix))
        plotting.heatmap(
            matrix, labels, os.path.join(out_dir, "weight_matrix.png"), f"weight distance ({group})"
        )
        text += "\n\n![weight matrix](weight_matrix.png)"
        with open(os.path.join(out_dir, "weights.md"), "w") as f:
            f.write(text + "\n")
    return text


def parser() -> argparse.ArgumentParser:
    """The CLI's arguments (``jaxseg weights`` = ``python -m jaxseg.eval.weights``)."""
    p = argparse.ArgumentParser(
        prog="jaxseg weights", description="Method 5: distances between runs' conv kernels."
    )
    p.add_argument(
        "--runs",
        type=lambda text: text.split(","),
        default=None,
        help="label=DIR pairs, comma-separated (stage or checkpoints dirs)",
    )
    p.add_argument(
        "--group", default="all", help="matrix group: all, a stage, encoder_i or decoder_i"
    )
    p.add_argument(
        "--distance",
        default="l2",
        choices=DISTANCES,
        help="per-kernel distance: l2 (method 5, default) or rms (l2 / sqrt(kernel size))",
    )
    p.add_argument("--out", default=None, help="directory for weights.md and the matrix")
    p.add_argument(
        "--verbosity",
        type=int,
        default=None,
        help="absl logging verbosity (default: warnings only; 0 shows info)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the report of ``--runs``; returns the exit status (0 ok, 1 bad input with one
    'error: ...' line on stderr, 2 usage)."""
    from absl import logging

    args = parser().parse_args(argv)
    logging.set_verbosity(logging.WARNING if args.verbosity is None else args.verbosity)
    try:
        if not args.runs:
            raise ValueError("--runs is required, e.g. --runs=a=DIR,b=DIR")
        print(report(parse_runs(args.runs), args.group, args.out, args.distance))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
