"""PNG figures of a study: metric vs label budget with corrected significance marks (method 1),
metric vs trainable blocks when unfreezing progressively (method 2), validation curves over
steps (method 4) and prediction overlays per arm; annotated heat maps (e.g. weight distances) are
``jaxseg.plotting.heatmap``.

Figures are built with ``jaxseg.plotting`` (``matplotlib.figure.Figure`` on an explicit Agg
canvas, no pyplot), so nothing global in matplotlib changes. Line plots are ``PLOT_IN``
inches at ``DPI`` (the budget figure taller by its rows of stars and title, and wider with its
legend outside past ``LEGEND_INSIDE`` arms); image grids are ``TILE_IN``-inch tiles. Every
function checks its input, raises ``ValueError`` naming what is wrong, writes ``out_path``
(creating its directory) and returns it.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from absl import logging
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator, NullLocator

from jaxseg.eval import summary as metric_summary
from jaxseg.plotting import TILE_IN, blank, grey, new_figure, save_png
from jaxseg.studies import statistics

PLOT_IN = (5.0, 3.5)
TITLE_CHARS = 72  # of an 8-pt title line across PLOT_IN's width
STAR_ROW_PT = 11  # points between the budget figure's rows of stars (one row per pair)
TITLE_LINE_PT = 10  # of an 8-pt title line
LEGEND_INSIDE = 6  # arms whose legend fits inside the axes; more go to a column on the right
LEGEND_IN = 1.4  # inches the figure widens for that column
COLORS = colormaps["tab10"].colors
WIDE_COLORS = colormaps["tab20"].colors  # for 11-20 series; more are spread over "turbo"
DIRECTIONS = ("shallow_to_deep", "deep_to_shallow")
OVERLAY_ALPHA = 0.45


def series_colors(n: int) -> list[tuple]:
    """``n`` distinct RGB(A) colours, one per series of a plot: tab10 up to 10 (the figures of
    small studies keep their colours), tab20 up to 20, beyond that ``n`` points along "turbo".
    Reusing tab10 past 10 arms drew method 2's 16 arms in 10 colours."""
    if n <= len(COLORS):
        return list(COLORS[:n])
    if n <= len(WIDE_COLORS):
        return list(WIDE_COLORS[:n])
    return [tuple(c) for c in colormaps["turbo"](np.linspace(0.05, 0.95, n))]


def significance(p: float) -> str:
    """'**' for p < 0.01, '*' for p < 0.05, '' otherwise (and for NaN)."""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def _budget_label(budget: float) -> str:
    return str(int(budget)) if float(budget).is_integer() else f"{budget:g}"


def _log_x(xs: Sequence[float]) -> bool:
    """Whether positive x values spread enough (×4) to read better on a log axis."""
    return min(xs) > 0 and max(xs) / min(xs) >= 4


def _dodge(xs: np.ndarray, i: int, k: int, log: bool, span: float) -> np.ndarray:
    """x of series ``i`` of ``k`` shifted slightly, so error bars at one x do not overlap."""
    offset = i - (k - 1) / 2
    return xs * 2 ** (0.04 * offset) if log else xs + 0.01 * span * offset


def _nan_to_zero(values: Iterable[float]) -> np.ndarray:
    """Error-bar lengths: NaN (an sd of one value) drawn as no bar."""
    return np.nan_to_num(np.asarray(list(values), float), nan=0.0)


