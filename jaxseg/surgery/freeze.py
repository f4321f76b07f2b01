"""Freeze plans: which parameters train, at which learning rate, and which stay frozen.

A plan is an ordered list of ``(regex, rule)``; for each parameter path ('encoder/stage_0/
conv_0/kernel') the first regex that ``re.match``es it decides. A rule is 'frozen', 'train' or a
learning-rate multiplier (float > 0; 1.0 is 'train'). Every parameter must be matched and every
rule must match something, so a typo is an error, never a silently trainable network.

A plan compiles to one ``optax.partition`` label tree: frozen leaves go through
``optax.set_to_zero()`` (no optimizer state, and weight decay never reaches them); each multiplier
gets its own copy of the optimizer followed by ``optax.scale(m)``. The model runs the frozen
subtrees in inference mode: dropout off, BatchNorm on its stored statistics (``frozen_regex``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import optax

from jaxseg.surgery.paths import flatten, selector, unflatten

FROZEN, TRAIN = "frozen", "train"
FROZEN_NORMS = ("stored", "adapt")  # frozen BatchNorms: stored statistics, or adapt to batches
Rule = str | float
Plan = Sequence[tuple[str, Rule]]


def check_rule(rule: Rule) -> Rule:
    """Normalise a rule: 'frozen' | 'train' | multiplier (1.0 -> 'train')."""
    if rule in (FROZEN, TRAIN):
        return rule
    try:
        m = float(rule)
    except (TypeError, ValueError):
        raise ValueError(f"freeze rule {rule!r} is not 'frozen', 'train' or a number") from None
    if m <= 0:
        raise ValueError(f"learning-rate multiplier {m} must be > 0; use 'frozen' to freeze")
    return TRAIN if m == 1.0 else m


def parse(spec: str) -> list[tuple[str, Rule]]:
    """'encoder/=frozen, decoder/stage_0/=0.1, .*=train' -> [(regex, rule), ...]."""
    plan = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        regex, sep, rule = item.rpartition("=")
        if not sep or not regex.strip():
            raise ValueError(f"freeze plan item {item!r} is not 'regex=rule'")
        plan.append((regex.strip(), check_rule(rule.strip())))
    if not plan:
        raise ValueError(f"freeze plan {spec!r} is empty")
    return plan


def from_selector(frozen: str) -> list[tuple[str, Rule]]:
    """The plan 'subtrees named by the selector ``frozen`` are frozen, the rest trains'."""
    regex = selector(frozen)
    return ([(regex, FROZEN)] if regex else []) + [(".*", TRAIN)]


def resolve(params: Any, plan: Plan | str) -> dict[str, Rule]:
    """{path: rule} for every parameter leaf.

    A str plan is 'regex=rule,...' (``parse``), or else a selector of the frozen subtrees.

    Raises listing the unmatched paths, or the rules that match no parameter.
    """
    if isinstance(plan, str):
        plan = parse(plan) if "=" in plan else from_selector(plan)
    compiled = []
    for regex, rule in plan:
        try:
            compiled.append((re.compile(regex), check_rule(rule)))
        except re.error as err:
            raise ValueError(f"freeze plan regex {regex!r} is invalid ({err})") from err
    out, used, unmatched = {}, set(), []
    for path in flatten(params):
        for i, (rx, rule) in enumerate(compiled):
            if rx.match(path + "/"):
                out[path] = rule
                used.add(i)
                break
        else:
            unmatched.append(path)
    if unmatched:
        raise ValueError(f"freeze plan leaves {len(unmatched)} parameters unmatched: {unmatched}")
    unused = [plan[i][0] for i in range(len(plan)) if i not in used]
    if unused:
        tops = sorted({p.split("/")[0] for p in out})
        raise ValueError(f"freeze plan rule(s) {unused}: matches no parameter; top-level: {tops}")
    return out


def label(rule: Rule) -> str:
    """The partition label of a rule: 'frozen', 'train' or 'lr*<m>'."""
    return rule if isinstance(rule, str) else f"lr*{rule:g}"


def labels(params: Any, plan: Plan | str) -> dict[str, Any]:
    """Label tree (same structure as ``params``) for ``optax.partition``."""
    return unflatten({p: label(r) for p, r in resolve(params, plan).items()})


def transform_for(name: str, tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """The transformation of a label; the part after '@' (a schedule group) is ignored."""
    base = name.split("@")[0]
    if base == FROZEN:
        return optax.set_to_zero()
    if base == TRAIN:
        return tx
    if base.startswith("lr*"):
        return optax.chain(tx, optax.scale(float(base[3:])))
    raise ValueError(f"unknown partition label {name!r}")


def partition_labels(tx: optax.GradientTransformation, label_tree: Any):
    """``optax.partition`` over a label tree whose labels ``transform_for`` understands."""
    names = set(flatten(label_tree).values())
    return optax.partition({n: transform_for(n, tx) for n in names}, label_tree)


def partition(tx: optax.GradientTransformation, params: Any, plan: Plan | str):
    """``tx`` for trainable leaves (scaled per multiplier), zero updates for frozen ones."""
    return partition_labels(tx, labels(params, plan))


def frozen_regex(resolved: dict[str, Rule], norms: str = "stored") -> str:
    """The regex of the frozen subtrees that the model builder takes ('' if none).

    A subtree is frozen when every parameter in it is; the regex lists the largest ones
    ('encoder/', 'decoder/stage_1/norm_0/bn/') and ``re.match``es the '/'-terminated path of any
    module inside them. The model runs those modules in inference mode (``models.layers``): a
    BatchNorm '<module>/bn/' (frozen with its scale and bias) on its stored statistics, and
    dropout off when the block applying it ('encoder/stage_0/') is frozen. A freeze plan of a
    progressive schedule so switches both per plan.

    ``norms`` ('stored' | 'adapt', the stage's ``frozen_norm``): 'adapt' leaves BatchNorms out
    (the regex never matches a path ending in 'bn/'), so frozen ones normalise with batch
    statistics and update their running averages while the optimizer keeps scale and bias.
    """
    if norms not in FROZEN_NORMS:
        raise ValueError(f"frozen_norm={norms!r} is unknown; use one of {FROZEN_NORMS}")
    frozen: dict[str, bool] = {}  # 'a/b/' -> every parameter under it is frozen
    for path, rule in resolved.items():
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth]) + "/"
            frozen[prefix] = frozen.get(prefix, True) and rule == FROZEN
    tops = sorted(p for p, f in frozen.items()
                  if f and not frozen.get(p[: p.rstrip("/").rfind("/") + 1], False))  # fmt: skip
    if not tops:
        return ""
    keep_norms = "(?!(?:.*/)?bn/$)" if norms == "adapt" else ""
    return keep_norms + "(?:" + "|".join(re.escape(p) for p in tops) + ")"


def format_plan(resolved: dict[str, Rule]) -> str:
    """A table of block -> rule (a block's leaves listed one by one when their rules differ)."""
    blocks: dict[str, list[tuple[str, Rule]]] = {}
    for path, rule in resolved.items():
        parts = path.split("/")
        block = "/".join(parts[:2]) if parts[0] in ("encoder", "decoder") else parts[0]
        blocks.setdefault(block, []).append((path, rule))
    rows = []
    for block, items in blocks.items():
        rules = {label(r) for _, r in items}
        if len(rules) == 1:
            rows.append((block + "/*", rules.pop(), len(items)))
        else:
            rows += [(p, label(r), 1) for p, r in items]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'path':<{width}}  {'rule':<8}  leaves", "-" * (width + 18)]
    lines += [f"{p:<{width}}  {r:<8}  {n}" for p, r, n in rows]
    return "\n".join(lines)
