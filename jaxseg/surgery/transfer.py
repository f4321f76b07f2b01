"""Strict subtree transfer: load selected subtrees of an earlier stage's checkpoint into a
freshly initialised tree, and refuse (listing the paths) when the two do not line up."""

from __future__ import annotations

from typing import Any

from jaxseg import checkpoint
from jaxseg.surgery.paths import flatten, matches, selector, unflatten

COLLECTIONS = ("params", "batch_stats")


def transfer(
    variables: dict[str, Any], source_dir: str, subtrees: str
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Replace the ``subtrees`` of ``variables`` ({'params', 'batch_stats'}) by the checkpoint's.

    Returns (new variables, report) with report keys 'loaded' and 'kept' (fresh-initialised
    paths). Missing or shape-mismatched paths on either side, or a selector matching nothing,
    raise one ValueError that lists them.
    """
    regex = selector(subtrees)
    if not regex:
        raise ValueError("init_from.subtrees is empty; name what to transfer, e.g. 'encoder'")
    saved = {
        p: s
        for p, s in checkpoint.leaf_shapes(source_dir).items()
        if p.split("/")[0] in COLLECTIONS and matches(regex, p.split("/", 1)[1])
    }
    current = flatten({c: variables[c] for c in COLLECTIONS if c in variables})
    wanted = {p: v for p, v in current.items() if matches(regex, p.split("/", 1)[1])}
    if not wanted:
        raise ValueError(f"init_from.subtrees={subtrees!r} matches nothing in the new model")
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    shape = sorted(
        f"{p} {saved[p]}->{tuple(wanted[p].shape)}"
        for p in set(wanted) & set(saved)
        if tuple(saved[p]) != tuple(wanted[p].shape)
    )
    if missing or extra or shape:
        raise ValueError(
            f"cannot transfer {subtrees!r} from {source_dir}: "
            f"missing in checkpoint {missing or 'none'}; only in checkpoint {extra or 'none'}; "
            f"shape mismatch {shape or 'none'}"
        )
    restored = flatten(
        checkpoint.restore_partial(source_dir, unflatten(checkpoint.abstract(wanted)))
    )
    current.update(restored)
    merged = {**variables, **unflatten(current)}  # keeps empty and other collections as given
    return merged, {"loaded": sorted(wanted), "kept": sorted(set(current) - set(wanted))}
