"""Freeze schedules: which plan holds at which step, and carrying optimizer state across a change.

A schedule is a list of plans with the step each one starts at (plan 0 at step 0). Partition
labels carry a group, '<rule>@<k>', where k is the plan index since which the leaf has had that
rule; so when the plan changes, a group whose members are unchanged keeps its optimizer state
(moments *and* step count), and newly trainable leaves form a new group with fresh state.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any

import optax

from jaxseg.surgery import freeze, presets
from jaxseg.surgery.paths import flatten, unflatten


@dataclasses.dataclass(frozen=True)
class FreezeSchedule:
    """Plans (resolved per leaf) and their start steps; ``starts[0] == 0``, increasing."""

    starts: tuple[int, ...]
    resolved: tuple[dict[str, freeze.Rule], ...]

    def index_at(self, step: int) -> int:
        """The plan that trains the update taking the state from ``step`` to ``step + 1``."""
        return bisect.bisect_right(self.starts, step) - 1

    def labels(self, k: int) -> dict[str, Any]:
        """Label tree of plan k with groups: '<rule>@<j>', j = first plan of the leaf's run."""
        out = {}
        for path, rule in self.resolved[k].items():
            j = k
            while j > 0 and self.resolved[j - 1][path] == rule:
                j -= 1
            name = freeze.label(rule)
            out[path] = name if rule == freeze.FROZEN else f"{name}@{j}"
        return unflatten(out)

    def describe(self, k: int) -> str:
        """The printable plan k with its start step."""
        return f"freeze plan {k + 1}/{len(self.starts)} from step {self.starts[k]}:\n" + (
            freeze.format_plan(self.resolved[k])
        )


def build(
    spec: str, params: Any, steps_per_epoch: int, every_epochs: int = 0, at: tuple = ()
) -> FreezeSchedule:
    """A schedule from a stage's ``freeze`` string and unfreezing settings.

    ``spec``: a preset name (``presets.STATIC``/``PROGRESSIVE``) or a plan 'regex=rule,...'.
    Progressive presets need ``every_epochs`` (one more block every N epochs) or ``at`` (the
    steps at which the next block becomes trainable, one per change); static plans take neither.
    """
    name = spec.strip()
    if name.split(":")[0] in presets.PROGRESSIVE:
        plans = presets.progressive(name, params)
        if at:
            starts = (0, *(int(s) for s in at))
            if len(starts) != len(plans) or list(starts) != sorted(set(starts)):
                raise ValueError(
                    f"unfreeze_at={tuple(at)} must list {len(plans) - 1} increasing steps > 0 "
                    f"for {name!r} over {len(plans)} blocks"
                )
        elif every_epochs > 0:
            starts = tuple(k * every_epochs * steps_per_epoch for k in range(len(plans)))
        else:
            raise ValueError(
                f"freeze={name!r} needs unfreeze_every (epochs) or unfreeze_at (steps)"
            )
    else:
        if every_epochs or at:
            raise ValueError(f"unfreeze_every/unfreeze_at need a progressive freeze preset "
                             f"{presets.PROGRESSIVE}, not {name!r}")  # fmt: skip
        plans = [freeze.parse(name) if "=" in name else presets.static(name, params)]
        starts = (0,)
    return FreezeSchedule(starts, tuple(freeze.resolve(params, p) for p in plans))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps per pass over the training examples (at least 1)."""
    return max(1, math.ceil(n_train / batch_size))


def carry_state(
    old_state: optax.OptState, old_labels: Any, new_state: optax.OptState, new_labels: Any
) -> optax.OptState:
    """``new_state`` (fresh, of the new partition) with each group's state taken from
    ``old_state`` where the group has exactly the same members in both label trees."""

    def members(tree: Any) -> dict[str, frozenset]:
        groups: dict[str, set] = {}
        for path, name in flatten(tree).items():
            groups.setdefault(name, set()).add(path)
        return {k: frozenset(v) for k, v in groups.items()}

    old, new = members(old_labels), members(new_labels)
    kept = {n: old_state.inner_states[n] for n in new if old.get(n) == new[n]}
    return new_state._replace(inner_states={**new_state.inner_states, **kept})
