"""Load a real segmentation dataset stored as .npz (layout of shared/data/busi/busi.npz).

Keys read: `images` [N,*S] or [N,*S,C] (required), `masks` {0,1} [N,*S] or [N,*S,K]
(required; three identical channels, a grey mask saved as RGB, are read as K = 1), and
optionally `labels` [N] int, `label_names` [num_classes], `groups` [N] (any dtype; mapped to int
ids), `centers` [N,R] (x, y[, z]), `boxes` [N,2R] (x0, y0[, z0], x1, y1[, z1]) in pixels and
`spacing` [N,R] (mm per pixel/voxel in array axis order). Other keys (e.g. `ids`) are ignored
by `load`.

Where each example came from (written by `jaxseg data import`, read by `read_placements`, not
needed by `load`, so older files without them load alike): `original_shapes` [N,R] int (the
spatial shape before placement, array axis order), `placement_offsets` [N,R] int and
`placement_scales` [N] float (input p -> (p + offset + 0.5) · scale - 0.5 on the stored grid;
`importer.placement.unplace` maps a prediction back), and for NIfTI imports `affines` [N,4,4]
float64 (the file's voxel (i, j, k) -> world mm affine), `orientations` [N] str (the file's axis
codes, e.g. 'LPS', before reorientation to RAS) and `file_shapes` [N,3] int (the file's grid
(D, H, W) after reorientation, before resampling: original_shapes differ only when resampled).

S is (H, W) for images and (D, H, W) for volumes (R = len(S); x runs along W, y along H, z
along D). The rank is R = spacing.shape[1] when `spacing` is stored; otherwise a 5-D `images`
array is a volume set [N,D,H,W,C] and a 3- or 4-D one an image set, so a volume set without
channel axis needs `spacing`.
"""

from __future__ import annotations

import numbers
import os
import zipfile

import numpy as np

from jaxseg.data import derive, labels, resize
from jaxseg.data import pool as pool_lib
from jaxseg.data.dataset import Dataset
from jaxseg.data.layout import fields

_KEYS = ("images", "masks", "labels", "label_names", "groups", "centers", "boxes", "spacing",
         "has_mask", "has_center", "dup_group")  # fmt: skip
# original_shapes, placement_offsets, placement_scales, file_shapes, affines, orientations
PLACEMENT_KEYS = tuple(f.npz_key for f in fields(2).values() if f.npz_key not in _KEYS)


