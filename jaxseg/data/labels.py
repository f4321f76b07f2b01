"""Which labels each example carries: a mask, a centre, boxes, a class label, multi-hot labels.

Any of them may be missing for any example (a pool of cheap centre-only images beside a few
masks, method 1; 14 uncertain image labels, method 3). The contract keeps one array per label
kind plus an optional bool [N] availability array (absent: every example has it):

  has_mask   mask rows are labels (False: the row is zeros and means nothing)
  has_center centre known (absent: ``has_object``, i.e. a non-empty mask)
  has_box    box known (absent: ``has_object``)
  has_label  class label known (absent: every example)
and ``center_derived`` / ``box_derived`` bool [N]: True where that label was computed from the
example's mask because the source gave none. Multi-hot ``labels`` [N,L] hold 1, 0 or -1
(uncertain); a row is labelled when one entry is not -1, or, without ``labels``, when it has a
mask (the targets are then the mask channels holding foreground).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

KINDS = ("mask", "center", "box", "label", "labels")
_FLAGS = {"mask": "has_mask", "center": "has_center", "box": "has_box", "label": "has_label"}


def available(arrays: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """bool [N]: the examples that carry label ``kind`` (one of KINDS)."""
    if kind == "labels":
        if "labels" in arrays:
            return (np.asarray(arrays["labels"]) >= 0).any(axis=1)
        return available(arrays, "mask")
    if kind not in _FLAGS:
        raise ValueError(f"unknown label kind {kind!r}; kinds are {KINDS}")
    flag = arrays.get(_FLAGS[kind])
    if flag is not None:
        return np.asarray(flag, bool)
    if kind in ("center", "box") and "has_object" in arrays:
        return np.asarray(arrays["has_object"], bool)
    return np.ones(len(arrays["image"]), bool)


def derived(arrays: Mapping[str, np.ndarray], kind: str) -> np.ndarray:
    """bool [N]: where label ``kind`` was computed from the mask (only centres and boxes are)."""
    flag = arrays.get(f"{kind}_derived")
    return np.zeros(len(arrays["image"]), bool) if flag is None else np.asarray(flag, bool)


def carrying(arrays: Mapping[str, np.ndarray], kinds: tuple[str, ...]) -> np.ndarray:
    """bool [N]: the examples that carry every label of ``kinds`` (all when empty)."""
    if not kinds:
        return np.ones(len(arrays["image"]), bool)
    return np.logical_and.reduce([available(arrays, kind) for kind in kinds])


def coverage(arrays: Mapping[str, np.ndarray], index: np.ndarray | None = None) -> dict:
    """{kind: {'available': n, 'derived': n}} over the rows ``index`` (all when None)."""
    rows = slice(None) if index is None else np.asarray(index)
    return {
        kind: {
            "available": int(available(arrays, kind)[rows].sum()),
            "derived": int((derived(arrays, kind) & available(arrays, kind))[rows].sum()),
        }
        for kind in KINDS
    }


def describe_derived(arrays: Mapping[str, np.ndarray], kinds: tuple[str, ...], index) -> str:
    """'center derived from masks for 12 of 40' for the ``kinds`` of rows ``index`` ('' if
    none was derived)."""
    cover = coverage(arrays, index)
    parts = [
        f"{k} derived from masks for {cover[k]['derived']} of {cover[k]['available']}"
        for k in kinds
        if k in cover and cover[k]["derived"]
    ]
    return "; ".join(parts)


def enclosing(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N,M,2R] NaN-padded -> (the box enclosing each example's boxes [N,2R] (0 where
    none), known bool [N])."""
    finite = np.isfinite(boxes).all(axis=-1)  # [N,M]
    known = finite.any(axis=1)
    r = boxes.shape[-1] // 2
    lo = np.where(finite[..., None], boxes[..., :r], np.inf).min(axis=1)
    hi = np.where(finite[..., None], boxes[..., r:], -np.inf).max(axis=1)
    box = np.where(known[:, None], np.concatenate([lo, hi], axis=1), 0.0)
    return box.astype(np.float32), known


def merge(
    arrays: dict[str, np.ndarray],
    has_mask: np.ndarray,
    center: np.ndarray | None = None,
    center_known: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Combine labels a source stores with those derived from its masks (``arrays`` from
    ``derive.contract_arrays`` on masks zeroed where ``has_mask`` is False).

    A stored centre [N,R] (where ``center_known``) or stored boxes [N,M,2R] (NaN rows = none)
    win; a label is derived from the mask only where the stored one is missing and the mask is
    there and not empty. A masked example with an empty mask has no object: its stored centre
    and boxes are ignored. Adds has_mask, has_center, has_box, center_derived, box_derived and
    (when boxes are stored) 'boxes' [N,M,2R]; has_object = non-empty mask where there is one,
    else a known centre or box.
    """
    out = dict(arrays)
    has_mask = np.asarray(has_mask, bool)
    from_mask = has_mask & arrays["has_object"]
    allowed = ~has_mask | arrays["has_object"]  # an empty mask says: no object
    n = len(has_mask)
    if center is None:
        center, center_known = np.zeros((n, arrays["center"].shape[1])), np.zeros(n, bool)
    center_known = np.asarray(center_known, bool) & allowed
    out["center"] = np.where(center_known[:, None], center, arrays["center"] * from_mask[:, None])
    out["has_center"] = center_known | from_mask
    out["center_derived"] = ~center_known & from_mask
    box_known = np.zeros(n, bool)
    if boxes is not None:
        box, box_known = enclosing(boxes)
        box_known &= allowed
        derived_rows = np.full_like(boxes, np.nan)
        derived_rows[:, 0] = np.where(from_mask[:, None], arrays["box"], np.nan)
        out["boxes"] = np.where(box_known[:, None, None], boxes, derived_rows).astype(np.float32)
        out["box"] = np.where(box_known[:, None], box, arrays["box"] * from_mask[:, None])
    else:
        out["box"] = arrays["box"] * from_mask[:, None]
    out["has_box"] = box_known | from_mask
    out["box_derived"] = ~box_known & from_mask
    out["has_mask"] = has_mask
    out["has_object"] = np.where(has_mask, arrays["has_object"], out["has_center"] | box_known)
    for key in ("center", "box"):
        out[key] = out[key].astype(np.float32)
    return out
