"""Checkpoint I/O (lowest floor: the trainer saves/resumes and surgery transfers through it).

A checkpoint is an orbax step directory under ``<stage workdir>/checkpoints`` holding the state
dict {'step', 'params', 'batch_stats', 'opt_state', 'rng'}.

Integrity: orbax saves a step into a temporary directory and renames it when complete (a save
killed half-way leaves only a ``<step>.orbax-checkpoint-tmp-*`` directory, which orbax ignores
and ``manager`` cleans up), after writing the commit marker ``commit_success.txt`` into it.
``save`` then records the size and SHA-256 of every file of the step in ``jaxseg_sha256.json``.
A step is *corrupt* when its marker is missing, a recorded file is missing, shorter, longer or
different, or (for a step without the record, e.g. one killed between the rename and writing
it) orbax fails to read it. ``restore`` tries the saved steps newest-first: each corrupt one is
reported (one warning line naming step and directory, in the absl log and on stdout) and moved
aside to ``<directory>/corrupt_<step>``, so nothing is destroyed and a later save of that step
succeeds; the newest intact step is returned. No intact step: ``CorruptCheckpointError``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from flax import traverse_util

COMMIT_MARKER = "commit_success.txt"  # orbax writes it into a step before the atomic rename
CHECKSUMS = "jaxseg_sha256.json"  # {relative path: [size, sha256]} of a step's files
_UNCHECKED = frozenset({CHECKSUMS, CHECKSUMS + ".tmp", "_CHECKPOINT_METADATA"})  # orbax may update


# A stage run directory's checkpoint folders (its layout is ``jaxseg.train.rundir``'s): the
# latest steps, and the best validated step (kept only when the stage has a validation split).
LATEST = "checkpoints"
BEST = "checkpoints_best"


def run_weights(run: str) -> tuple[str, str]:
    """(checkpoint folder, 'best' | 'latest') of the stage run directory ``run``: the folder of
    its best validated step when it kept one, else of its latest steps. Every reader of a
    finished stage's weights (transfer into the next stage, weight distances, explain, predict)
    goes through this, so they use the weights the stage's own test metrics come from."""
    best = os.path.join(run, BEST)
    if steps(best):
        return best, "best"
    return os.path.join(run, LATEST), "latest"


class CorruptCheckpointError(ValueError):
    """A checkpoint step (or every step of a directory) is damaged and cannot be restored."""


class _DamagedStepError(Exception):
    """Internal: one step is damaged; the message says how."""


def flatten(tree: Any) -> dict[str, Any]:
    """{'a': {'b': x}} -> {'a/b': x}: the '/'-joined paths that selectors match."""
    return traverse_util.flatten_dict(dict(tree), sep="/") if tree else {}


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``flatten``."""
    return traverse_util.unflatten_dict(flat, sep="/")


def manager(directory: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
    """A manager that saves/restores full states under ``directory`` (absolute path); it removes
    the temporary directories of saves that were killed before they finished."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def step_path(mngr: ocp.CheckpointManager, step: int) -> str:
    """The directory of ``step`` under the manager's directory."""
    return os.path.join(str(mngr.directory), str(step))


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Save ``state`` at ``step`` and wait, so a finished stage is on disk when it returns; then
    record the step's file checksums (``CHECKSUMS``, written by process 0). Like orbax, does
    nothing when ``step`` is not newer than the newest saved step."""
    saved = mngr.save(step, args=ocp.args.StandardSave(state))
    mngr.wait_until_finished()
    if saved and jax.process_index() == 0:
        write_checksums(step_path(mngr, step))


def _files(step_dir: str) -> list[str]:
    """Paths (relative to ``step_dir``) of the files checksums cover, sorted."""
    out = []
    for root, _, names in os.walk(step_dir):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), step_dir)
            if rel not in _UNCHECKED:
                out.append(rel)
    return sorted(out)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(step_dir: str) -> None:
    """Record [size, sha256] of every file of a saved step in ``<step_dir>/CHECKSUMS`` (via a
    temporary file: a kill leaves the step without the record, never with half of one)."""
    sums = {}
    for rel in _files(step_dir):
        path = os.path.join(step_dir, rel)
        sums[rel] = [os.path.getsize(path), _sha256(path)]
    tmp = os.path.join(step_dir, CHECKSUMS + ".tmp")
    with open(tmp, "w") as f:
        json.dump(sums, f, indent=0)
    os.replace(tmp, os.path.join(step_dir, CHECKSUMS))


def damage(step_dir: str) -> str | None:
    """How a saved step's files are damaged, or None when they look intact.

    Checks the commit marker, and each file recorded in ``CHECKSUMS`` (when the step has it):
    present, of the saved size and SHA-256.
    """
    if not os.path.isdir(step_dir):
        return "its directory is missing"
    if not os.path.exists(os.path.join(step_dir, COMMIT_MARKER)):
        return f"no commit marker {COMMIT_MARKER}"
    path = os.path.join(step_dir, CHECKSUMS)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            sums = json.load(f)
    except (OSError, ValueError) as err:
        return f"unreadable {CHECKSUMS}: {_one_line(err)}"
    for rel, (size, digest) in sorted(sums.items()):
        file = os.path.join(step_dir, rel)
        if not os.path.isfile(file):
            return f"{rel} is missing"
        if os.path.getsize(file) != size:
            return f"{rel} has {os.path.getsize(file)} bytes, {size} were saved"
        if _sha256(file) != digest:
            return f"{rel} differs from the saved file (sha256)"
    return None


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _restore_step(mngr: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restore ``step`` into ``target``; raise ``_DamagedStepError`` when its files are damaged.

    A step with intact recorded checksums that orbax still fails to read is not damaged (e.g. a
    target of another structure): that error propagates as it is.
    """
    step_dir = step_path(mngr, step)
    problem = damage(step_dir)
    if problem:
        raise _DamagedStepError(problem)
    try:
        return mngr.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as err:
        if os.path.exists(os.path.join(step_dir, CHECKSUMS)):
            raise
        raise _DamagedStepError(f"orbax cannot read it ({_one_line(err)})") from err


