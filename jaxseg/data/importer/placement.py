"""Geometry of the resize policies: where each example lands on the common output grid, and
back (`unplace`, for predictions)."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from scipy import ndimage

RESIZE_POLICIES = ("pad", "crop", "pad16")


@dataclasses.dataclass(frozen=True)
class Placement:
    """How one example maps onto the output grid: input coordinate p (per axis, array order)
    -> (p + offset + 0.5) · scale - 0.5 (offsets < 0 crop). `shape` is the output shape."""

    offset: tuple[int, ...]
    scale: float
    shape: tuple[int, ...]


def placement(shape: tuple[int, ...], policy: str, size: int, target: tuple[int, ...]) -> Placement:
    """The Placement of an example of spatial `shape` under a resize policy; `target` is the
    common padded shape (used by 'pad16')."""
    if policy == "pad16":
        return Placement(
            tuple((t - n) // 2 for t, n in zip(target, shape, strict=True)), 1.0, target
        )
    side = max(shape) if policy == "pad" else min(shape)
    offset = tuple((side - n) // 2 for n in shape)  # negative when cropping
    out = size or side
    return Placement(offset, out / side, (out,) * len(shape))


def plan(
    grids: dict[str, tuple[int, ...]], policy: str, size: int, multiple: int, noun: str
) -> tuple[dict[str, Placement], tuple[int, ...]]:
    """({id: Placement}, the common output shape) for examples of spatial shapes `grids`;
    'pad16' pads to the largest shape rounded up to `multiple`. Differing output shapes (a
    policy with size 0) are a ValueError calling the examples `noun`."""
    rank = len(next(iter(grids.values())))
    target = tuple(
        -(-max(g[a] for g in grids.values()) // multiple) * multiple for a in range(rank)
    )
    places = {s: placement(g, policy, size, target) for s, g in grids.items()}
    shapes = {p.shape for p in places.values()}
    if len(shapes) > 1:
        raise ValueError(
            f"resize='{policy}' with size=0 gives {noun} of shapes {sorted(shapes)}; "
            "pass size=N (--size) or use resize='pad16'"
        )
    return places, shapes.pop()


def _shift_square(x: np.ndarray, offset: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Zero-pad (offset > 0) or crop (offset < 0) the leading axes of x into `shape`."""
    out = np.zeros(shape + x.shape[len(shape) :], x.dtype)
    src, dst = [], []
    for o, n, m in zip(offset, x.shape, shape, strict=False):
        lo, hi = max(0, -o), min(n, m - o)
        src.append(slice(lo, hi))
        dst.append(slice(lo + o, hi + o))
    out[tuple(dst)] = x[tuple(src)]
    return out


def place(x: np.ndarray, where: Placement, is_mask: bool) -> np.ndarray:
    """Apply a Placement to [*S,C]: pad/crop, then (2-D only) resize by `scale` with Lanczos
    (images) or box averaging thresholded at 0.5 (masks). Integer images keep their dtype."""
    side = tuple(round(n / where.scale) for n in where.shape)
    x = _shift_square(x, where.offset, side)
    if where.scale == 1.0:
        return x
    h, w = where.shape
    filt = Image.Resampling.BOX if is_mask else Image.Resampling.LANCZOS
    channels = [
        np.asarray(Image.fromarray(x[..., c].astype(np.float32), mode="F").resize((w, h), filt))
        for c in range(x.shape[-1])
    ]
    y = np.stack(channels, axis=-1)
    if is_mask:
        return (y >= 0.5).astype(x.dtype)
    if x.dtype.kind in "ui":
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(x.dtype)
    return y


def unplace(
    x: np.ndarray, where: Placement, original_shape: tuple[int, ...], order: int | None = None
) -> np.ndarray:
    """The inverse of `place` for a mask or probability map on the output grid: x
    [*where.shape] or [*where.shape, K] -> [*original_shape] or [*original_shape, K].

    Undoes the scale by sampling x at output coordinate (q + 0.5) · scale - 0.5 of each padded
    (or cropped) pixel q, with `order` 0 (nearest: masks; the default for bool and integer x)
    or 1 (linear, edge values repeated: probabilities; the default for float x), then the
    offsets; what was cropped away is 0. Keeps x's dtype.
    """
    rank = len(where.shape)
    if x.shape[:rank] != tuple(where.shape) or x.ndim > rank + 1:
        raise ValueError(f"unplace: x has shape {x.shape}; expected {where.shape}[+(K,)]")
    order = (0 if x.dtype.kind in "biu" else 1) if order is None else order
    side = tuple(round(n / where.scale) for n in where.shape)
    y = x if where.scale == 1.0 else _rescale(x, where.scale, side, order)
    return _shift_square(y, tuple(-o for o in where.offset), tuple(original_shape))


def _rescale(x: np.ndarray, scale: float, side: tuple[int, ...], order: int) -> np.ndarray:
    """Sample [*grid(,K)] at (q + 0.5) · scale - 0.5 for each q of `side` -> [*side(,K)]."""
    rank = len(side)
    channels = x.reshape(*x.shape[:rank], -1).astype(np.float32)
    out = np.stack(
        [
            ndimage.affine_transform(
                channels[..., c],
                np.full(rank, scale),
                offset=0.5 * scale - 0.5,
                output_shape=side,
                order=order,
                mode="nearest",
            )
            for c in range(channels.shape[-1])
        ],
        axis=-1,
    )
    return out.reshape(side + x.shape[rank:]).astype(x.dtype)


def place_geometry(
    center: np.ndarray | None, box: np.ndarray | None, where: Placement, where_name: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Map a CSV centre (x, y[, z]) and inclusive box through a Placement (coordinates are in
    reverse array order); a centre or box falling outside the output is a ValueError."""
    rank = len(where.shape)
    off = np.asarray(where.offset[::-1], np.float64)  # (x, y[, z]) order
    size = np.asarray(where.shape[::-1], np.float64)
    s = where.scale
    if center is not None:
        center = (center + off + 0.5) * s - 0.5
        if ((center < -0.5) | (center > size - 0.5)).any():
            raise ValueError(f"{where_name}: CSV centre falls outside the output image")
    if box is not None:
        lo = np.floor((box[:rank] + off) * s)
        hi = np.ceil((box[rank:] + off + 1) * s) - 1
        if (hi < 0).any() or (lo > size - 1).any() or (lo > hi).any():
            raise ValueError(f"{where_name}: CSV box falls outside the output image or is empty")
        box = np.concatenate([np.clip(lo, 0, size - 1), np.clip(hi, 0, size - 1)])
    return center, box
