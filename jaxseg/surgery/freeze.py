"""Freezing v1: a selector names the frozen subtrees; they get no updates and no optimizer state.

Compiles to one ``optax.partition`` (a.k.a. ``multi_transform``): frozen leaves go through
``optax.set_to_zero()`` and never see the trainable optimizer, so weight decay cannot reach
them. BatchNorm statistics of frozen subtrees are kept fixed by the model (``frozen`` regex).
"""

from __future__ import annotations

from typing import Any

import optax

from jaxseg.surgery.paths import flatten, matches, selector, unflatten

FROZEN, TRAIN = "frozen", "train"


def labels(params: Any, frozen: str) -> dict[str, Any]:
    """Label tree with 'frozen' for leaves under the ``frozen`` selector, else 'train'.

    A selector that matches no parameter is an error: a misspelt subtree must not silently
    leave the whole network trainable.
    """
    regex = selector(frozen)
    flat = {p: FROZEN if matches(regex, p) else TRAIN for p in flatten(params)}
    if regex and FROZEN not in flat.values():
        tops = sorted({p.split("/")[0] for p in flat})
        raise ValueError(f"frozen={frozen!r} matches no parameter; top-level subtrees are {tops}")
    return unflatten(flat)


def partition(tx: optax.GradientTransformation, params: Any, frozen: str):
    """``tx`` for trainable leaves, zero updates (and no state) for frozen ones."""
    return optax.partition({TRAIN: tx, FROZEN: optax.set_to_zero()}, labels(params, frozen))
