"""Host-side image preprocessing (numpy / scikit-image), applied once when a dataset is loaded.

Functions take images [N,H,W,C] or volumes [N,D,H,W,C] (ct_window and zscore any shape) and
return float32; per-image statistics pool every axis but N. `apply` runs
a comma-separated pipeline string such as "grayscale,clahe,gamma:0.8,normalize", with numeric
arguments after ':' (several separated by ':', e.g. "ct_window:40:400"). Steps that change the
spatial shape (pad_to_multiple) are not pipeline steps: masks, centres and boxes must follow them
(centres/boxes shift by (left, top[, front])), so callers pad explicitly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from skimage import exposure

from jaxseg.data.derive import normalize_images

# Rec. 709 luminance (the weights of skimage.color.rgb2gray).
LUMINANCE = np.array([0.2125, 0.7154, 0.0721], np.float32)

normalize = normalize_images  # per-image zero mean / unit sd (sd 0 -> only centred)


def _images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim not in (4, 5):
        raise ValueError(
            f"images must have shape [N,H,W,C] or [N,D,H,W,C], got shape {images.shape}"
        )
    return images


def _per_image(x: np.ndarray) -> tuple[int, ...]:
    """The axes of one image (all but N), for per-image statistics."""
    return tuple(range(1, x.ndim))


def grayscale(images: np.ndarray) -> np.ndarray:
    """[N,*S,3] -> luminance [N,*S,1] (Rec. 709 weights); [N,*S,1] is returned as float32."""
    images = _images(images)
    C = images.shape[-1]
    if C == 1:
        return images.astype(np.float32)
    if C != 3:
        raise ValueError(f"grayscale needs C = 1 or 3 channels, got shape {images.shape}")
    return (images.astype(np.float32) @ LUMINANCE)[..., None]


def minmax(images: np.ndarray) -> np.ndarray:
    """Per-image scaling of [N,*S,C] (over *S and C jointly) to [0,1]; constant images -> 0."""
    x = _images(images).astype(np.float64)
    lo = x.min(axis=_per_image(x), keepdims=True)
    span = x.max(axis=_per_image(x), keepdims=True) - lo
    return ((x - lo) / np.where(span > 0, span, 1.0)).astype(np.float32)


def clahe(
    images: np.ndarray, clip_limit: float = 0.01, kernel_size: int | None = None
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation per image and channel.

    Each image is min-max scaled to [0,1] (`minmax`), then skimage.exposure.equalize_adapthist
    runs on every channel separately (no HSV conversion for C=3); volumes get 3D CLAHE (cubic
    contextual regions).

    Args:
      images: [N,H,W,C] or [N,D,H,W,C] numeric (volumes need W > 4: skimage would take a
        trailing axis of 3 or 4 for colour).
      clip_limit: skimage's normalised clip limit (higher = more contrast).
      kernel_size: contextual region side in voxels (None = skimage's 1/8 of each side).

    Returns:
      float32 of the input's shape, in [0,1].
    """
    x = minmax(images)
    if x.ndim == 5 and x.shape[3] in (3, 4):
        raise ValueError(
            f"clahe on volumes needs W > 4 (skimage reads 3 or 4 as colour), got {x.shape}"
        )
    out = np.empty_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[-1]):
            out[n, ..., c] = exposure.equalize_adapthist(
                x[n, ..., c], kernel_size=kernel_size, clip_limit=clip_limit
            )
    return out


def gamma(images: np.ndarray, g: float) -> np.ndarray:
    """Gamma correction x ** g on [0,1] intensities (g < 1 brightens, g > 1 darkens).

    Images already within [0,1] are used as they are (so g = 1 is the identity there); any
    other image is first min-max scaled to [0,1] per image.

    Returns:
      float32 of the input's shape ([N,H,W,C] or [N,D,H,W,C]), in [0,1].
    """
    if not g > 0:
        raise ValueError(f"gamma must be > 0, got {g!r}")
    x = _images(images).astype(np.float32)
    inside = ((x >= 0) & (x <= 1)).all(axis=_per_image(x), keepdims=True)
    x = np.where(inside, x, minmax(x))
    return np.power(x, np.float32(g)).astype(np.float32)


def ct_window(volumes: np.ndarray, center: float, width: float) -> np.ndarray:
    """CT intensity window: clip to [center - width/2, center + width/2], scale to [0,1].

    Args:
      volumes: any shape, in Hounsfield units (e.g. center 40, width 400 for soft tissue).

    Returns:
      float32 of the same shape.
    """
    if not width > 0:
        raise ValueError(f"ct_window width must be > 0, got {width!r}")
    lo = center - width / 2.0
    x = np.clip(np.asarray(volumes, np.float64), lo, lo + width)
    return ((x - lo) / width).astype(np.float32)