def _read(path: str, keys: tuple[str, ...] = _KEYS) -> dict[str, np.ndarray]:
    """The arrays `keys` of an .npz archive (those present)."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file; point data.path (or JAXSEG_BUSI) at an .npz file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds a single array, not an .npz archive; save with np.savez")
    try:
        with archive:
            return {k: archive[k] for k in keys if k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None


def _rank(path: str, raw: dict) -> int:
    """Spatial rank R: spacing.shape[1] when stored, else 3 for 5-D images and 2 otherwise."""
    spacing = raw.get("spacing")
    if spacing is None:
        return 3 if raw["images"].ndim == 5 else 2
    if spacing.ndim != 2 or spacing.shape[1] not in (2, 3):
        raise ValueError(f"{path}: 'spacing' has shape {spacing.shape}; expected [N,2] or [N,3]")
    return spacing.shape[1]


def _with_channels(path: str, key: str, x: np.ndarray, rank: int = 2) -> np.ndarray:
    if x.ndim == rank + 1:
        return x[..., None]
    if x.ndim == rank + 2:
        return x
    axes = "N,H,W" if rank == 2 else "N,D,H,W"
    raise ValueError(f"{path}: '{key}' has shape {x.shape}; expected [{axes}] or [{axes},C]")


def _masks(path: str, x: np.ndarray, rank: int) -> np.ndarray:
    """Masks [N,*S] or [N,*S,K] -> [N,*S,K]; three identical channels are a grey mask saved as
    RGB and become one (channels that differ are K = 3 mask channels)."""
    masks = _with_channels(path, "masks", x, rank)
    if masks.shape[-1] == 3 and (masks == masks[..., :1]).all():
        return masks[..., :1]
    return masks


def _vector(path: str, raw: dict, key: str, n: int, width: int | None) -> np.ndarray | None:
    """Optional per-example array raw[key] of shape [n] (width None) or [n, width], or None."""
    if key not in raw:
        return None
    x = raw[key]
    expected = (n,) if width is None else (n, width)
    if x.shape != expected:
        raise ValueError(f"{path}: '{key}' has shape {x.shape}; expected {expected}")
    return x


def _labels(path: str, raw: dict, n: int) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """{'label' [N] int32, 'has_label' [N]} and, for a multi-hot [N,L] array, 'labels' [N,L]
    float32 in {1, 0, -1 = uncertain}; -1 in an [N] array marks an unknown label."""
    labels = raw.get("labels")
    names = raw.get("label_names")
    if labels is None:
        names = ("unlabelled",) if names is None else tuple(map(str, np.ravel(names)))
        return {"label": np.zeros(n, np.int32), "has_label": np.ones(n, bool)}, names
    if labels.ndim not in (1, 2) or len(labels) != n:
        raise ValueError(f"{path}: 'labels' has shape {labels.shape}; expected [{n}] or [{n},L]")
    if not np.issubdtype(labels.dtype, np.integer) and not (
        labels.ndim == 2 and labels.dtype.kind == "f"
    ):
        raise ValueError(f"{path}: 'labels' has dtype {labels.dtype}; expected integer class ids")
    if labels.ndim == 2:
        if not np.isin(labels, (-1, 0, 1)).all():
            raise ValueError(
                f"{path}: multi-hot 'labels' {labels.shape} must hold 1, 0 or -1 (uncertain), "
                f"found {np.unique(labels)[:8]}"
            )
        width = labels.shape[1]
        names = [f"class{i}" for i in range(width)] if names is None else np.ravel(names)
        if len(names) != width:
            raise ValueError(
                f"{path}: multi-hot 'labels' {labels.shape} has {width} columns but "
                f"'label_names' has {len(names)} entries"
            )
        arrays = {"label": np.zeros(n, np.int32), "has_label": np.zeros(n, bool)}
        return arrays | {"labels": labels.astype(np.float32)}, tuple(map(str, names))
    known = labels >= 0
    if names is None:
        names = [f"class{i}" for i in range(max(int(labels.max()), 0) + 1)]
    names = tuple(str(s) for s in np.ravel(names))
    if labels.min() < -1 or labels.max() >= len(names):
        raise ValueError(
            f"{path}: 'labels' span [{labels.min()}, {labels.max()}] but 'label_names' has "
            f"{len(names)} entries (-1 = unknown)"
        )
    return {"label": np.where(known, labels, 0).astype(np.int32), "has_label": known}, names


def _groups(path: str, raw: dict, n: int) -> np.ndarray | None:
    """Int group ids from 'groups' [N] (any dtype), else from 'dup_group' [N] (>= 0: copies of
    one photograph; -1: a group of its own), else None."""
    groups = _vector(path, raw, "groups", n, None)
    if groups is None and "dup_group" in raw:
        dup = _vector(path, raw, "dup_group", n, None)
        if not np.issubdtype(dup.dtype, np.integer):
            raise ValueError(f"{path}: 'dup_group' has dtype {dup.dtype}; expected integers")
        groups = np.where(dup >= 0, dup.astype(np.int64), -1 - np.arange(n))
    if groups is None:
        return None
    return np.unique(groups, return_inverse=True)[1].astype(np.int32)


def _mask_rows(path: str, raw: dict, n: int) -> np.ndarray:
    """'has_mask' [N] bool (every row when absent; none when the file has no 'masks')."""
    if "masks" not in raw:
        if "has_mask" in raw and np.asarray(raw["has_mask"]).any():
            raise ValueError(f"{path}: 'has_mask' marks masks but the file has no 'masks' key")
        return np.zeros(n, bool)
    has_mask = _vector(path, raw, "has_mask", n, None)
    if has_mask is None:
        return np.ones(n, bool)
    if has_mask.dtype != np.bool_:
        raise ValueError(f"{path}: 'has_mask' has dtype {has_mask.dtype}; expected bool [N]")
    return has_mask


def _points(path: str, raw: dict, n: int, rank: int) -> tuple[np.ndarray | None, np.ndarray]:
    """'centers' [N,R] (NaN = unknown; 'has_center' [N] bool may mark the known ones) ->
    (centres with NaN rows zeroed or None, known [N])."""
    centers = _vector(path, raw, "centers", n, rank)
    flag = _vector(path, raw, "has_center", n, None)
    if centers is None:
        if flag is not None and flag.any():
            raise ValueError(f"{path}: 'has_center' marks centres but the file has no 'centers'")
        return None, np.zeros(n, bool)
    if centers.dtype.kind not in "uif" or np.isinf(centers).any():
        raise ValueError(f"{path}: 'centers' must be finite numbers or NaN (dtype {centers.dtype})")
    finite = np.isfinite(centers)
    if (finite.any(axis=1) & ~finite.all(axis=1)).any():
        raise ValueError(f"{path}: 'centers' has rows with some coordinates NaN; NaN a whole row")
    known = finite.all(axis=1)
    if flag is not None:
        if flag.dtype != np.bool_ or (flag & ~known).any():
            raise ValueError(
                f"{path}: 'has_center' [N] must be bool and False where 'centers' is NaN"
            )
        known &= flag
    return np.where(known[:, None], centers, 0.0), known


def _boxes(path: str, raw: dict, n: int, rank: int) -> np.ndarray | None:
    """'boxes' [N,2R] or [N,M,2R] (rows of NaN = no box) -> float64 [N,M,2R], or None."""
    boxes = raw.get("boxes")
    if boxes is None:
        return None
    if boxes.ndim == 2:
        boxes = boxes[:, None]
    if boxes.ndim != 3 or len(boxes) != n or boxes.shape[2] != 2 * rank:
        raise ValueError(
            f"{path}: 'boxes' has shape {raw['boxes'].shape}; expected ({n}, {2 * rank}) or "
            f"({n}, M, {2 * rank}) padded with NaN rows"
        )
    if boxes.dtype.kind not in "uif" or np.isinf(boxes).any():
        raise ValueError(f"{path}: 'boxes' must be finite numbers or NaN (dtype {boxes.dtype})")
    finite = np.isfinite(boxes)
    if (finite.any(axis=2) & ~finite.all(axis=2)).any():
        raise ValueError(f"{path}: 'boxes' has boxes with some coordinates NaN; NaN a whole box")
    return boxes.astype(np.float64)


def _scale_geometry(
    center: np.ndarray, box: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Map stored pixel-centre coordinates to a grid block-averaged by `factor`."""
    center = (center + 0.5) / factor - 0.5
    box = np.floor(box / factor)  # inclusive extents: pixel p falls in block floor(p / factor)
    return center, box