def on_process_0(fn: Callable[[], Any], name: str) -> Any:
    """Run ``fn`` in process 0 only, the other processes waiting before and after it."""
    multi = jax.process_count() > 1
    if multi:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"jaxseg {name} (before)")
    result = fn() if jax.process_index() == 0 else None
    if multi:
        multihost_utils.sync_global_devices(f"jaxseg {name} (after)")
    return result


def quarantine(mngr: ocp.CheckpointManager, step: int) -> str:
    """Move the directory of ``step`` aside to ``<directory>/corrupt_<step>`` (``.1``, ``.2``,
    ... when taken) and forget the step, so that saving it again works; returns the new path."""
    source = step_path(mngr, step)
    dest = os.path.join(str(mngr.directory), f"corrupt_{step}")
    n = 0
    while os.path.exists(dest if n == 0 else f"{dest}.{n}"):
        n += 1
    dest = dest if n == 0 else f"{dest}.{n}"
    on_process_0(lambda: os.replace(source, dest), f"quarantine {source}")
    mngr.reload()
    return dest


def _warn(message: str) -> None:
    """One warning line, in the absl log and on stdout (the run log)."""
    logging.warning("%s", message)
    print(message, flush=True)


def restore(
    mngr: ocp.CheckpointManager,
    abstract_state: Any | Callable[[int], Any],
    step: int | None = None,
) -> Any:
    """Restore a saved state into the structure/shardings of ``abstract_state`` (a tree of
    ShapeDtypeStructs, or a function step -> that tree when the structure depends on the step).

    ``step`` given: that step (``FileNotFoundError`` if it is not saved,
    ``CorruptCheckpointError`` if it is damaged). Default: the newest intact step; newer damaged
    steps are reported and moved aside (see ``quarantine``). Raises ``FileNotFoundError`` when
    nothing is saved, and ``CorruptCheckpointError`` naming the directory and every step's
    problem when no step is intact (nothing is moved then).
    """
    target = abstract_state if callable(abstract_state) else (lambda _: abstract_state)
    directory = str(mngr.directory)
    if step is not None:
        if step not in mngr.all_steps():
            raise FileNotFoundError(
                f"no checkpoint of step {step} under {directory}; saved: {sorted(mngr.all_steps())}"
            )
        try:
            return _restore_step(mngr, step, target(step))
        except _DamagedStepError as err:
            raise CorruptCheckpointError(
                f"checkpoint step {step} under {directory} is corrupt: {err}"
            ) from None
    saved = sorted(mngr.all_steps(), reverse=True)
    if not saved:
        raise FileNotFoundError(f"no checkpoint under {directory}")
    damaged: dict[int, str] = {}
    for candidate in saved:
        try:
            state = _restore_step(mngr, candidate, target(candidate))
        except _DamagedStepError as err:
            damaged[candidate] = str(err)
            continue
        for bad, problem in damaged.items():
            dest = quarantine(mngr, bad)
            _warn(
                f"checkpoint step {bad} under {directory} is corrupt ({problem}); moved it to "
                f"{dest} and restored step {candidate} instead"
            )
        return state
    problems = "; ".join(f"step {s}: {p}" for s, p in damaged.items())
    raise CorruptCheckpointError(
        f"no intact checkpoint under {directory} ({problems}); move that directory away to "
        "start the stage over"
    )


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
    """``step`` (default: the latest) after checking that it is saved under ``directory`` and
    intact (``damage``)."""
    saved = sorted(mngr.all_steps())
    if not saved:
        raise FileNotFoundError(f"no checkpoint under {directory}")
    if step is None:
        step = saved[-1]
    elif step not in saved:
        raise FileNotFoundError(f"no checkpoint of step {step} under {directory}; saved: {saved}")
    problem = damage(step_path(mngr, step))
    if problem:
        raise CorruptCheckpointError(
            f"checkpoint step {step} under {directory} is corrupt: {problem}"
        )
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