def budget_curve(
    summary_rows: list[dict],
    comparisons: list[dict],
    metric: str,
    out_path: str,
    correction: str = "holm",
) -> str:
    """``metric`` (mean ± sd) vs label budget, one line per arm, from ``results.summarize`` rows;
    above each budget where a pair of ``results.comparisons`` has a corrected paired-t p
    (``p_t_corrected``, by ``correction``) < 0.05 a '*' (< 0.01: '**'), one row of marks per
    pair (the title says which). A log x axis when the budgets span a factor of 4 or more."""
    rows = [r for r in summary_rows if r["metric"] == metric]
    if not rows:
        metrics = sorted({r["metric"] for r in summary_rows})
        raise ValueError(f"no summary rows for metric {metric!r}; the rows have {metrics}")
    by_arm: dict[str, dict[float, dict]] = defaultdict(dict)
    for r in rows:
        budget = float(r["budget"])
        if budget in by_arm[r["arm"]]:
            raise ValueError(f"two summary rows for arm {r['arm']!r} at budget {budget:g}")
        by_arm[r["arm"]][budget] = r
    pairs = list(dict.fromkeys((c["arm"], c["reference"]) for c in comparisons))
    unknown = [a for pair in pairs for a in pair if a not in by_arm]
    if unknown:
        raise ValueError(f"comparisons name arms {unknown}; arms are {list(by_arm)}")
    budgets = sorted({b for points in by_arm.values() for b in points})
    log = _log_x(budgets)
    span = (budgets[-1] - budgets[0]) or 1.0
    title = stars_title(pairs, correction)
    # the figure grows by the rows of stars and the title's lines, so the axes keep their height
    above_in = (STAR_ROW_PT * len(pairs) + TITLE_LINE_PT * (title.count("\n") + 1)) / 72
    outside = len(by_arm) > LEGEND_INSIDE
    fig = new_figure(PLOT_IN[0] + LEGEND_IN * outside, PLOT_IN[1] + above_in)
    ax = fig.subplots()
    colors = series_colors(len(by_arm))
    for i, (arm, points) in enumerate(by_arm.items()):
        xs = np.array(sorted(points))
        ax.errorbar(
            _dodge(xs, i, len(by_arm), log, span),
            [points[b]["mean"] for b in xs],
            yerr=_nan_to_zero(points[b]["sd"] for b in xs),
            marker="o", capsize=3, label=arm, color=colors[i],
        )  # fmt: skip
    for c in comparisons:
        mark = significance(float(c.get("p_t_corrected", math.nan)))
        budget = float(c["budget"])
        if mark and c["metric"] == metric:
            top = max(
                p[budget]["mean"] + _nan_to_zero([p[budget]["sd"]])[0]
                for p in by_arm.values()
                if budget in p
            )
            row = pairs.index((c["arm"], c["reference"]))
            ax.annotate(mark, (budget, top), xytext=(0, 4 + STAR_ROW_PT * row),
                        textcoords="offset points",
                        ha="center", va="bottom", fontsize=12)  # fmt: skip
    if log:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(budgets, [_budget_label(b) for b in budgets])
    ax.margins(x=0.08, y=0.15 + 0.05 * max(len(pairs) - 1, 0))
    # the title clears the rows of stars, which stand up to 4 + 11 · row points above the arms
    ax.set_title(title, fontsize=8, pad=4 + STAR_ROW_PT * len(pairs))
    _finish(ax, "label budget", f"{metric_summary.label(metric)} (mean ± sd)", outside=outside)
    return save_png(fig, out_path)


def stars_title(pairs: Sequence[tuple[str, str]], correction: str) -> str:
    """The budget figure's title: what the stars mean and which pair each row of stars is,
    wrapped to lines of at most ``TITLE_CHARS`` (five pairs would run off the figure)."""
    order = "; ".join(f"{a} vs {b}" for a, b in pairs)
    order = f"rows bottom to top: {order}" if len(pairs) > 1 else order
    name = statistics.correction_name(correction)
    return f"* p<0.05, ** p<0.01, paired t, {name}-corrected\n" + textwrap.fill(order, TITLE_CHARS)


def _finish(
    ax: Axes, xlabel: str, ylabel: str, integer_x: bool = False, outside: bool = False
) -> None:
    """Axis labels, a light grid and the legend shared by the line plots (``outside``: in a
    column right of the axes, for more arms than fit inside)."""
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if outside:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)


def _check_points(name: str, points: object, width: int) -> list[tuple]:
    """``points`` as a non-empty list of ``width``-tuples of finite-or-NaN numbers."""
    if isinstance(points, str | bytes) or not isinstance(points, Iterable):
        raise ValueError(f"{name}: expected a list of {width}-tuples, got {type(points).__name__}")
    out = [tuple(p) for p in points]
    if not out:
        raise ValueError(f"{name}: no points")
    bad = [p for p in out if len(p) != width]
    if bad:
        raise ValueError(f"{name}: points must have {width} values, got {bad[0]}")
    return sorted(out)


def unfreeze_curve(
    points: dict[str, list[tuple[int, float, float]]],
    out_path: str,
    metric: str = metric_summary.HEADLINE,
) -> str:
    """``metric`` (mean ± sd) vs number of trainable blocks, one line per unfreezing direction
    (keys of ``DIRECTIONS``); points are (blocks, mean, sd)."""
    if not points:
        raise ValueError(f"no directions given; expected some of {DIRECTIONS}")
    unknown = [d for d in points if d not in DIRECTIONS]
    if unknown:
        raise ValueError(f"unknown directions {unknown}; expected some of {DIRECTIONS}")
    checked = {d: _check_points(d, p, 3) for d, p in points.items()}
    fig = new_figure(*PLOT_IN)
    ax = fig.subplots()
    for d, pts in checked.items():
        blocks, means, sds = zip(*pts, strict=True)
        ax.errorbar(blocks, means, yerr=_nan_to_zero(sds), marker="o", capsize=3,
                    label=d.replace("_", " "), color=COLORS[DIRECTIONS.index(d)])  # fmt: skip
    _finish(ax, "trainable blocks", f"{metric} (mean ± sd)", integer_x=True)
    return save_png(fig, out_path)