def read_arrays(
    path: str | os.PathLike, image_size: int = 0, normalize: bool = True
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The contract arrays and class names of an .npz file (what `load` wraps in a Dataset)."""
    path = os.fspath(path)
    _check_image_size(path, image_size)
    return from_raw(_read(path), path, image_size, normalize)


def read_placements(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The PLACEMENT_KEYS an .npz file stores ({} for a file imported before they existed)."""
    path = os.fspath(path)
    return placements(_read(path, ("images", *PLACEMENT_KEYS)), path)


def placements(raw: dict[str, np.ndarray], path: str) -> dict[str, np.ndarray]:
    """The PLACEMENT_KEYS of `raw` (.npz layout, with 'images'), each checked for shape [N,...]."""
    n = len(raw["images"])
    rank = raw["original_shapes"].shape[-1] if "original_shapes" in raw else 2
    shapes = {f.npz_key: (n, *f.shape) for f in fields(rank).values()}
    out = {k: raw[k] for k in PLACEMENT_KEYS if k in raw}
    for key, x in out.items():
        if x.shape != shapes[key]:
            raise ValueError(f"{path}: '{key}' has shape {x.shape}; expected {shapes[key]}")
    return out


def _check_image_size(path: str, image_size: object) -> None:
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 0
    ):
        raise ValueError(
            f"{path}: image_size must be an int >= 0 (0 = keep stored size), got {image_size!r}"
        )


