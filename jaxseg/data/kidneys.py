"""Procedural abdominal CT volumes with kidney masks (the file-free 3D data source, method 4).

Each volume [D,H,W] is an axial stack in Hounsfield units: slice index d runs head to feet
(z = 0 is the most cranial slice), row r anterior to posterior, column c from the patient's
right to their left (radiological convention: the patient's left kidney lies at large x).
Contents: air (-1000 HU) around an elliptic body cylinder with a subcutaneous fat ring
(~-100 HU) around soft tissue (~40 HU); liver (right, cranial) and spleen (left); bowel gas
pockets (anterior); a spine posterior in the midline (vertebral bodies with a ~700 HU cortex,
~250 HU marrow and darker discs, plus spinous processes); two kidneys in perirenal fat, left and
right of the spine: bean-shaped ellipsoids (cortex ~180 HU, medulla ~100 HU) tilted with their
upper poles medial, with a fat-filled (darker, -40 HU) hilum notch facing the spine. The left
kidney sits higher (smaller z) and is larger than the right one, with per-volume jitter, and
each kidney lies wholly inside its own half of the W axis (right kidney in columns
[0, W//2), left kidney in [W - W//2, W)), so a left/right pretext can crop per side. Half the
volumes carry a hypodense lesion (~35 HU) inside one kidney: ``label`` 1 ('lesion'), else 0.

``image`` holds Hounsfield units, not normalised: window it in the data config, e.g.
``preprocess='ct_window:110:380,normalize'`` (method 4's [-80, 300] window), where air, fat
and bone saturate and the kidneys stand out. ``mask`` = both kidneys (lesions included, the
hilum excluded), ``spacing`` = (3.22, 1.62, 1.62) mm (D, H, W: method 4's resampled KiTS
spacing). Volume i depends only on (seed, i).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from jaxseg.data import derive
from jaxseg.data.dataset import Dataset

CLASS_NAMES = ("no_lesion", "lesion")
SPACING = (3.22, 1.62, 1.62)  # mm per voxel along D, H, W
MIN_SIZE = 16


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _radius(
    grid: Sequence[np.ndarray], centre: Sequence[float], axes: Sequence[float], tilt: float = 0.0
) -> np.ndarray:
    """Normalised ellipsoid radius q (1 on the surface) on the (z, y, x) grid of normalised
    coordinates; ``axes`` = semi-axes (z, y, x); ``tilt`` rotates the x-z plane (radians)."""
    z, y, x = (g - c for g, c in zip(grid, centre, strict=True))
    if tilt:
        z, x = np.cos(tilt) * z + np.sin(tilt) * x, -np.sin(tilt) * z + np.cos(tilt) * x
    return np.sqrt((z / axes[0]) ** 2 + (y / axes[1]) ** 2 + (x / axes[2]) ** 2)


def _paint(image: np.ndarray, q: np.ndarray, value: float, edge: float = 0.04) -> None:
    """Blend ``value`` into ``image`` inside q < 1 with a soft edge (width ~ ``edge`` in q)."""
    weight = _sigmoid((1.0 - q) / edge)
    image += weight * (value - image)


def _kidney(
    rng: np.random.Generator, grid: Sequence[np.ndarray], side: int, scale: float, z0: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(bean mask, outline q, hilum q, medulla q, smallest semi-axis) of one kidney on the
    normalised grid; side -1 = right, +1 = left."""
    centre = (z0, rng.uniform(0.2, 0.3), side * rng.uniform(0.4, 0.46))
    axes = np.array([0.3, 0.15, 0.14]) * scale * rng.uniform(0.95, 1.05, 3)
    tilt = side * rng.uniform(0.15, 0.3)  # upper pole medial
    q = _radius(grid, centre, axes, tilt)
    hilum_centre = (centre[0], centre[1] - 0.25 * axes[1], centre[2] - side * 0.75 * axes[2])
    hilum = _radius(grid, hilum_centre, axes * np.array([0.45, 0.5, 0.6]), tilt)
    medulla = _radius(grid, centre, axes * 0.6, tilt)
    return (q <= 1) & (hilum > 1), q, hilum, medulla, float(axes.min())


