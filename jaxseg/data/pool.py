"""A cheap-label pool from another file beside a masked set (``data.pool=PATH``).

The two .npz files (raw arrays, .npz layout) become one: the masked file's examples first, then
the pool's, whose masks are dropped (``has_mask`` False: the pool supplies pretext labels only).
Leakage is checked before anything trains:
- both files must carry ``ids`` (else refused: the overlap could not be checked);
- an id present in both files is one photograph: the pool's copy joins the masked copy's group,
  so it never enters the pretext of the fold that tests it (``splits.outside``);
- groups (``groups``, else ``dup_group``) stay groups, a pool group merged with every masked
  group one of its ids links to;
- byte-identical images under different ids that do not share a group are refused with one line
  naming both (a duplicate the ids do not reveal would leak a test image into a pretext).
"""

from __future__ import annotations

import hashlib

import numpy as np

_NAN_FILLED = {"centers": np.nan, "boxes": np.nan}


def _group_names(raw: dict, tag: str) -> np.ndarray:
    """Group names of one file: 'tag:group' ('groups', else 'dup_group' >= 0, else the row)."""
    n = len(raw["images"])
    if "groups" in raw:
        return np.array([f"{tag}:g:{g}" for g in raw["groups"]], dtype=object)
    if "dup_group" in raw:
        return np.array(
            [f"{tag}:d:{g}" if g >= 0 else f"{tag}:r:{i}" for i, g in enumerate(raw["dup_group"])],
            dtype=object,
        )
    return np.array([f"{tag}:r:{i}" for i in range(n)], dtype=object)


def _union_groups(names: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Int group per example: names joined wherever two examples share an id (union-find)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[str, str] = {}
    for name, id_ in zip(names, ids, strict=True):
        other = first.setdefault(str(id_), name)
        parent[find(name)] = find(other)
    roots = np.array([find(x) for x in names], dtype=object)
    return np.unique(roots, return_inverse=True)[1].astype(np.int32)


def _pad(x: np.ndarray, m: int) -> np.ndarray:
    """Boxes [N,2R] or [N,M,2R] -> [N,m,2R] padded with NaN rows."""
    x = x[:, None] if x.ndim == 2 else x
    out = np.full((len(x), m, x.shape[2]), np.nan)
    out[:, : x.shape[1]] = x
    return out


def _column(raw: dict, key: str, n: int, width: tuple[int, ...], fill: float) -> np.ndarray:
    return raw[key].astype(np.float64) if key in raw else np.full((n, *width), fill)


def merge(masked: dict, pool: dict, masked_path: str, pool_path: str) -> dict:
    """One raw dict (.npz layout) of the masked file's examples followed by the pool's (masks
    dropped), with 'groups' joined by id; ValueError of one line when the files cannot be
    combined or the overlap cannot be checked."""
    for raw, path in ((masked, masked_path), (pool, pool_path)):
        if "ids" not in raw:
            raise ValueError(
                f"{path}: has no 'ids'; a pool from another file needs ids in both files to "
                "check that no test image enters a pretext (or put the pool in the masked file "
                "with has_mask False)"
            )
    if masked["images"].shape[1:] != pool["images"].shape[1:]:
        raise ValueError(
            f"{pool_path}: pool 'images' {pool['images'].shape} differ from {masked_path}'s "
            f"{masked['images'].shape} after N; import both at one size and colour"
        )
    n, p = len(masked["images"]), len(pool["images"])
    out: dict[str, np.ndarray] = {}
    same = masked["images"].dtype == pool["images"].dtype
    images = (masked["images"], pool["images"]) if same else (
        masked["images"].astype(np.float32), pool["images"].astype(np.float32))  # fmt: skip
    out["images"] = np.concatenate(images)
    if "masks" in masked:
        out["masks"] = np.concatenate(
            [masked["masks"], np.zeros((p, *masked["masks"].shape[1:]), masked["masks"].dtype)]
        )
        has_mask = masked.get("has_mask", np.ones(n, bool)).astype(bool)
        out["has_mask"] = np.concatenate([has_mask, np.zeros(p, bool)])
    rank = masked["centers"].shape[1] if "centers" in masked else pool.get(
        "centers", np.zeros((0, 2))).shape[1]  # fmt: skip
    if "centers" in masked or "centers" in pool:
        out["centers"] = np.concatenate(
            [_column(r, "centers", len(r["images"]), (rank,), np.nan) for r in (masked, pool)]
        )
        flags = [r.get("has_center", np.ones(len(r["images"]), bool)) for r in (masked, pool)]
        out["centers"][~np.concatenate(flags).astype(bool)] = np.nan  # has_center False
    if "boxes" in masked or "boxes" in pool:
        width = (masked.get("boxes", pool.get("boxes"))).shape[-1]
        boxes = [
            r["boxes"] if "boxes" in r else np.full((len(r["images"]), 1, width), np.nan)
            for r in (masked, pool)
        ]
        m = max(b.shape[1] if b.ndim == 3 else 1 for b in boxes)
        out["boxes"] = np.concatenate([_pad(b, m) for b in boxes])
    if "label_names" in masked:
        out["label_names"] = masked["label_names"]
    if "labels" in masked:
        pool_labels = pool.get("labels")
        same_names = np.array_equal(masked.get("label_names"), pool.get("label_names"))
        if (
            pool_labels is None
            or not same_names
            or pool_labels.shape[1:] != masked["labels"].shape[1:]
        ):
            pool_labels = np.full((p, *masked["labels"].shape[1:]), -1, masked["labels"].dtype)
        out["labels"] = np.concatenate([masked["labels"], pool_labels])
    if "spacing" in masked:
        if "spacing" not in pool:
            raise ValueError(f"{pool_path}: has no 'spacing' but {masked_path} has")
        out["spacing"] = np.concatenate([masked["spacing"], pool["spacing"]])
    ids = np.concatenate([masked["ids"].astype(str), pool["ids"].astype(str)])
    names = np.concatenate([_group_names(masked, "m"), _group_names(pool, "p")])
    out["groups"] = _union_groups(names, ids)
    out["ids"] = ids
    masked_rows = np.arange(n + p) < n
    check_duplicates(out["images"], out["groups"], ids, masked_rows, pool_path)
    return out


def check_duplicates(
    images: np.ndarray, groups: np.ndarray, ids: np.ndarray, masked: np.ndarray, path: str
) -> None:
    """Refuse (ValueError, one line) a pool image (``masked`` False) byte-identical to a masked
    one of another group: a duplicate its ids and groups do not reveal, which could enter the
    pretext of the fold that tests it."""
    seen: dict[bytes, int] = {}
    for i in np.flatnonzero(masked):
        seen.setdefault(hashlib.sha256(np.ascontiguousarray(images[i]).tobytes()).digest(), i)
    for j in np.flatnonzero(~np.asarray(masked, bool)):
        i = seen.get(hashlib.sha256(np.ascontiguousarray(images[j]).tobytes()).digest())
        if i is not None and groups[i] != groups[j]:
            pool_id, masked_id = str(ids[j]), str(ids[i])
            raise ValueError(
                f"{path}: pool image {pool_id!r} has the same pixels as masked image "
                f"{masked_id!r} under another id and group: it could enter the pretext of the fold "
                "that tests it; give both one id or group, or drop it from the pool"
            )
