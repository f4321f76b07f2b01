"""Named freeze plans, chosen by a string in a stage config.

Static presets (what is frozen): 'none' (everything trains), 'all' (everything but ``head``),
'encoder' (the contracting path, ``encoder`` + ``bottleneck``: method 2's "tune expanding"),
'decoder' (the expanding path, ``decoder`` + ``head``: "tune contracting"), and
'depth_lr[:g]' (nothing frozen; learning-rate multiplier g^i for stage i of encoder, decoder
and reconstruction, g^L for the bottleneck and DeepLab's aspp/conv, 1 for the heads: deeper,
latent features change slower, method 5), and
'shallow:k' / 'deep:k' (only the k blocks nearest the input / output train: one point of
method 2's curves).

Progressive presets 'shallow_to_deep' and 'deep_to_shallow' give one plan per step of the
schedule; plan k has k+1 blocks trainable, counted from the chosen end (method 2).

Blocks come from the parameter paths alone, one rule for every model of the registry. Each path
lies in a *unit*, 'bottleneck/' or 'head/' at the top, else '<part>/<child>/'; units are ranked
along the longest path, shallow to deep, and units of equal rank form one block:

1. ``encoder/stage_i``, i ascending;
2. ``bottleneck``;
3. decoder layers outside stages, together (DeepLab's ``aspp``, ``conv``, ``norm``: they work at
   one resolution between the last encoder stage and the head, as the convs of a U-Net block);
4. ``decoder/stage_i`` and ``reconstruction/stage_i``, i descending: the dense net's
   reconstruction branch mirrors its decoder from the bottleneck, so stage i of either is the
   same distance from the bottleneck and the same resolution and unfreezes with the other;
5. the heads (``head``, ``reconstruction/head``), which join the deepest block before them.

A depth-L U-Net so has 2·L+1 blocks (encoder/stage_0 … stage_{L-1}, bottleneck,
decoder/stage_{L-1} … stage_0 + head); DeepLab has its encoder stages, then
aspp + conv + norm + head. A path outside these units (say a stage-less encoder layer) is refused.
"""

from __future__ import annotations

import re
from typing import Any

from jaxseg.surgery.freeze import FROZEN, TRAIN, Plan
from jaxseg.surgery.paths import flatten

STATIC = ("none", "all", "encoder", "decoder", "depth_lr", "shallow", "deep")
PROGRESSIVE = ("shallow_to_deep", "deep_to_shallow")
EXPANDING = ("decoder", "reconstruction")  # parts whose stages lead from the bottleneck out
ENCODER, BOTTLENECK, MIDDLE, EXPAND, HEAD = range(5)  # rank kinds, shallow to deep


def _unit(path: str) -> str:
    """The subtree of ``path`` that blocks are made of: 'bottleneck/', 'head/' or 'part/child/'."""
    top, _, rest = path.partition("/")
    return f"{top}/" if top in ("bottleneck", "head") else f"{top}/{rest.split('/')[0]}/"


def _rank(unit_: str) -> tuple[int, int] | None:
    """(kind, order) of a unit along the longest path (module docstring); None: no block."""
    part, _, child = unit_.strip("/").partition("/")
    stage = re.fullmatch(r"stage_(\d+)", child)
    if part == "encoder" and stage:
        return ENCODER, int(stage[1])
    if part == "bottleneck":
        return BOTTLENECK, 0
    if part in EXPANDING and stage:
        return EXPAND, -int(stage[1])
    if part == "head" or (part in EXPANDING and child == "head"):
        return HEAD, 0
    return (MIDDLE, 0) if part == "decoder" else None


def _ranks(params: Any) -> dict[str, tuple[int, int]]:
    """{unit: rank} of every unit of ``params``; one-line error naming the units without one."""
    out = {u: _rank(u) for u in {_unit(p) for p in flatten(params)}}
    lost = sorted(u for u, r in out.items() if r is None)
    if lost:
        raise ValueError(
            f"freeze presets by block cannot place {lost}: blocks are encoder/stage_i, "
            "bottleneck, decoder/*, decoder|reconstruction/stage_i and heads"
        )
    return out


def _regex(units: list[str]) -> str:
    """A regex matching any of ``units`` (the unit itself when alone)."""
    units = sorted(re.escape(u) for u in units)
    return units[0] if len(units) == 1 else "(?:" + "|".join(units) + ")"


def blocks(params: Any) -> list[str]:
    """Block regexes along the longest path, shallowest first (the heads join the last one)."""
    by_unit = _ranks(params)
    order = sorted(set(by_unit.values()))
    groups = [[u for u, r in by_unit.items() if r == at] for at in order]
    if order[-1][0] == HEAD and len(groups) > 1:
        heads = groups.pop()
        groups[-1] += heads
    return [_regex(g) for g in groups]


def depth_lr(params: Any, factor: float = 0.5) -> Plan:
    """Multiplier factor^level: level i for stage i of encoder, decoder and reconstruction,
    L (the encoder's stage count) for the bottleneck and stage-less decoder layers, which work
    after the last encoder stage, and 0 (train) for the heads."""
    by_unit = _ranks(params)
    depth = sum(kind == ENCODER for kind, _ in by_unit.values())
    groups: dict[float, list[str]] = {}
    for u, (kind, order) in by_unit.items():
        level = {ENCODER: order, EXPAND: -order, HEAD: 0}.get(kind, depth)
        groups.setdefault(factor**level, []).append(u)
    return [(_regex(us), TRAIN if m == 1.0 else m) for m, us in sorted(groups.items())]


def static(name: str, params: Any) -> Plan:
    """The plan of a static preset ('depth_lr:0.3' passes the factor)."""
    base, _, arg = name.partition(":")
    if base == "none":
        return [(".*", TRAIN)]
    if base == "all":
        return [("head/", TRAIN), (".*", FROZEN)]
    if base == "encoder":
        return [("(?:encoder|bottleneck)/", FROZEN), (".*", TRAIN)]
    if base == "decoder":
        return [("(?:decoder|head)/", FROZEN), (".*", TRAIN)]
    if base == "depth_lr":
        return depth_lr(params, float(arg) if arg else 0.5)
    if base in ("shallow", "deep"):
        return first_blocks(base, arg, params)
    raise ValueError(f"freeze preset {name!r} is unknown; use one of {STATIC + PROGRESSIVE}")


def first_blocks(end: str, k: str, params: Any) -> Plan:
    """'shallow:k' / 'deep:k': only the k blocks nearest the input / the output train (a point of
    method 2's unfreezing curves, trained with that plan throughout)."""
    plans = progressive("shallow_to_deep" if end == "shallow" else "deep_to_shallow", params)
    if not k.isdigit() or not 1 <= int(k) <= len(plans):
        raise ValueError(
            f"freeze preset '{end}:{k}' needs a block count k in 1..{len(plans)} (the net has "
            f"{len(plans)} blocks)"
        )
    return plans[int(k) - 1]


def progressive(name: str, params: Any) -> list[Plan]:
    """Plans 0..n-1 of a progressive preset: plan k trains k+1 blocks from the chosen end."""
    if name not in PROGRESSIVE:
        raise ValueError(f"progressive preset {name!r} is unknown; use one of {PROGRESSIVE}")
    order = blocks(params)
    if name == "deep_to_shallow":
        order = order[::-1]
    n = len(order)
    return [[(rx, TRAIN) for rx in order[: k + 1]] + ([(".*", FROZEN)] if k < n - 1 else [])
            for k in range(n)]  # fmt: skip