def zscore(images: np.ndarray, mean: float | None = None, std: float | None = None) -> np.ndarray:
    """Dataset-level z-score (x - mean) / std with statistics given or taken over the whole array.

    A zero std divides by 1. Returns float32 of the input's shape.
    """
    x = np.asarray(images, np.float64)
    mean = float(x.mean()) if mean is None else float(mean)
    std = float(x.std()) if std is None else float(std)
    return ((x - mean) / (std if std > 0 else 1.0)).astype(np.float32)


def pad_to_multiple(
    images: np.ndarray, multiple: int = 16, value: float = 0
) -> tuple[np.ndarray, tuple[int, ...]]:
    """Pad every spatial axis up to a multiple of `multiple` (the odd extra row/column/slice
    goes at the end: bottom, right, back).

    Args:
      images: [N,H,W,C] or [N,D,H,W,C] (masks too: pad them with value 0).
      multiple: positive int.
      value: constant fill.

    Returns:
      (padded array of the input's dtype, pads) with pads = (before, after) per spatial axis in
      array order: (top, bottom, left, right) in 2D, (front, back, top, bottom, left, right) in
      3D. Centres and boxes of the padded arrays shift by the befores in (x, y[, z]) order:
      (left, top[, front]).
    """
    images = _images(images)
    if isinstance(multiple, bool) or not isinstance(multiple, int | np.integer) or multiple < 1:
        raise ValueError(f"multiple must be a positive int, got {multiple!r}")
    pads: list[int] = []
    for size in images.shape[1:-1]:
        extra = -size % multiple
        pads += [extra // 2, extra - extra // 2]
    widths = [(0, 0), *zip(pads[::2], pads[1::2], strict=True), (0, 0)]
    return np.pad(images, widths, constant_values=value), tuple(pads)


def unpad(images: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    """Undo `pad_to_multiple`: crop its (before, after) pads per spatial axis from [N,*S,C]."""
    images = _images(images)
    if len(pads) != 2 * (images.ndim - 2):
        raise ValueError(f"pads {pads} need 2 entries per spatial axis of {images.shape}")
    crop = [
        slice(before, size - after)
        for before, after, size in zip(pads[::2], pads[1::2], images.shape[1:-1], strict=True)
    ]
    return images[(slice(None), *crop)]


PREPROCESSORS: dict[str, Callable[..., np.ndarray]] = {
    "grayscale": grayscale,
    "normalize": normalize,
    "minmax": minmax,
    "clahe": clahe,
    "gamma": gamma,
    "ct_window": ct_window,
    "zscore": zscore,
}


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse(steps: str) -> list[tuple[str, tuple[int | float, ...]]]:
    """Parse "name[:arg[:arg]],..." into [(name, args)], checking names and argument counts.

    An empty (or blank) string is the empty pipeline.
    """
    if not isinstance(steps, str):
        raise ValueError(f"preprocessing steps must be a string, got {steps!r}")
    if not steps.strip():
        return []
    parsed = []
    for step in steps.split(","):
        name, *raw = [part.strip() for part in step.split(":")]
        if name not in PREPROCESSORS:
            raise ValueError(
                f"unknown preprocessing step {name!r} in {steps!r}; known steps: "
                f"{sorted(PREPROCESSORS)}"
            )
        fn = PREPROCESSORS[name]
        try:
            args = tuple(_number(a) for a in raw)
            inspect.signature(fn).bind(None, *args)
        except (ValueError, TypeError):
            params = list(inspect.signature(fn).parameters)[1:]
            usage = ":".join([name, *params])
            raise ValueError(
                f"bad preprocessing step {step.strip()!r} in {steps!r}; usage {usage} "
                "(numeric arguments, trailing ones optional)"
            ) from None
        parsed.append((name, args))
    return parsed


def apply(images: np.ndarray, steps: str) -> np.ndarray:
    """Run the pipeline `steps` (see `parse`) on [N,H,W,C] or [N,D,H,W,C]; returns float32."""
    x = np.asarray(images)
    for name, args in parse(steps):
        x = PREPROCESSORS[name](x, *args)
    return np.asarray(x, np.float32)


__all__ = [
    "LUMINANCE",
    "PREPROCESSORS",
    "apply",
    "clahe",
    "ct_window",
    "gamma",
    "grayscale",
    "minmax",
    "normalize",
    "pad_to_multiple",
    "parse",
    "unpad",
    "zscore",
]
