"""Named freeze plans, chosen by a string in a stage config.

Static presets (what is frozen): 'none' (everything trains), 'all' (everything but ``head``),
'encoder' (the contracting path, ``encoder`` + ``bottleneck``: method 2's "tune expanding"),
'decoder' (the expanding path, ``decoder`` + ``head``: "tune contracting"), and
'depth_lr[:g]' (nothing frozen; learning-rate multiplier g^i for encoder/decoder stage i,
g^L for the bottleneck, 1 for the head: deeper, latent features change slower, method 5), and
'shallow:k' / 'deep:k' (only the k blocks nearest the input / output train: one point of
method 2's curves).

Progressive presets 'shallow_to_deep' and 'deep_to_shallow' give one plan per step of the
schedule: a block is the two convolutions between consecutive pooling/up-sampling layers, so a
depth-L U-Net has 2·L+1 blocks along its longest path (encoder/stage_0 … stage_{L-1},
bottleneck, decoder/stage_{L-1} … stage_0; the head belongs to the deepest block). Plan k has
k+1 blocks trainable, counted from the chosen end (method 2).
"""

from __future__ import annotations

import re
from typing import Any

from jaxseg.surgery.freeze import FROZEN, TRAIN, Plan
from jaxseg.surgery.paths import flatten

STATIC = ("none", "all", "encoder", "decoder", "depth_lr", "shallow", "deep")
PROGRESSIVE = ("shallow_to_deep", "deep_to_shallow")


def _stages(params: Any, part: str) -> list[int]:
    """Sorted stage indices present under ``part`` ('encoder' or 'decoder')."""
    found = {
        int(m.group(1)) for p in flatten(params) if (m := re.match(rf"{part}/stage_(\d+)/", p))
    }
    return sorted(found)


def blocks(params: Any) -> list[str]:
    """Block regexes along the longest path, shallowest first (the head joins the last one)."""
    tops = {p.split("/")[0] for p in flatten(params)}
    unknown = tops - {"encoder", "bottleneck", "decoder", "head"}
    if unknown:
        raise ValueError(
            f"blocks need the U-Net tree (encoder/bottleneck/decoder/head); got {unknown}"
        )
    out = [f"encoder/stage_{i}/" for i in _stages(params, "encoder")]
    out += ["bottleneck/"] if "bottleneck" in tops else []
    out += [f"decoder/stage_{i}/" for i in reversed(_stages(params, "decoder"))]
    if "head" in tops:
        out[-1] = f"(?:{out[-1]}|head/)"
    return out


def depth_lr(params: Any, factor: float = 0.5) -> Plan:
    """Multiplier factor^i for stage i of encoder and decoder, factor^L for the bottleneck."""
    levels = _stages(params, "encoder")
    plan: list = [(f"encoder/stage_{i}/", factor**i) for i in levels]
    plan += [(f"decoder/stage_{i}/", factor**i) for i in _stages(params, "decoder")]
    plan += [("bottleneck/", factor ** len(levels)), (".*", TRAIN)]
    return [(rx, TRAIN if m == 1.0 else m) for rx, m in plan]


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