def _one_volume(seed: int, i: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """HU volume [D,H,W] float32, kidney mask [D,H,W] bool and lesion flag of example i."""
    rng = np.random.default_rng([seed, i])
    axes = [(np.arange(n, dtype=np.float32) + 0.5) * (2 / n) - 1 for n in shape]
    grid = np.meshgrid(*axes, indexing="ij")  # normalised (z, y, x) in (-1, 1), voxel centres
    z, y, x = grid
    image = np.full(shape, -1000.0, np.float32)
    # Body: an elliptic cylinder along z, a fat ring, soft tissue inside.
    bx, by, cy = rng.uniform(0.8, 0.92), rng.uniform(0.62, 0.74), rng.uniform(-0.05, 0.05)
    ring = np.sqrt((x / bx) ** 2 + ((y - cy) / by) ** 2)
    _paint(image, ring, rng.uniform(-110, -90))
    _paint(image, ring / rng.uniform(0.84, 0.9), rng.uniform(35, 55))
    # Liver (patient's right = small x, cranial) and spleen (left, posterior, cranial).
    liver_c = (rng.uniform(-0.8, -0.6), rng.uniform(-0.15, 0.0), rng.uniform(-0.45, -0.3))
    _paint(image, _radius(grid, liver_c, (0.5, 0.45, 0.4)), rng.uniform(55, 70))
    spleen_c = (rng.uniform(-0.7, -0.5), rng.uniform(0.15, 0.3), rng.uniform(0.55, 0.65))
    _paint(image, _radius(grid, spleen_c, (0.25, 0.18, 0.12)), rng.uniform(45, 60))
    # Kidneys: the left one (x > 0) higher (smaller z) and larger, both in perirenal fat.
    size = rng.uniform(0.9, 1.1)
    z_right = rng.uniform(0.05, 0.2)
    left = _kidney(rng, grid, +1, size * rng.uniform(0.98, 1.15), z_right - rng.uniform(-0.05, 0.3))
    right = _kidney(rng, grid, -1, size * rng.uniform(0.9, 1.02), z_right)
    for _, q, _, _, _ in (left, right):
        _paint(image, q / 1.35, rng.uniform(-100, -80))
    # Spine in the midline, posterior: vertebral bodies separated by discs, spinous processes.
    sy, radius = rng.uniform(0.38, 0.46), rng.uniform(0.12, 0.15)
    body = np.sqrt(x**2 + (y - sy) ** 2) / radius
    period, phase = rng.uniform(0.45, 0.6), rng.uniform(0, 1)
    disc = np.abs(((z / period + phase) % 1.0) - 0.5) > 0.38
    bone = np.where(disc, rng.uniform(70, 100), rng.uniform(650, 750))
    marrow = np.where(disc, bone, rng.uniform(200, 300))
    _paint(image, body, bone)
    _paint(image, body / 0.75, marrow)
    process = np.maximum(np.abs(x) / 0.04, np.abs(y - sy - radius - 0.12) / 0.1)
    _paint(image, np.where(disc, 2.0, process), rng.uniform(400, 600), 0.08)
    # Kidney tissue: cortex, medulla, fat-filled hilum; then clip each to its half.
    W = shape[2]
    columns = np.arange(W)[None, None, :]
    halves = (columns >= W - W // 2, columns < W // 2)
    mask = np.zeros(shape, bool)
    for (bean, q, hilum, medulla, _), half in zip((left, right), halves, strict=True):
        _paint(image, q, rng.uniform(160, 200))
        _paint(image, medulla, rng.uniform(90, 120), 0.08)
        _paint(image, hilum, rng.uniform(-50, -30))
        mask |= bean & half
    # A hypodense lesion inside one kidney for half the volumes (part of the kidney mask).
    lesion = bool(rng.uniform() < 0.5)
    if lesion:
        bean, q, _, _, minor = left if rng.uniform() < 0.5 else right
        inside = np.argwhere(bean & mask & (q < 0.6))
        if len(inside) == 0:  # a kidney too small to hold a voxel that deep
            inside = np.argwhere(bean & mask)
        centre = tuple(g[tuple(inside[rng.integers(len(inside))])] for g in grid)
        spot = _radius(grid, centre, (rng.uniform(0.6, 0.9) * minor,) * 3)
        image = np.where(mask, image + _sigmoid((1 - spot) / 0.1) * (35.0 - image), image)
    # Bowel gas pockets, anterior and away from the kidneys.
    for _ in range(int(rng.integers(2, 5))):
        centre = (rng.uniform(-0.6, 0.8), rng.uniform(-0.55, -0.2), rng.uniform(-0.4, 0.4))
        pocket = image.copy()
        _paint(pocket, _radius(grid, centre, rng.uniform(0.06, 0.12, 3)), -1000.0)
        image = np.where(mask, image, pocket)
    image += rng.normal(0, rng.uniform(8, 15), shape)
    return image.astype(np.float32), mask, lesion


def _size(value: object) -> tuple[int, int, int]:
    sizes = (value,) * 3 if isinstance(value, numbers.Integral) else value
    if (
        not isinstance(sizes, tuple | list)
        or len(sizes) != 3
        or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < MIN_SIZE
            for s in sizes
        )
    ):
        raise ValueError(
            f"kidneys.generate: image_size must be an integer or (D, H, W) of integers >= "
            f"{MIN_SIZE}, got {value!r}"
        )
    return tuple(int(s) for s in sizes)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"kidneys.generate: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate(
    num_images: int, image_size: int | tuple[int, int, int] = 32, seed: int = 0
) -> Dataset:
    """Generate `num_images` CT-like volumes with kidney masks.

    Args:
      num_images: N >= 1.
      image_size: S (cubic volumes S³) or (D, H, W), each >= 16. The dense U-Net needs sizes
        divisible by 2^len(dense_layers): pick multiples of 16 or set data.pad_multiple.
      seed: non-negative int; volume i is drawn from np.random.default_rng([seed, i]).

    Returns:
      Dataset named 'kidneys' with image [N,D,H,W,1] in HU (see the module docstring), mask
      [N,D,H,W,1] (both kidneys), center [N,3] (x, y, z), box [N,6], has_object (always True),
      label [N] (1 = a lesion, see CLASS_NAMES), group = arange(N), spacing [N,3] = SPACING.
    """
    n = _check_int("num_images", num_images, 1)
    shape = _size(image_size)
    seed = _check_int("seed", seed, 0)
    images = np.empty((n, *shape, 1), np.float32)
    masks = np.empty((n, *shape, 1), np.float32)
    labels = np.empty(n, np.int32)
    for i in range(n):
        images[i, ..., 0], masks[i, ..., 0], labels[i] = _one_volume(seed, i, shape)
    arrays = derive.contract_arrays(images, masks, labels, spacing=SPACING, normalize=False)
    return Dataset(arrays, CLASS_NAMES, "kidneys")
