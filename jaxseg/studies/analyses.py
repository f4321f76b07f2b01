"""Study-specific sections of report.md, drawn from a finished study's runs.

- Unfreezing curves (method 2): arms whose last stage trains with freeze preset 'shallow:k' or
  'deep:k' are points (k, mean ± sd) of the shallow→deep / deep→shallow curves, per budget.
- Weight distances (method 5): with ``config.analysis.weight_distances`` = structures
  (X, Y, ...), arm ``X`` trains a scratch net on X and arm ``X_to_Y`` fine-tunes it onto Y;
  the directional distance d(X(s), Y|X(s)) between the scratch and the fine-tuned net
  (method 5's average L2 kernel distance, ``weights.weight_distance``) is computed per depth,
  encoder and decoder stage apart, and over the whole net for every fold × seed, then
  averaged; the matrix (row = from, column = onto) and its asymmetry D - Dᵀ go into the report
  with a heat map.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import defaultdict

import ml_collections
import numpy as np

from jaxseg import plotting
from jaxseg.eval import weights
from jaxseg.studies import figures as figures_lib
from jaxseg.studies import plan as plan_lib
from jaxseg.train import rundir

FIRST_BLOCKS = re.compile(r"^(shallow|deep):(\d+)$")
DIRECTION = {"shallow": "shallow_to_deep", "deep": "deep_to_shallow"}


def unfreeze_points(
    config: ml_collections.ConfigDict, summary: list[dict]
) -> dict[float, dict[str, list[tuple[int, float, float]]]]:
    """{budget: {direction: [(blocks, mean, sd), ...] sorted by blocks}} from the arms whose
    last stage uses a 'shallow:k' / 'deep:k' freeze preset (empty when there are none)."""
    arm_point = {}
    for arm in config.arms:
        last = config.stages[plan_lib.arm_stages(config, arm)[-1]]
        m = FIRST_BLOCKS.match(last.freeze.strip())
        if m:
            arm_point[arm] = (DIRECTION[m.group(1)], int(m.group(2)))
    out: dict[float, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for row in summary:
        if row["arm"] in arm_point:
            direction, k = arm_point[row["arm"]]
            out[row["budget"]][direction].append((k, row["mean"], row["sd"]))
    return {b: {d: sorted(p) for d, p in dirs.items()} for b, dirs in out.items()}


def unfreeze_section(
    config: ml_collections.ConfigDict, workdir: str, summary: list[dict], metric: str
) -> list[str]:
    """Report lines with one unfreezing-curve figure per budget ([] without such arms)."""
    lines = []
    for budget, points in sorted(unfreeze_points(config, summary).items()):
        path = os.path.join("figures", f"unfreeze_{metric}_budget_{budget:g}.png")
        figures_lib.unfreeze_curve(points, os.path.join(workdir, path), metric)
        lines += [f"![{metric} vs trainable blocks, budget {budget:g}]({path})", ""]
    return ["## Which blocks to fine-tune", "", *lines] if lines else []


def weight_distance_matrices(
    config: ml_collections.ConfigDict, workdir: str
) -> tuple[list[str], np.ndarray, dict[tuple[str, str], dict[str, float]], dict]:
    """(structures, D [S,S], per-depth {(from, onto): {group: distance}}, counts {(from, onto):
    fold × seed pairs averaged}), each the mean over the folds run × seeds of the first budget
    whose scratch and fine-tuned runs both finished (a partial study leaves the others out, as
    the report does); D[i,j] = d(X_i(s), X_j|X_i(s)) over the whole net, 0 on the diagonal
    and where no pair finished; per-depth groups ``weights.depth_groups`` (encoder_i,
    decoder_i, bottleneck)."""
    names = list(config.analysis.weight_distances)
    for x in names:
        for arm in [x] + [f"{x}_to_{y}" for y in names if y != x]:
            if arm not in config.arms:
                raise ValueError(
                    f"analysis.weight_distances needs arm {arm!r} (scratch arm X, fine-tune arm "
                    f"X_to_Y); arms are {list(config.arms)}"
                )
    folds = config.protocol.run_folds or config.protocol.folds
    budget = config.protocol.budgets[0]
    sums: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for fold, seed, x, y in itertools.product(range(folds), config.protocol.seeds, names, names):
        if x == y:
            continue
        arm = f"{x}_to_{y}"
        last = len(plan_lib.arm_stages(config, arm)) - 1
        runs = [
            plan_lib.stage_run(config, workdir, x, 0, fold, seed, budget),
            plan_lib.stage_run(config, workdir, arm, last, fold, seed, budget),
        ]
        if any(rundir.read_result(run.workdir) is None for run in runs):
            continue
        scratch, tuned = (weights.load_params(run.workdir) for run in runs)
        d = weights.per_depth(scratch, tuned)
        d["all"] = weights.weight_distance(scratch, tuned)["all"]
        for k, v in d.items():
            sums[(x, y)][k].append(v)
    depth = {pair: {k: float(np.mean(v)) for k, v in d.items()} for pair, d in sums.items()}
    counts = {pair: len(d["all"]) for pair, d in sums.items()}
    matrix = np.zeros((len(names), len(names)))
    for (x, y), d in depth.items():
        matrix[names.index(x), names.index(y)] = d["all"]
    return names, matrix, depth, counts


def weight_distance_section(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """Report lines for method 5's distances ([] unless ``analysis.weight_distances``)."""
    if "analysis" not in config or not config.analysis.get("weight_distances"):
        return []
    names, matrix, depth, counts = weight_distance_matrices(config, workdir)
    planned = (config.protocol.run_folds or config.protocol.folds) * len(config.protocol.seeds)
    title = ["## Weight distances (method 5)", ""]
    if not counts:
        return [*title, "No scratch net and its fine-tuned copy both finished.", ""]
    finished = ", ".join(f"{x}→{y} {n}" for (x, y), n in counts.items())
    path = os.path.join("figures", "weight_distances.png")
    plotting.heatmap(
        matrix, names, os.path.join(workdir, path), "d(X(s), Y|X(s)), row X → column Y"
    )
    columns = {f"{x}→{y}": d for (x, y), d in depth.items()}
    what = weights.DISTANCE_TEXT["l2"]
    profiles = {label: weights.depth_profile(d) for label, d in columns.items()}
    depth_path = os.path.join("figures", "weight_distances_depth.png")
    figures_lib.depth_distances(profiles, os.path.join(workdir, depth_path), "L2 distance")
    return [
        *title,
        f"Distance ({what}) between each scratch net and the same net fine-tuned onto another "
        "structure (row = from, column = onto), mean over the fold × seed pairs whose runs "
        f"finished (of {planned} planned per direction: {finished}):",
        "",
        weights.markdown_matrix(names, matrix),
        "",
        "Asymmetry D − Dᵀ (positive: fine-tuning from the row's structure moved the weights "
        "further than the reverse):",
        "",
        weights.markdown_matrix(names, matrix - matrix.T),
        "",
        "Per depth (encoder_i, decoder_i: encoder and decoder stage i at 1/2^i resolution):",
        "",
        weights.markdown_columns(columns, first="depth"),
        "",
        f"![weight distances]({path})",
        "",
        "Per depth, encoder (solid) and decoder (dashed) stage i, the bottleneck last. L2 grows "
        "with a kernel's size (deeper stages are wider): compare encoder with decoder at one "
        "depth; `jaxseg weights --distance=rms` gives the per-weight RMS instead.",
        "",
        f"![weight distances per depth]({depth_path})",
        "",
    ]