def from_raw(
    raw: dict[str, np.ndarray], path: str, image_size: int = 0, normalize: bool = True
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Validate arrays in the .npz layout (keys of the module docstring) and convert them to
    the contract arrays and class names; errors start with `path`.

    Volumes ([N,D,H,W(,C)], see the module docstring) keep their grid: `image_size` must be 0.
    A stored `spacing` is passed on as the float32 key 'spacing' [N,R] (multiplied by the
    factor when 2-D images are downsampled). `normalize=False` keeps the stored intensities
    (float32) for a preprocessing pipeline that needs them (`data.pipeline`: CT windows in HU).
    """
    _check_image_size(path, image_size)
    if "images" not in raw:
        raise ValueError(
            f"{path}: missing required key 'images' (has {sorted(raw)}); the file needs "
            "'images' [N,H,W(,C)] and, for segmentation, 'masks' [N,H,W(,K)]"
        )
    rank = _rank(path, raw)
    images = _with_channels(path, "images", raw["images"], rank)
    n = len(images)
    if n == 0:
        raise ValueError(f"{path}: 'images' has shape {images.shape}; it holds no examples")
    has_mask = _mask_rows(path, raw, n)
    if "masks" in raw:
        masks = _masks(path, raw["masks"], rank)
    else:
        masks = np.zeros((*images.shape[:-1], 1), np.uint8)
    if images.shape[: rank + 1] != masks.shape[: rank + 1]:
        which = "N, H or W" if rank == 2 else "N, D, H or W"
        raise ValueError(
            f"{path}: 'images' {images.shape} and 'masks' {masks.shape} differ in {which}"
        )
    if images.dtype.kind not in "uif":
        raise ValueError(f"{path}: 'images' has dtype {images.dtype}; expected int or float")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError(f"{path}: 'images' contains NaN or inf; clean or drop those examples")
    rows = masks[has_mask]
    if masks.dtype.kind not in "uifb" or not ((rows == 0) | (rows == 1)).all():
        bad = np.unique(rows)[:8] if masks.dtype.kind in "uifb" else masks.dtype
        raise ValueError(
            f"{path}: 'masks' must hold only 0 and 1, found {bad}; binarise it (e.g. masks > 0)"
        )
    masks = np.where(has_mask.reshape(-1, *[1] * (masks.ndim - 1)), masks, 0).astype(masks.dtype)
    label_arrays, class_names = _labels(path, raw, n)
    groups = _groups(path, raw, n)
    if has_mask.any() and not has_mask.all():  # a pool beside the masked set
        ids = raw.get("ids", np.array([f"row {i}" for i in range(n)]))
        pool_lib.check_duplicates(
            images, np.arange(n) if groups is None else groups, ids, has_mask, path
        )
    centers, center_known = _points(path, raw, n, rank)
    boxes = _boxes(path, raw, n, rank)
    spacing = _vector(path, raw, "spacing", n, rank)
    if spacing is not None and (spacing.dtype.kind not in "uif" or not np.isfinite(spacing).all()):
        raise ValueError(f"{path}: 'spacing' must be finite numbers (dtype {spacing.dtype})")
    if spacing is not None and not (spacing > 0).all():
        raise ValueError(f"{path}: 'spacing' must be > 0 (mm per pixel/voxel)")

    if image_size and rank == 3:
        raise ValueError(
            f"{path}: image_size={image_size} cannot resize volumes; use image_size=0 and "
            "resample at import (jaxseg data import --spacing)"
        )
    if image_size:
        try:
            images, masks = resize.downsample(images, masks, int(image_size))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        factor = raw["images"].shape[1] // int(image_size)
        if centers is not None or boxes is not None:
            scaled = _scale_geometry(
                np.zeros((n, 2)) if centers is None else centers.astype(np.float64),
                np.zeros((n, 1, 4)) if boxes is None else boxes,
                factor,
            )
            centers = None if centers is None else scaled[0]
            boxes = None if boxes is None else scaled[1]
        if spacing is not None:
            spacing = spacing * factor

    arrays = derive.contract_arrays(
        images, masks, label_arrays["label"], groups, normalize=normalize
    )
    arrays = labels.merge(arrays, has_mask, centers, center_known, boxes)
    arrays.update(label_arrays)
    if spacing is not None:
        arrays["spacing"] = spacing.astype(np.float32)
    return arrays, class_names


def read_with_pool(path: str, pool_path: str, image_size: int = 0, normalize: bool = True):
    """``read_arrays`` of the masked file ``path`` with the cheap-label pool of another file
    appended (``jaxseg.data.pool.merge``: masks dropped, groups joined by id, duplicates
    refused)."""
    _check_image_size(path, image_size)
    keys = (*_KEYS, "ids")
    merged = pool_lib.merge(_read(path, keys), _read(pool_path, keys), path, pool_path)
    return from_raw(merged, path, image_size, normalize)


def load(
    path: str | os.PathLike, image_size: int = 0, pool: str = "", normalize: bool = True
) -> Dataset:
    """Read an .npz segmentation dataset and convert it to the jaxseg.data contract.

    Args:
      path: the .npz file.
      image_size: 0 keeps the stored size; otherwise square images are block-mean downsampled
        to image_size (a divisor of the stored side), masks re-thresholded at 0.5.
      pool: '' or another .npz whose examples join as a cheap-label pool (their masks dropped;
        see ``jaxseg.data.pool``).
      normalize: standardise each image (False: the stored intensities as float32, what
        `data.load` hands to the preprocessing pipeline).

    Returns:
      Dataset named `path` (arrays of `read_arrays`). Centres/boxes come from the file's
      `centers`/`boxes` when present (rescaled on downsampling), else from the (resized) masks;
      has_object always comes from the (resized) masks, so a lesion that vanishes on
      downsampling counts as no object.
    """
    path = os.fspath(path)
    if pool:
        arrays, class_names = read_with_pool(path, os.fspath(pool), image_size, normalize)
        return Dataset(arrays, class_names, path)
    arrays, class_names = read_arrays(path, image_size, normalize)
    return Dataset(arrays, class_names, path)