def convergence(curves: dict[str, list[tuple[int, float]]], out_path: str, metric: str) -> str:
    """Validation ``metric`` over training steps, one line per arm; curves are (step, value)
    lists, e.g. from ``read_curves``."""
    if not curves:
        raise ValueError("no curves given")
    checked = {arm: _check_points(arm, c, 2) for arm, c in curves.items()}
    fig = new_figure(*PLOT_IN)
    ax = fig.subplots()
    colors = series_colors(len(checked))
    for i, (arm, pts) in enumerate(checked.items()):
        steps, values = zip(*pts, strict=True)
        ax.plot(steps, values, marker="o" if len(pts) <= 30 else None, markersize=3, label=arm,
                color=colors[i])  # fmt: skip
    _finish(ax, "step", f"validation {metric_summary.label(metric)}", integer_x=True)
    return save_png(fig, out_path)


def depth_distances(
    profiles: dict[str, dict[str, list[tuple[int, float]]]], out_path: str, ylabel: str
) -> str:
    """Method 5's per-depth weight distances: one colour per pair (keys of ``profiles``), the
    encoder solid and the decoder dashed against depth (0 = shallowest, the last point the
    bottleneck); each profile is ``eval.weights.depth_profile``'s {part: [(depth, d), ...]}."""
    if not profiles:
        raise ValueError("no profiles given")
    fig = new_figure(*PLOT_IN)
    ax = fig.subplots()
    colors = series_colors(len(profiles))
    for i, (label, parts) in enumerate(profiles.items()):
        if not parts:
            raise ValueError(f"{label}: no encoder or decoder points")
        for part, points in parts.items():
            if part not in ("encoder", "decoder"):
                raise ValueError(f"{label}: unknown part {part!r}; expected encoder, decoder")
            depth, values = zip(*_check_points(f"{label} {part}", points, 2), strict=True)
            ax.plot(depth, values, marker="o", linestyle="-" if part == "encoder" else "--",
                    color=colors[i], label=f"{label} {part}")  # fmt: skip
    _finish(ax, "depth (0 = full resolution; last = bottleneck)", ylabel, integer_x=True)
    return save_png(fig, out_path)


