"""Study-specific sections of report.md, drawn from a finished study's runs.

- Unfreezing curves (method 2): arms whose last stage trains with freeze preset 'shallow:k' or
  'deep:k' are points (k, mean ± sd) of the shallow→deep / deep→shallow curves, per budget.
- Weight distances (method 5): with ``config.analysis.weight_distances`` = structures
  (X, Y, ...), arm ``X`` trains a scratch net on X and arm ``X_to_Y`` fine-tunes it onto Y;
  the directional distance d(X(s), Y|X(s)) between the scratch and the fine-tuned net
  (method 5's average L2 kernel distance, ``weights.weight_distance``) is computed per depth,
  encoder and decoder stage apart, and over the whole net for every fold × seed, then
  averaged; the matrix (row = from, column = onto) and its asymmetry D - Dᵀ go into the report
  with a heat map, and paired tests over (fold, seed): the asymmetry, and whether a fine-tuned
  copy stays nearer its start than the target's own scratch net.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import defaultdict
from typing import Any

import ml_collections
import numpy as np

from jaxseg import plotting
from jaxseg.eval import weights
from jaxseg.studies import figures as figures_lib
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import statistics
from jaxseg.train import rundir

FIRST_BLOCKS = re.compile(r"^(shallow|deep):(\d+)$")
DIRECTION = {"shallow": "shallow_to_deep", "deep": "deep_to_shallow"}
RUN_EXTRAS = ("to_target", "evaluated_step")  # weight_distance_runs' keys that are no group


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


def weight_distance_runs(
    config: ml_collections.ConfigDict, workdir: str
) -> dict[tuple[str, str], dict[tuple[int, int], dict[str, float]]]:
    """{(X, Y): {(fold, seed): distances}} of the first budget's finished runs: per-depth
    groups (``weights.per_depth``: encoder_i, decoder_i, bottleneck) and 'all' of
    d(X(s), Y|X(s)), the scratch net X against its copy fine-tuned onto Y, and 'to_target'
    d(Y(s), Y|X(s)), the fine-tuned copy against Y's own scratch net (when that finished too),
    and 'evaluated_step', the step of the copy's checkpoint measured (its best validated one).
    A (fold, seed) whose scratch X or X_to_Y has no result is left out (a partial study)."""
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
    out: dict[tuple[str, str], dict[tuple[int, int], dict[str, float]]] = defaultdict(dict)
    for fold, seed in itertools.product(range(folds), config.protocol.seeds):
        at = {x: plan_lib.stage_run(config, workdir, x, 0, fold, seed, budget) for x in names}
        scratch = _finished_params({x: run.workdir for x, run in at.items()})
        for x, y in itertools.permutations(names, 2):
            arm = f"{x}_to_{y}"
            last = len(plan_lib.arm_stages(config, arm)) - 1
            tuned = plan_lib.stage_run(config, workdir, arm, last, fold, seed, budget).workdir
            result = rundir.read_result(tuned)
            if x not in scratch or result is None:
                continue
            moved = weights.load_params(tuned)
            d = weights.per_depth(scratch[x], moved)
            d["all"] = weights.weight_distance(scratch[x], moved)["all"]
            d["evaluated_step"] = result["evaluated_step"]
            if y in scratch:
                d["to_target"] = weights.weight_distance(scratch[y], moved)["all"]
            out[(x, y)][(fold, seed)] = d
    return dict(out)


def _finished_params(runs: dict[str, str]) -> dict[str, Any]:
    """{name: parameters} of the ``runs`` ({name: workdir}) that finished, each loaded once."""
    return {x: weights.load_params(w) for x, w in runs.items() if rundir.read_result(w) is not None}


def weight_distance_matrices(
    names: list[str], runs: dict[tuple[str, str], dict[tuple[int, int], dict[str, float]]]
) -> tuple[np.ndarray, dict[tuple[str, str], dict[str, float]]]:
    """(D [S,S], per-depth {(X, Y): {group: mean}}) of ``weight_distance_runs``' values, each the
    mean over the (fold, seed) runs that finished; D[i,j] = d(X_i(s), X_j|X_i(s)) over the
    whole net, 0 on the diagonal and where no run finished."""
    depth = {
        pair: {k: float(np.mean([d[k] for d in by_run.values()])) for k in _groups(by_run)}
        for pair, by_run in runs.items()
    }
    matrix = np.zeros((len(names), len(names)))
    for (x, y), d in depth.items():
        matrix[names.index(x), names.index(y)] = d["all"]
    return matrix, depth


def _groups(by_run: dict[tuple[int, int], dict[str, float]]) -> list[str]:
    """The distance groups every run holds, in the first run's order (not ``RUN_EXTRAS``)."""
    first = next(iter(by_run.values()))
    return [k for k in first if k not in RUN_EXTRAS and all(k in d for d in by_run.values())]


