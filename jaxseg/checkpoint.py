"""Checkpoint I/O (lowest floor: the trainer saves/resumes and surgery transfers through it).

A checkpoint is an orbax step directory under ``<stage workdir>/checkpoints`` holding the state
dict {'step', 'params', 'batch_stats', 'opt_state', 'rng'}.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import traverse_util


def flatten(tree: Any) -> dict[str, Any]:
    """{'a': {'b': x}} -> {'a/b': x}: the '/'-joined paths that selectors match."""
    return traverse_util.flatten_dict(dict(tree), sep="/") if tree else {}


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``flatten``."""
    return traverse_util.unflatten_dict(flat, sep="/")


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """A manager that saves/restores full states under ``directory`` (absolute path)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Save ``state`` at ``step`` and wait, so a finished stage is on disk when it returns."""
    mngr.save(step, args=ocp.args.StandardSave(state))
    mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, abstract_state: Any, step: int | None = None) -> Any:
    """Restore the latest (or given) step into the structure/shardings of ``abstract_state``."""
    step = mngr.latest_step() if step is None else step
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract_state))


def latest_step(directory: str) -> int | None:
    """The newest finished step under ``directory``, or None when there is none."""
    if not os.path.isdir(directory):
        return None
    with ocp.CheckpointManager(os.path.abspath(directory)) as mngr:
        return mngr.latest_step()


def steps(directory: str) -> list[int]:
    """The finished steps under ``directory``, oldest first ([] when there is none)."""
    if not os.path.isdir(directory):
        return []
    with ocp.CheckpointManager(os.path.abspath(directory)) as mngr:
        return sorted(mngr.all_steps())


def _step(mngr: ocp.CheckpointManager, directory: str, step: int | None) -> int:
    """``step`` (default: the latest) after checking that it is saved under ``directory``."""
    saved = sorted(mngr.all_steps())
    if not saved:
        raise FileNotFoundError(f"no checkpoint under {directory}")
    if step is None:
        return saved[-1]
    if step not in saved:
        raise FileNotFoundError(f"no checkpoint of step {step} under {directory}; saved: {saved}")
    return step


def _leaf_metadata(directory: str, step: int | None) -> dict[str, Any]:
    handler = ocp.StandardCheckpointHandler()
    with ocp.CheckpointManager(os.path.abspath(directory), item_handlers=handler) as mngr:
        tree = mngr.item_metadata(_step(mngr, directory, step)).tree
    return {p: m for p, m in flatten(tree).items() if hasattr(m, "shape")}


def leaf_shapes(directory: str, step: int | None = None) -> dict[str, tuple[int, ...]]:
    """{'params/encoder/.../kernel': shape} of a saved state, read from metadata only."""
    return {p: tuple(m.shape) for p, m in _leaf_metadata(directory, step).items()}


def load_variables(
    directory: str,
    step: int | None = None,
    collections: tuple[str, ...] = ("params", "batch_stats"),
) -> dict[str, Any]:
    """The model variables {'params': ..., 'batch_stats': ...} of a saved state (latest step).

    Needs no model or config: the target structure is read from the checkpoint's metadata.
    """
    target = {
        p: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype)
        for p, m in _leaf_metadata(directory, step).items()
        if p.split("/")[0] in collections
    }
    restored = restore_partial(directory, unflatten(target), step)
    return {c: restored.get(c, {}) for c in collections}


def restore_partial(directory: str, target: Any, step: int | None = None) -> Any:
    """Restore only the leaves present in ``target`` (a tree of ShapeDtypeStructs).

    Uses a fresh manager and ``PyTreeRestore(partial_restore=True)``: the orbax recipe that
    restores a subtree of a checkpoint saved with ``StandardSave``. Leaves come back as
    ``jax.Array``s with the target's sharding, or on this process's first local device when the
    target has none: the sharding stored with the checkpoint is never used, so a state saved
    replicated over N devices restores in a process with any other number of devices.
    """
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(
            s.shape, s.dtype, sharding=getattr(s, "sharding", None) or device
        ),
        target,
    )
    with ocp.CheckpointManager(os.path.abspath(directory)) as mngr:
        args = ocp.args.PyTreeRestore(
            item=target,
            restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True,
        )
        return mngr.restore(_step(mngr, directory, step), args=args)


def abstract(tree: Any, sharding: jax.sharding.Sharding | None = None) -> Any:
    """ShapeDtypeStructs (optionally with a sharding) for every array leaf of ``tree``."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
