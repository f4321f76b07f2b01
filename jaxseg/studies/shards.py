"""Split a study's runs among ``n`` independent workers: ``jaxseg train --shard=i/n``.

A shard owns whole *families*: the connected components of chains that share runs (one fold ×
seed's pretext run and every budget chain starting from it; a scratch chain alone), so no worker
ever waits on another's run. Families go to shards longest-first by planned cost (the steps of
their distinct runs), each to the least loaded shard, ties broken by the family's first run
directory: every worker computes the same partition from the same plan, with no coordination.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

from jaxseg.studies.plan import Chain, Run

SLURM_ID, SLURM_COUNT = "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"
SLURM_MIN, SLURM_STEP = "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"


def parse(text: str) -> tuple[int, int]:
    """``'i/n'`` -> ``(i, n)`` with ``0 <= i < n``; ValueError naming the flag otherwise."""
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text.strip())
    if match is None:
        raise ValueError(f"--shard={text!r}: give i/n, e.g. --shard=0/4 (shards 0 … n-1 of n)")
    i, n = int(match[1]), int(match[2])
    if n < 1:
        raise ValueError(f"--shard={text}: the number of shards n must be at least 1")
    if i >= n:
        raise ValueError(f"--shard={text}: the shard index must be in 0 … {n - 1} (of n={n})")
    return i, n


def from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The shard of a SLURM array task, ``((ID - MIN) / STEP, COUNT)``, or None outside arrays
    (MIN and STEP default to 0 and 1, so ``--array=1-4`` and ``--array=0-9:3`` work too)."""
    env = os.environ if env is None else env
    if SLURM_ID not in env or SLURM_COUNT not in env:
        return None
    try:
        task, count = int(env[SLURM_ID]), int(env[SLURM_COUNT])
        first, step = int(env.get(SLURM_MIN, 0)), int(env.get(SLURM_STEP, 1))
    except ValueError:
        raise ValueError(
            f"{SLURM_ID}/{SLURM_COUNT}/{SLURM_MIN}/{SLURM_STEP} are not integers; pass --shard=i/n"
        ) from None
    i, off = divmod(task - first, step) if step > 0 else (-1, 0)
    if off or not 0 <= i < count:
        raise ValueError(
            f"{SLURM_ID}={task} is not task (id - {first}) / {step} in 0 … {count - 1} of an "
            f"evenly spaced array (MIN {first}, STEP {step}, COUNT {count}); pass --shard=i/n"
        )
    return i, count


def families(planned: list[Chain]) -> list[list[Chain]]:
    """The connected components of chains sharing a run (by directory), each in plan order,
    ordered by their first chain."""
    root: dict[str, str] = {}  # union-find over run directories

    def find(x: str) -> str:
        while root.setdefault(x, x) != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for chain in planned:
        first = find(chain.runs[0].workdir)
        for run in chain.runs[1:]:
            root[find(run.workdir)] = first
    groups: dict[str, list[Chain]] = {}
    for chain in planned:
        groups.setdefault(find(chain.runs[0].workdir), []).append(chain)
    return list(groups.values())


def runs(chains: list[Chain]) -> list[Run]:
    """The distinct runs of ``chains`` (a run shared by chains once), in order."""
    return list({run.workdir: run for chain in chains for run in chain.runs}.values())


def cost(family: list[Chain]) -> int:
    """The planned training steps of a family: the sum over its distinct runs of ``steps`` (the
    maximum of a stage given in epochs; one without a maximum counts its epochs, as its steps
    depend on data not read here)."""
    return sum(int(run.config.steps) or math.ceil(run.config.epochs) for run in runs(family))


def assign(groups: list[list[Chain]], n: int) -> list[int]:
    """The shard of each family: longest first, to the least loaded shard (the lowest index on a
    tie); families of equal cost in the order of their first run directory."""
    order = sorted(
        range(len(groups)), key=lambda g: (-cost(groups[g]), groups[g][0].runs[0].workdir)
    )
    load, shard = [0] * n, [0] * len(groups)
    for g in order:
        shard[g] = min(range(n), key=lambda s: (load[s], s))
        load[shard[g]] += cost(groups[g])
    return shard


def share(planned: list[Chain], i: int, n: int) -> list[Chain]:
    """The chains that shard ``i`` of ``n`` trains, in plan order (whole families)."""
    groups = families(planned)
    mine = {id(c) for g, s in zip(groups, assign(groups, n), strict=True) if s == i for c in g}
    return [chain for chain in planned if id(chain) in mine]
