"""Procedural fundus-like photographs with optic-disc masks (the default, file-free data source).

Each grayscale image shows a circular field of view with vignetting, low-frequency background
texture, a bright elliptical optic disc with a brighter cup inside it, dark tapering vessels
radiating from the disc (and crossing it), and Gaussian noise. The segmentation target is the
hard disc ellipse; the class is the cup-to-disc ratio (CDR) tertile. Image i depends only on
(seed, i), so generating more images never changes the earlier ones.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import ndimage

from jaxseg.data import derive, labels
from jaxseg.data.dataset import Dataset

CLASS_NAMES = ("small_cup", "medium_cup", "large_cup")
CDR_RANGE = (0.3, 0.75)
CDR_THRESHOLDS = (0.45, 0.6)  # tertiles of the uniform CDR range -> balanced classes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int) -> np.ndarray:
    """n points [n,2] on the quadratic Bezier curve p0 -> p2 with control point p1."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _vessel_tree(
    rng: np.random.Generator, start: np.ndarray, size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Curved vessels (and some branches) from `start`: list of (points [n,2] (x, y), width [n])."""
    scale = size / 64.0
    vessels = []
    for _ in range(int(rng.integers(4, 8))):
        phi = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.35, 0.8) * size
        p0 = start + rng.normal(0, 0.6 * scale, 2)
        direction = np.array([np.cos(phi), np.sin(phi)])
        normal = np.array([-direction[1], direction[0]])
        p2 = p0 + length * direction
        p1 = 0.5 * (p0 + p2) + rng.uniform(-0.35, 0.35) * length * normal
        n = int(np.ceil(2.5 * length)) + 2  # spacing < 0.5 px keeps the raster line connected
        pts = _bezier(p0, p1, p2, n)
        width = rng.uniform(0.7, 1.6) * scale * np.linspace(1.0, 0.4, n)
        vessels.append((pts, width))
        if rng.uniform() < 0.6:  # one branch leaving the vessel part-way along
            j = int(rng.uniform(0.3, 0.6) * n)
            b_phi = phi + rng.choice([-1, 1]) * rng.uniform(0.4, 0.9)
            b_len = rng.uniform(0.4, 0.6) * length * (1 - j / n)
            b_dir = np.array([np.cos(b_phi), np.sin(b_phi)])
            q0 = pts[j]
            q2 = q0 + b_len * b_dir
            q1 = 0.5 * (q0 + q2) + rng.uniform(-0.2, 0.2) * b_len * np.array([-b_dir[1], b_dir[0]])
            m = int(np.ceil(2.5 * b_len)) + 2
            vessels.append((_bezier(q0, q1, q2, m), 0.7 * width[j] * np.linspace(1.0, 0.5, m)))
    return vessels


def _vessel_map(vessels: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
    """Vessel opacity [S,S] in [0,1]: exp(-(d/w)^2), d = distance to the nearest centreline."""
    wmap = np.zeros((size, size), np.float64)
    for pts, width in vessels:
        col = np.rint(pts[:, 0]).astype(np.int64)
        row = np.rint(pts[:, 1]).astype(np.int64)
        ok = (row >= 0) & (row < size) & (col >= 0) & (col < size)
        np.maximum.at(wmap, (row[ok], col[ok]), width[ok])
    centreline = wmap > 0
    if not centreline.any():
        return np.zeros((size, size), np.float32)
    dist, (ri, ci) = ndimage.distance_transform_edt(~centreline, return_indices=True)
    return np.exp(-((dist / wmap[ri, ci]) ** 2)).astype(np.float32)


def _one_image(
    seed: int, i: int, xx: np.ndarray, yy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Image [S,S] float32, disc mask [S,S] float32 and cup-to-disc ratio of example i."""
    rng = np.random.default_rng([seed, i])
    S = xx.shape[0]
    # Field of view: soft-edged circle with quadratic radial falloff and low-frequency texture.
    fov_c = (S - 1) / 2 + rng.uniform(-0.02, 0.02, 2) * S
    R = rng.uniform(0.44, 0.49) * S
    r_fov = np.hypot(xx - fov_c[0], yy - fov_c[1])
    fov = _sigmoid((R - r_fov) / (0.01 * S + 0.3))
    background = rng.uniform(0.45, 0.6) * (1 - rng.uniform(0.3, 0.5) * (r_fov / R) ** 2)
    for _ in range(3):
        k = rng.uniform(-3, 3, 2) * 2 * np.pi / S
        background += rng.uniform(0.02, 0.05) * np.cos(k[0] * xx + k[1] * yy + rng.uniform(0, 7))
    # Optic disc: rotated ellipse kept inside the field of view.
    rd = rng.uniform(0.07, 0.12) * S
    ecc = rng.uniform(0.0, 0.15)
    a, b = rd * (1 + ecc), rd / (1 + ecc)
    theta = rng.uniform(0, np.pi)
    max_rho = R - a - max(2.0, 0.04 * S)
    rho, ang = rng.uniform(0.2, 1.0) * max_rho, rng.uniform(0, 2 * np.pi)
    disc_c = fov_c + rho * np.array([np.cos(ang), np.sin(ang)])
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    dx, dy = xx - disc_c[0], yy - disc_c[1]
    u, v = cos_t * dx + sin_t * dy, -sin_t * dx + cos_t * dy
    q = np.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 on the disc boundary
    mask = (q <= 1.0).astype(np.float32)
    soft = rng.uniform(0.4, 0.9) * S / 64
    disc = _sigmoid((1 - q) * rd / soft)
    # Cup: same orientation, scaled by the CDR, offset inside the disc.
    cdr = rng.uniform(*CDR_RANGE)
    off = rng.uniform(0, 0.5 * (1 - cdr) * b) * np.array([np.cos(ang), np.sin(ang)])
    cu, cv = u - (cos_t * off[0] + sin_t * off[1]), v - (-sin_t * off[0] + cos_t * off[1])
    q_cup = np.sqrt((cu / (cdr * a)) ** 2 + (cv / (cdr * b)) ** 2)
    cup = _sigmoid((1 - q_cup) * cdr * rd / (1.5 * soft))
    # Vessels darken multiplicatively, on the disc as well as the background.
    vessels = _vessel_map(_vessel_tree(rng, disc_c, S), S)
    bright = background + rng.uniform(0.18, 0.35) * disc + rng.uniform(0.12, 0.25) * cup
    image = fov * bright * (1 - rng.uniform(0.25, 0.45) * vessels) + (1 - fov) * 0.03
    image += rng.normal(0, rng.uniform(0.03, 0.07), (S, S))
    return image.astype(np.float32), mask, float(cdr)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"fundus.generate: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate(
    num_images: int,
    image_size: int = 64,
    seed: int = 0,
    num_masked: int = 0,
    normalize: bool = True,
) -> Dataset:
    """Generate `num_images` synthetic fundus images with optic-disc masks.

    Args:
      num_images: N >= 1.
      image_size: S, a multiple of 16 and >= 16 (U-Nets pool four times).
      seed: non-negative int; example i is drawn from np.random.default_rng([seed, i]).
      num_masked: 0 (every image has its mask) or 1..N: only the first `num_masked` images keep
        their mask; the others form a centre-only pool (method 1's setting: many disc centres,
        few masks): has_mask False, mask zeros, the disc centre kept, no box.
      normalize: standardise each image (False: the generator's own intensities, float32).

    Returns:
      Dataset named 'fundus' with image [N,S,S,1], mask [N,S,S,1] (the disc ellipse), center,
      box, has_object (always True), label [N] (CDR tertile, see CLASS_NAMES), group = arange(N).
    """
    n = _check_int("num_images", num_images, 1)
    size = _check_int("image_size", image_size, 16)
    if size % 16:
        raise ValueError(
            f"fundus.generate: image_size must be a multiple of 16, got {size}; "
            f"try {max(16, size // 16 * 16)} or {size // 16 * 16 + 16}"
        )
    seed = _check_int("seed", seed, 0)
    num_masked = _check_int("num_masked", num_masked, 0)
    if num_masked > n:
        raise ValueError(f"fundus.generate: num_masked={num_masked} exceeds num_images={n}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images = np.empty((n, size, size, 1), np.float32)
    masks = np.empty((n, size, size, 1), np.float32)
    cdr = np.empty(n)
    for i in range(n):
        images[i, ..., 0], masks[i, ..., 0], cdr[i] = _one_image(seed, i, xx, yy)
    classes = np.digitize(cdr, CDR_THRESHOLDS)
    arrays = derive.contract_arrays(images, masks, classes, normalize=normalize)
    if num_masked:
        has_mask = np.arange(n) < num_masked
        arrays["mask"][~has_mask] = 0
        arrays = labels.merge(arrays, has_mask, arrays["center"], np.ones(n, bool))
    return Dataset(arrays, CLASS_NAMES, "fundus")