def weight_distance_tests(
    names: list[str],
    runs: dict[tuple[str, str], dict[tuple[int, int], dict[str, float]]],
    correction: str = "holm",
) -> list[dict]:
    """Paired tests over (fold, seed) of the whole-net distances (``statistics.compare``, p
    corrected by ``correction`` over the tests returned): each unordered pair's asymmetry
    d(X(s), Y|X(s)) − d(Y(s), X|Y(s)), and for each direction whether the fine-tuned copy
    stays nearer its own start than Y's scratch net, d(Y(s), Y|X(s)) − d(X(s), Y|X(s))
    (method 5: 6.45e-2 against 8.17e-3). Each: {'test', 'a', 'b', **compare, 'p_t_corrected'}."""

    def values(pair, key):
        return {k: d[key] for k, d in runs.get(pair, {}).items() if key in d}

    tests = []
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            a, b = values((x, y), "all"), values((y, x), "all")
            tests.append(dict(test=f"asymmetry {x}→{y} − {y}→{x}", a=a, b=b))
    for x, y in runs:
        a, b = values((x, y), "to_target"), values((x, y), "all")
        tests.append(dict(test=f"{x}→{y}: to {y}'s scratch net − to its start", a=a, b=b))
    tests = [{**t, **statistics.compare(t["a"], t["b"])} for t in tests]
    corrected = statistics.correct([t["p_t"] for t in tests], correction)
    return [{**t, "p_t_corrected": float(q)} for t, q in zip(tests, corrected, strict=True)]


def weight_distance_section(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """Report lines for method 5's distances ([] unless ``analysis.weight_distances``)."""
    if "analysis" not in config or not config.analysis.get("weight_distances"):
        return []
    names = list(config.analysis.weight_distances)
    runs = weight_distance_runs(config, workdir)
    title = ["## Weight distances (method 5)", ""]
    if not runs:
        return [*title, "No scratch net and its fine-tuned copy both finished.", ""]
    matrix, depth = weight_distance_matrices(names, runs)
    planned = (config.protocol.run_folds or config.protocol.folds) * len(config.protocol.seeds)
    finished = ", ".join(f"{x}→{y} {len(by_run)}" for (x, y), by_run in runs.items())
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
        *_test_lines(weight_distance_tests(names, runs, config.get("correction", "holm"))),
        f"p corrected ({statistics.correction_name(config.get('correction', 'holm'))}) over "
        "the tests of this table. A fine-tuned copy nearer its start than the target's own "
        "scratch net (a positive second kind) is method 5's observation.",
        "",
        "Each distance is to the fine-tuned copy's best validated checkpoint; a direction whose "
        "best came earlier moved for fewer steps (mean step measured: "
        + ", ".join(
            f"{x}→{y} {np.mean([d['evaluated_step'] for d in by_run.values()]):.0f}"
            for (x, y), by_run in runs.items()
        )
        + ").",
        "",
    ]


def _test_lines(tests: list[dict]) -> list[str]:
    """A markdown table of ``weight_distance_tests``."""
    lines = [
        "Paired over the (fold, seed) runs both values have (whole net; 95 % CIs by t and BCa "
        "bootstrap):",
        "",
        "| test | pairs | diff [95 % CI, t] | 95 % CI, bootstrap | p (t) | p (t, corrected) |",
        "|---|---:|---|---|---:|---:|",
    ]
    for t in tests:
        lines.append(
            f"| {t['test']} | {t['n']} | {t['diff']:.4g} [{t['ci_t_low']:.4g}, "
            f"{t['ci_t_high']:.4g}] | [{t['ci_boot_low']:.4g}, {t['ci_boot_high']:.4g}] | "
            f"{t['p_t']:.3g} | {t['p_t_corrected']:.3g} |"
        )
    return [*lines, ""]
