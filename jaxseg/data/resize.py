"""Integer-factor downsampling of square images and masks by block averaging."""

from __future__ import annotations

import numpy as np


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping factor x factor blocks of [N,H,W,C] -> [N,H/f,W/f,C]."""
    N, H, W, C = x.shape
    return x.reshape(N, H // factor, factor, W // factor, factor, C).mean(axis=(2, 4))


def downsample(images: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink square images and masks to size x size by an integer block mean.

    Images are block-averaged; masks are block-averaged and then thresholded at >= 0.5, so a mask
    stays binary. Centres and boxes are not touched here: recompute them from the returned masks.

    Args:
      images: [N,H,W,C] numeric with H == W.
      masks: [N,H,W,K] in {0,1}, same N, H, W as images.
      size: output side; must divide H.

    Returns:
      images float32 [N,size,size,C], masks float32 [N,size,size,K] in {0,1}.
    """
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim != 4 or masks.ndim != 4:
        raise ValueError(
            f"downsample needs images [N,H,W,C] and masks [N,H,W,K], got shapes "
            f"{images.shape} and {masks.shape}"
        )
    if images.shape[:3] != masks.shape[:3]:
        raise ValueError(
            f"images {images.shape} and masks {masks.shape} differ in N, H or W; they must match"
        )
    H, W = images.shape[1:3]
    if H != W:
        raise ValueError(f"downsample needs square images, got H={H}, W={W}; pad or crop first")
    allowed = [d for d in range(1, H + 1) if H % d == 0]
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size not in allowed:
        raise ValueError(
            f"cannot downsample {H}x{W} to size {size!r}: size must be an integer divisor of {H}, "
            f"one of {allowed}"
        )
    factor = H // int(size)
    out_images = _block_mean(images.astype(np.float32), factor).astype(np.float32)
    out_masks = (_block_mean(masks.astype(np.float32), factor) >= 0.5).astype(np.float32)
    return out_images, out_masks
