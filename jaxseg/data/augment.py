"""On-device data augmentation for segmentation batches: random affine warps and Gaussian blur.

Everything here is pure jax (jax.random for randomness) so it runs inside the jitted train step.

Coordinates follow jaxseg.data.derive: pixel (row r, col c) sits at (x, y) = (c, r); x grows to
the right and y grows downwards (row 0 at the top). An affine is a [3,3] homogeneous matrix that
maps OUTPUT pixel coordinates to INPUT coordinates (the "inverse map" a warp samples with):

    (x_in, y_in, 1) = A @ (x_out, y_out, 1).

The geometric (forward, input -> output) transform built by `compose_affine` applies, about the
image centre ((W-1)/2, (H-1)/2): horizontal flip (x -> W-1-x), vertical flip (y -> H-1-y),
rotation by `rotate` degrees, x-shear by `shear` degrees (x += tan(shear) * y), zoom by `scale`
(> 1 enlarges), then a shift by (tx, ty) pixels. With y pointing down, a POSITIVE angle turns the
image CLOCKWISE as displayed; np.rot90(image) (counter-clockwise) is rotate = -90 on a square
image, whose exact inverse map is A = [[0, -1, W-1], [1, 0, 0], [0, 0, 1]].

An identity matrix leaves every input bit-identical (warp, transform_points and transform_boxes
return their input unchanged for those examples), so an all-zero `AugmentConfig` is the identity.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Batch keys warped as images (bilinear) and as masks (nearest); other keys (besides the
# geometric `center` and `box`) pass through untouched.
IMAGE_KEYS = ("image",)
MASK_KEYS = ("mask", "true_mask")  # true_mask: the box task's expert masks (int8, -1 unknown)
_BOX_EPS = 1e-3  # float slack when snapping transformed box edges to whole pixels


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation ranges (hashable, so it can be a static argument of jax.jit).

    Attributes:
      shift: max shift as a fraction of the image size; tx ~ U(-shift, shift) * W, ty likewise * H.
      rotate: max rotation in degrees; angle ~ U(-rotate, rotate).
      flip: horizontal flip (x -> W-1-x) with probability 0.5.
      vflip: vertical flip (y -> H-1-y) with probability 0.5.
      shear: max x-shear angle in degrees (< 90); angle ~ U(-shear, shear).
      zoom: max fractional zoom (< 1); scale ~ U(1 - zoom, 1 + zoom).
      blur: max Gaussian sigma in pixels for 'image'; sigma ~ U(0, blur) per example (0 = off).
      p: probability that an example gets the (whole, flips included) affine; otherwise its
        geometry is untouched. Blur is not gated by p.
    """

    shift: float = 0.0
    rotate: float = 0.0
    flip: bool = False
    vflip: bool = False
    shear: float = 0.0
    zoom: float = 0.0
    blur: float = 0.0
    p: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("flip", "vflip"):
                if not isinstance(value, bool | np.bool_):
                    raise ValueError(f"augment.{f.name} must be a bool, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"augment.{f.name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"augment.{f.name} must be finite and >= 0, got {value!r}")
        if self.p > 1:
            raise ValueError(f"augment.p is a probability in [0, 1], got {self.p!r}")
        if self.zoom >= 1:
            raise ValueError(
                f"augment.zoom must be < 1 (scale in [1-zoom, 1+zoom]), got {self.zoom}"
            )
        if self.shear >= 90:
            raise ValueError(f"augment.shear must be < 90 degrees, got {self.shear}")

    @property
    def affine(self) -> bool:
        """Whether any geometric transform can happen."""
        geometric = (self.shift, self.rotate, self.flip, self.vflip, self.shear, self.zoom)
        return self.p > 0 and any(geometric)

    @classmethod
    def from_config(cls, cfg: Any) -> AugmentConfig:
        """An AugmentConfig from itself, None (identity), a mapping or an ml_collections
        ConfigDict with (a subset of) the same fields; unknown fields are a ValueError."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if hasattr(cfg, "to_dict"):
            cfg = cfg.to_dict()
        if not isinstance(cfg, Mapping):
            raise ValueError(
                f"augment config must be AugmentConfig, a mapping or None, not {cfg!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown augment fields {unknown}; known fields: {sorted(known)}")
        return cls(**cfg)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """(H, W) from an int (square) or a pair."""
    if isinstance(size, int | np.integer):
        return int(size), int(size)
    H, W = size
    return int(H), int(W)


def _eye(batch: int) -> jax.Array:
    return jnp.broadcast_to(jnp.eye(3, dtype=jnp.float32), (batch, 3, 3))


def is_identity(A: jax.Array) -> jax.Array:
    """bool [B]: whether each [3,3] matrix of A [B,3,3] is exactly the identity."""
    return jnp.all(jnp.eye(3, dtype=A.dtype) == A, axis=(-2, -1))


def compose_affine(
    size: int | tuple[int, int],
    flip: Any = False,
    vflip: Any = False,
    rotate: Any = 0.0,
    shear: Any = 0.0,
    scale: Any = 1.0,
    tx: Any = 0.0,
    ty: Any = 0.0,
) -> jax.Array:
    """Inverse-map matrices (output -> input coords) for given transform parameters.

    Args:
      size: H (square) or (H, W); transforms are about ((W-1)/2, (H-1)/2).
      flip, vflip: bool (broadcastable to [B]): mirror x -> W-1-x / y -> H-1-y (applied first).
      rotate: degrees, positive = clockwise as displayed (y down).
      shear: x-shear angle in degrees.
      scale: zoom factor (> 1 enlarges the content).
      tx, ty: shift in pixels (applied last, in output space).

    Returns:
      float32 [B,3,3] (B = the broadcast shape of the parameters; [3,3] if all are scalars).
      All-default parameters give exactly the identity.
    """
    H, W = _hw(size)
    params = [jnp.asarray(v) for v in (flip, vflip, rotate, shear, scale, tx, ty)]
    flip, vflip, rotate, shear, scale, tx, ty = jnp.broadcast_arrays(*params)
    f32 = jnp.float32
    fx = jnp.where(flip, -1.0, 1.0).astype(f32)
    fy = jnp.where(vflip, -1.0, 1.0).astype(f32)
    theta = jnp.deg2rad(rotate.astype(f32))
    c, s = jnp.cos(theta), jnp.sin(theta)
    k = jnp.tan(jnp.deg2rad(shear.astype(f32)))
    inv_scale = 1.0 / scale.astype(f32)
    # Linear part of A = Flip · R(-θ) · Shear^-1 · Zoom^-1 (the inverse of the forward chain).
    l00 = fx * c * inv_scale
    l01 = fx * (s - k * c) * inv_scale
    l10 = fy * (-s) * inv_scale
    l11 = fy * (k * s + c) * inv_scale
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0
    px, py = cx + tx.astype(f32), cy + ty.astype(f32)
    a02 = cx - (l00 * px + l01 * py)
    a12 = cy - (l10 * px + l11 * py)
    zero, one = jnp.zeros_like(l00), jnp.ones_like(l00)
    rows = [[l00, l01, a02], [l10, l11, a12], [zero, zero, one]]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def sample_affine(
    key: jax.Array, cfg: AugmentConfig | Any, batch: int, size: int | tuple[int, int]
) -> jax.Array:
    """Independent random inverse-map matrices, one per example.

    Args:
      key: a jax.random key.
      cfg: AugmentConfig (or anything `AugmentConfig.from_config` accepts); `blur` is ignored.
      batch: B.
      size: H (square) or (H, W).

    Returns:
      float32 [B,3,3]; exactly the identity for disabled components / unselected examples.
    """
    cfg = AugmentConfig.from_config(cfg)
    H, W = _hw(size)
    if not cfg.affine:
        return _eye(batch)
    keys = jax.random.split(key, 8)
    shape = (batch,)

    def sym(k: jax.Array, limit: float) -> jax.Array | float:
        """U(-limit, limit) [B], or the exact 0 when the component is off."""
        if not limit:
            return 0.0
        return jax.random.uniform(k, shape, jnp.float32, -limit, limit)

    def coin(k: jax.Array, on: bool) -> jax.Array | bool:
        return jax.random.bernoulli(k, 0.5, shape) if on else False

    tx, ty = sym(keys[5], cfg.shift), sym(keys[6], cfg.shift)
    A = compose_affine(
        (H, W),
        flip=coin(keys[0], cfg.flip),
        vflip=coin(keys[1], cfg.vflip),
        rotate=sym(keys[2], cfg.rotate),
        shear=sym(keys[3], cfg.shear),
        scale=1.0 + sym(keys[4], cfg.zoom),
        tx=tx * W,
        ty=ty * H,
    )
    A = jnp.broadcast_to(A, (batch, 3, 3))
    if cfg.p < 1:
        apply = jax.random.bernoulli(keys[7], cfg.p, shape)
        A = jnp.where(apply[:, None, None], A, _eye(batch))
    return A


def _gather(images: jax.Array, yi: jax.Array, xi: jax.Array) -> jax.Array:
    """images[b, yi, xi, :] for int [B,H',W'] indices, zero where out of bounds -> [B,H',W',C]."""
    B, H, W, _ = images.shape
    valid = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
    b = jnp.arange(B)[:, None, None]
    values = images[b, jnp.clip(yi, 0, H - 1), jnp.clip(xi, 0, W - 1)]
    return jnp.where(valid[..., None], values, jnp.zeros((), images.dtype))


def warp(images: jax.Array, A: jax.Array, order: int = 1) -> jax.Array:
    """Resample each image at A·(x, y, 1) for every output pixel (x, y), zero outside.

    Args:
      images: [B,H,W,C].
      A: [B,3,3] inverse maps (output -> input coords).
      order: 1 = bilinear (images), 0 = nearest (masks; values stay in the input's value set,
        plus 0 outside). Nearest rounds half up (floor(x + 0.5)).

    Returns:
      [B,H,W,C], the input's dtype; examples whose A is the identity are returned bit-exact.
    """
    if order not in (0, 1):
        raise ValueError(f"warp order must be 0 (nearest) or 1 (bilinear), got {order!r}")
    H, W = images.shape[1:3]
    ys, xs = jnp.meshgrid(
        jnp.arange(H, dtype=jnp.float32), jnp.arange(W, dtype=jnp.float32), indexing="ij"
    )

    def entry(i: int, j: int) -> jax.Array:
        return A[:, i, j].astype(jnp.float32)[:, None, None]

    # Elementwise (not matmul) so that accelerator matmul precision cannot perturb coordinates;
    # clipped so that far-away coordinates stay outside without overflowing int32.
    x = jnp.clip(entry(0, 0) * xs + entry(0, 1) * ys + entry(0, 2), -2.0, W + 1.0)
    y = jnp.clip(entry(1, 0) * xs + entry(1, 1) * ys + entry(1, 2), -2.0, H + 1.0)
    if order == 0:
        yi, xi = jnp.floor(y + 0.5).astype(jnp.int32), jnp.floor(x + 0.5).astype(jnp.int32)
        out = _gather(images, yi, xi)
    else:
        x0, y0 = jnp.floor(x), jnp.floor(y)
        wx, wy = (x - x0)[..., None], (y - y0)[..., None]
        xi, yi = x0.astype(jnp.int32), y0.astype(jnp.int32)
        out = (
            _gather(images, yi, xi) * ((1 - wx) * (1 - wy))
            + _gather(images, yi, xi + 1) * (wx * (1 - wy))
            + _gather(images, yi + 1, xi) * ((1 - wx) * wy)
            + _gather(images, yi + 1, xi + 1) * (wx * wy)
        ).astype(images.dtype)
    return jnp.where(is_identity(A)[:, None, None, None], images, out)


def transform_points(points: jax.Array, A: jax.Array) -> jax.Array:
    """Map input-space points to output space (apply inv(A)).

    Args:
      points: [B,2] or [B,P,2] (x, y) pixel coordinates.
      A: [B,3,3] inverse maps.

    Returns:
      float32, the shape of `points`; not clipped (a point can leave the image). Identity
      matrices return their points bit-exact.
    """
    points = jnp.asarray(points)
    lead = (-1,) + (1,) * (points.ndim - 2)

    def entry(i: int, j: int) -> jax.Array:
        return A[:, i, j].astype(jnp.float32).reshape(lead)

    a00, a01, a02 = entry(0, 0), entry(0, 1), entry(0, 2)
    a10, a11, a12 = entry(1, 0), entry(1, 1), entry(1, 2)
    det = a00 * a11 - a01 * a10
    dx = points[..., 0].astype(jnp.float32) - a02
    dy = points[..., 1].astype(jnp.float32) - a12
    out = jnp.stack([(a11 * dx - a01 * dy) / det, (a00 * dy - a10 * dx) / det], axis=-1)
    keep = is_identity(A).reshape((*lead, 1))
    return jnp.where(keep, points, out.astype(points.dtype))


def transform_boxes(box: jax.Array, A: jax.Array, size: int | tuple[int, int]) -> jax.Array:
    """Axis-aligned inclusive pixel box of each transformed box, clipped to the image.

    The box's pixel AREA (corners x0-0.5 .. x1+0.5, likewise y) is mapped through inv(A) and its
    bounds snapped inwards to whole pixels (ceil / floor), so the result contains every pixel
    that a nearest-neighbour `warp` of a mask inside `box` can make foreground (for a rotation it
    is the bounding box of the rotated box, hence looser than the warped mask's own box).

    Args:
      box: [B,4] (x0, y0, x1, y1) inclusive pixel extents.
      A: [B,3,3] inverse maps.
      size: H (square) or (H, W), for clipping to [0, W-1] x [0, H-1].

    Returns:
      float32 [B,4] with whole-pixel values; identity matrices return `box` bit-exact.
    """
    H, W = _hw(size)
    box = jnp.asarray(box)
    b = box.astype(jnp.float32)
    lo_x, lo_y, hi_x, hi_y = b[:, 0] - 0.5, b[:, 1] - 0.5, b[:, 2] + 0.5, b[:, 3] + 0.5
    corners = jnp.stack(
        [jnp.stack(c, axis=-1) for c in ((lo_x, lo_y), (hi_x, lo_y), (lo_x, hi_y), (hi_x, hi_y))],
        axis=1,
    )  # [B,4,2]
    mapped = transform_points(corners, A)
    mn, mx = mapped.min(axis=1), mapped.max(axis=1)  # [B,2]
    x0 = jnp.clip(jnp.ceil(mn[:, 0] - _BOX_EPS), 0, W - 1)
    y0 = jnp.clip(jnp.ceil(mn[:, 1] - _BOX_EPS), 0, H - 1)
    x1 = jnp.clip(jnp.floor(mx[:, 0] + _BOX_EPS), 0, W - 1)
    y1 = jnp.clip(jnp.floor(mx[:, 1] + _BOX_EPS), 0, H - 1)
    out = jnp.stack([x0, y0, x1, y1], axis=-1).astype(box.dtype)
    return jnp.where(is_identity(A)[:, None], box, out)


def gaussian_blur(images: jax.Array, sigma: jax.Array, max_sigma: float | None = None) -> jax.Array:
    """Separable Gaussian blur with a per-example sigma (edge-replicated borders).

    Args:
      images: [B,H,W,C] float.
      sigma: [B] (or a scalar) standard deviations in pixels; 0 leaves the example bit-exact.
      max_sigma: static upper bound on sigma fixing the kernel radius ceil(3 * max_sigma);
        required under jax.jit (None = taken from a concrete `sigma`). Larger sigmas are
        truncated to that radius.

    Returns:
      [B,H,W,C], the input's dtype.
    """
    B = images.shape[0]
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), (B,))
    if max_sigma is None:
        try:
            max_sigma = float(np.max(np.asarray(sigma))) if B else 0.0
        except jax.errors.TracerArrayConversionError:
            raise ValueError("gaussian_blur under jit needs a static max_sigma") from None
    radius = math.ceil(3 * max_sigma)
    if radius <= 0:
        return images
    k = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    on = sigma > 0
    safe = jnp.where(on, sigma, 1.0)[:, None]
    w = jnp.where(on[:, None], jnp.exp(-0.5 * (k / safe) ** 2), (k == 0).astype(jnp.float32))
    w = w / w.sum(axis=1, keepdims=True)  # [B, 2r+1]

    def blur_axis(x: jax.Array, axis: int) -> jax.Array:
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = jnp.pad(x, pad, mode="edge")
        n = x.shape[axis]
        out = jnp.zeros(x.shape, jnp.float32)
        for i in range(2 * radius + 1):
            part = jax.lax.slice_in_dim(padded, i, i + n, axis=axis)
            out = out + w[:, i, None, None, None] * part
        return out

    out = blur_axis(blur_axis(images.astype(jnp.float32), 1), 2).astype(images.dtype)
    return jnp.where((sigma == 0)[:, None, None, None], images, out)


def augment(key: jax.Array, batch: dict[str, jax.Array], cfg: AugmentConfig | Any) -> dict:
    """Apply one random affine per example to every spatial key, then blur 'image'.

    'image' is warped bilinearly and 'mask' with nearest neighbours (so it stays in {0,1});
    'center' [B,2] and 'box' [B,4] are transformed geometrically. `center` stays the geometric
    image of the original centre: it equals the warped mask's centroid up to interpolation (and
    differs when the object is cropped by the border; it is not clipped). `box` is the
    whole-pixel bounding box of the transformed box (see transform_boxes), clipped to the image.
    Where `has_object` is present and False, center/box keep their (ignored) zeros.
    has_object, weight and any other key pass through untouched (has_object is not recomputed,
    so an object pushed fully out of view by a large shift/zoom keeps has_object True).

    Args:
      key: a jax.random key (the same key gives the same result).
      batch: dict of [B,...] arrays with at least 'image' or 'mask' when augmenting geometry;
        images [B,H,W,C] only (volumes [B,D,H,W,C] raise unless `cfg` is the identity).
      cfg: AugmentConfig, mapping or ConfigDict (static: under jax.jit close over it or pass it
        as a static argument; AugmentConfig is hashable).

    Returns:
      A new dict with the same keys.
    """
    cfg = AugmentConfig.from_config(cfg)
    out = dict(batch)
    spatial = [k for k in (*IMAGE_KEYS, *MASK_KEYS) if k in batch]
    if not spatial:
        if cfg.affine and ("center" in batch or "box" in batch):
            raise ValueError("augment needs an 'image' or 'mask' key to know the image size")
        return out
    if batch[spatial[0]].ndim != 4 and (cfg.affine or cfg.blur):
        raise ValueError(
            f"augment is 2D only: '{spatial[0]}' has shape {batch[spatial[0]].shape}, not "
            "[B,H,W,C]; turn augmentation off for volumes (all augment fields 0 / False)"
        )
    B, H, W = batch[spatial[0]].shape[:3]
    key_affine, key_blur = jax.random.split(key)
    if cfg.affine:
        A = sample_affine(key_affine, cfg, B, (H, W))
        for k in IMAGE_KEYS:
            if k in batch:
                out[k] = warp(batch[k], A, order=1)
        for k in MASK_KEYS:
            if k in batch:
                out[k] = warp(batch[k], A, order=0)
        has = batch.get("has_object")
        for k, fn in (
            ("center", transform_points),
            ("box", lambda b, a: transform_boxes(b, a, (H, W))),
        ):
            if k in batch:
                moved = fn(batch[k], A)
                out[k] = moved if has is None else jnp.where(has[:, None], moved, batch[k])
    if cfg.blur and "image" in batch:
        sigma = jax.random.uniform(key_blur, (B,), jnp.float32, 0.0, cfg.blur)
        out["image"] = gaussian_blur(out["image"], sigma, max_sigma=cfg.blur)
    return out


__all__ = [
    "IMAGE_KEYS",
    "MASK_KEYS",
    "AugmentConfig",
    "augment",
    "compose_affine",
    "gaussian_blur",
    "is_identity",
    "sample_affine",
    "transform_boxes",
    "transform_points",
    "warp",
]