def read_run_curve(workdir: str, key: str) -> dict[int, float]:
    """{step: value} of ``key`` in ``<workdir>/metrics.jsonl`` ({} if the file is missing);
    records without ``key`` are skipped, and a step logged twice (a resumed run) keeps the
    later record. A line that is not JSON (a run killed mid-write) is skipped with a warning,
    so one damaged log cannot stop a study's report."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logging.warning("%s:%d is not JSON; skipped", path, number)
                continue
            if key in record:
                out[int(record["step"])] = float(record[key])
    return out


def read_curves(
    run_dirs: Mapping[str, Sequence[str]], key: str = f"val/{metric_summary.HEADLINE}"
) -> dict[str, list[tuple[int, float]]]:
    """{arm: [(step, mean of ``key`` over the arm's runs that logged that step)]} sorted by step,
    from each run directory's ``metrics.jsonl`` (see ``read_run_curve``); an arm none of whose
    runs logged ``key`` maps to []."""
    out = {}
    for arm, dirs in run_dirs.items():
        if isinstance(dirs, str | bytes):
            raise ValueError(f"arm {arm!r}: expected a list of run directories, got {dirs!r}")
        per_step: dict[int, list[float]] = defaultdict(list)
        for workdir in dirs:
            for step, value in read_run_curve(workdir, key).items():
                per_step[step].append(value)
        out[arm] = [(s, float(np.mean(per_step[s]))) for s in sorted(per_step)]
    return out


def _fill(mask: np.ndarray) -> np.ndarray:
    """RGBA [H,W,4] colouring class k of mask [H,W,K] (bool) in ``COLORS[k]``."""
    rgba = np.zeros((*mask.shape[:2], 4), np.float32)
    for k in range(mask.shape[-1]):
        rgba[mask[..., k]] = (*COLORS[k % len(COLORS)], OVERLAY_ALPHA)
    return rgba


def _contour(ax: Axes, mask: np.ndarray, color: str = "white") -> None:
    """The outline of each class of mask [H,W,K] (classes that are all 0 or all 1 have none)."""
    for k in range(mask.shape[-1]):
        if 0 < mask[..., k].sum() < mask[..., k].size:
            ax.contour(mask[..., k].astype(np.float32), levels=[0.5], colors=[color],
                       linewidths=0.8)  # fmt: skip


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over classes of 2|P∩T|/(|P|+|T|) for bool masks [H,W,K]; 1 where both are empty."""
    inter = (pred & truth).sum(axis=(0, 1))
    total = pred.sum(axis=(0, 1)) + truth.sum(axis=(0, 1))
    return float(np.mean(np.where(total > 0, 2 * inter / np.maximum(total, 1), 1.0)))


def tile_label(pred: np.ndarray, truth: np.ndarray) -> str:
    """What a prediction tile says: its Dice when the ground truth [H,W,K] has foreground, else
    whether the prediction is a false positive (an empty truth is not scored by Dice, as the
    headline metric ``eval.summary.HEADLINE`` leaves it out)."""
    if truth.any():
        return f"dice {dice(pred, truth):.2f}"
    return "empty truth: false positive" if pred.any() else "empty truth: none predicted"


def overlay_grid(
    images: np.ndarray, masks: np.ndarray, predictions: dict[str, np.ndarray], out_path: str
) -> str:
    """Rows are images [N,H,W,C]; columns the image, the ground truth masks [N,H,W,K] filled
    and outlined, then each arm's predicted masks (bool [N,H,W,K]) filled, with the ground
    truth outlined in white and ``tile_label`` (the Dice, or on an empty truth whether anything
    was predicted) under the tile."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be [N,H,W,C] with N ≥ 1, got shape {images.shape}")
    truth = np.asarray(masks) > 0.5
    if truth.ndim != 4 or truth.shape[:3] != images.shape[:3]:
        raise ValueError(f"masks {truth.shape} must be [N,H,W,K] matching images {images.shape}")
    preds = {}
    for arm, p in predictions.items():
        preds[arm] = np.asarray(p) > 0.5
        if preds[arm].shape != truth.shape:
            raise ValueError(f"predictions of {arm!r} {preds[arm].shape} != masks {truth.shape}")
    background = grey(images)
    titles = ["image", "ground truth", *preds]
    fig = new_figure(len(titles) * TILE_IN, images.shape[0] * TILE_IN)
    axes = fig.subplots(images.shape[0], len(titles), squeeze=False)
    for i, row in enumerate(axes):
        for ax in row:
            ax.imshow(background[i], cmap="gray", vmin=0, vmax=1)
            blank(ax)
        row[1].imshow(_fill(truth[i]))
        _contour(row[1], truth[i])
        for ax, p in zip(row[2:], preds.values(), strict=True):
            ax.imshow(_fill(p[i]))
            _contour(ax, truth[i])
            ax.set_xlabel(tile_label(p[i], truth[i]), fontsize=7)
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=8)
    return save_png(fig, out_path)


def pretext_health(rows: list[dict], out_path: str) -> str:
    """One panel per pretext stage (``studies.pretext.collect`` rows): each run's held-out
    figure (dots), their mean ± sd, and each trivial baseline's mean as a dashed line."""
    if not rows:
        raise ValueError("no pretext stages with baselines to draw")
    fig = new_figure(PLOT_IN[0] * 0.6 * max(len(rows), 2), PLOT_IN[1])
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    for ax, row in zip(axes, rows, strict=True):
        values = np.asarray(row["values"], float)
        ax.plot(np.zeros(len(values)), values, "o", color=COLORS[0], alpha=0.5, label="runs")
        sd = _nan_to_zero([row["sd"]])
        ax.errorbar([0.0], [row["mean"]], yerr=sd, fmt="s", color=COLORS[0], capsize=4,
                    label="mean ± sd")  # fmt: skip
        for i, (name, value) in enumerate(row["baselines"].items()):
            ax.axhline(value, linestyle="--", color=COLORS[(i + 1) % len(COLORS)], label=name)
        ax.set_xticks([0.0], [row["stage"]])
        ax.set_xlim(-1, 1)
        ax.set_ylabel(f"held-out {row['metric']}")
        ax.set_title(f"{row['stage']}: beats {row['beats']}/{row['n']}", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return save_png(fig, out_path)
