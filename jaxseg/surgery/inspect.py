"""Config-free inspection of parameter trees, for notebooks and debugging surgery.

A tree is a nested dict whose leaves are arrays or ``jax.ShapeDtypeStruct`` (from
``jax.eval_shape``, so nothing has to be initialised); only ``leaf.shape`` is read. Paths are the
'/'-joined keys of ``jaxseg.checkpoint.flatten`` and selectors are those of
``jaxseg.surgery.paths``. Functions keep the tree's own key order (``model.init`` gives creation
order; anything that went through ``jax.tree`` utilities, e.g. ``jax.eval_shape``, sorted keys).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxseg.surgery.paths import flatten, select

# Method 2 of the project: the contracting path (encoder + bottleneck) vs the expanding one.
UNET_GROUPS: dict[str, str] = {"contracting": "encoder+bottleneck", "expanding": "decoder+head"}


def _shape(leaf: Any) -> tuple[int, ...]:
    """The shape of an array, ShapeDtypeStruct or Python/numpy scalar."""
    shape = getattr(leaf, "shape", None)
    return tuple(int(d) for d in (np.shape(leaf) if shape is None else shape))


def _size(leaf: Any) -> int:
    return math.prod(_shape(leaf))


def list_paths(tree: Mapping[str, Any]) -> list[str]:
    """All leaf paths of ``tree`` in its key order, e.g. ['encoder/stage_0/conv_0/kernel', ...]."""
    return list(flatten(tree))


def select_regex(tree: Mapping[str, Any], regex: str) -> dict[str, Any]:
    """{path: leaf} for the leaves whose path ``re.search``-matches the raw ``regex``.

    Unlike a selector this is unanchored ('conv_0' hits every block's first conv); anchor with
    '^'/'$' to restrict it. An invalid regex raises ValueError naming it.
    """
    try:
        pattern = re.compile(regex)
    except re.error as err:
        raise ValueError(f"regex {regex!r} is not valid ({err})") from err
    return {p: v for p, v in flatten(tree).items() if pattern.search(p)}


def count(tree: Mapping[str, Any], spec: str | None = None) -> int:
    """Number of scalar parameters in ``tree``, or in the subtrees the selector ``spec`` selects.

    A selector that selects nothing (including '') counts 0.
    """
    leaves = flatten(tree) if spec is None else select(tree, spec)
    return sum(_size(v) for v in leaves.values())


def count_by_prefix(tree: Mapping[str, Any], depth: int = 1) -> dict[str, int]:
    """Parameter counts grouped by the first ``depth`` path components, in tree order.

    depth=1 -> {'encoder': n, 'bottleneck': n, ...}; depth=2 -> {'encoder/stage_0': n, ...,
    'bottleneck/conv_0': n, ...}. A path shorter than ``depth`` is its own group.
    """
    if depth < 1:
        raise ValueError(f"depth={depth} must be >= 1")
    counts: dict[str, int] = {}
    for path, leaf in flatten(tree).items():
        key = "/".join(path.split("/")[:depth])
        counts[key] = counts.get(key, 0) + _size(leaf)
    return counts


def summary(tree: Mapping[str, Any], groups: Mapping[str, str] | None = None) -> str:
    """A fixed-width table: one row per group (name, selector, #leaves, #params, % of total).

    ``groups`` maps a row name to a selector (default ``UNET_GROUPS``: contracting =
    'encoder+bottleneck', expanding = 'decoder+head'). Groups may overlap (then the % column sums
    to more than 100); leaves in no group get an '(unassigned)' row. The last row is the total.
    """
    groups = UNET_GROUPS if groups is None else groups
    flat = flatten(tree)
    total = sum(_size(v) for v in flat.values())
    rows: list[tuple[str, str, int, int]] = []
    assigned: set[str] = set()
    for name, spec in groups.items():
        chosen = select(tree, spec)
        assigned.update(chosen)
        rows.append((name, spec, len(chosen), sum(_size(v) for v in chosen.values())))
    rest = [p for p in flat if p not in assigned]
    if rest:
        rows.append(("(unassigned)", "-", len(rest), sum(_size(flat[p]) for p in rest)))
    rows.append(("total", "", len(flat), total))

    def pct(n: int) -> str:
        return f"{100.0 * n / total:.1f}" if total else "0.0"

    header = ("group", "selector", "leaves", "params", "%")
    cells = [header] + [(n, s, str(k), f"{p:,}", pct(p)) for n, s, k, p in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        left = [row[i].ljust(widths[i]) for i in range(2)]
        right = [row[i].rjust(widths[i]) for i in range(2, 5)]
        lines.append("  ".join(left + right).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """How tree ``b`` differs from tree ``a``, by path and shape (values are not compared).

    Returns {'added': sorted paths only in b, 'removed': sorted paths only in a, 'changed':
    sorted [(path, shape_a, shape_b)] where the shapes differ, 'unchanged': number of paths in
    both with equal shapes}.
    """
    fa, fb = flatten(a), flatten(b)
    both = sorted(set(fa) & set(fb))
    changed = [(p, _shape(fa[p]), _shape(fb[p])) for p in both if _shape(fa[p]) != _shape(fb[p])]
    return {
        "added": sorted(set(fb) - set(fa)),
        "removed": sorted(set(fa) - set(fb)),
        "changed": changed,
        "unchanged": len(both) - len(changed),
    }


def format_diff(d: Mapping[str, Any]) -> str:
    """A printable form of ``diff(a, b)``: a count line, then '+', '-' and '~' path lines."""
    lines = [
        f"added {len(d['added'])}, removed {len(d['removed'])}, "
        f"changed {len(d['changed'])}, unchanged {d['unchanged']}"
    ]
    lines += [f"+ {p}" for p in d["added"]]
    lines += [f"- {p}" for p in d["removed"]]
    lines += [f"~ {p} {sa} -> {sb}" for p, sa, sb in d["changed"]]
    return "\n".join(lines)
