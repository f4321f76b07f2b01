"""NIfTI volumes for the importer: reading with nibabel, voxel spacing, resampling, slicing.

Array axes follow the dataset contract: a volume is [D,H,W] or [D,H,W,C] with W along the file's
first voxel axis (i), H along j and D along k, i.e. the stored voxel order transposed (no
reorientation: the importer instead checks that all volumes share one orientation). `spacing`
is in mm per voxel in array axis order (D, H, W) = the header's zooms reversed.
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
from scipy import ndimage

EXTENSIONS = (".nii.gz", ".nii")


def stem(path: str) -> str:
    """File name without its NIfTI extension ('case_01.nii.gz' -> 'case_01')."""
    name = os.path.basename(path)
    for ext in EXTENSIONS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def _open(path: str) -> nib.Nifti1Image:
    try:
        img = nib.load(path)
    except Exception as e:  # nibabel raises many types for a damaged or foreign file
        raise ValueError(f"{path}: cannot read as NIfTI ({type(e).__name__}: {e})") from None
    if len(img.shape) not in (3, 4):
        raise ValueError(f"{path}: volume has shape {img.shape}; expected 3-D or 4-D (channels)")
    return img


def header(path: str) -> tuple[tuple[int, ...], np.ndarray, str]:
    """Array shape (D, H, W) or (D, H, W, C), spacing [3] (mm, array axis order) and
    orientation code ('RAS', ...) of a NIfTI file, without reading its voxels."""
    img = _open(path)
    i, j, k, *c = img.shape
    spacing = np.asarray(img.header.get_zooms()[:3], np.float64)[::-1]
    return (k, j, i, *c), spacing, "".join(nib.aff2axcodes(img.affine))


def read(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Voxels [D,H,W] or [D,H,W,C] (stored dtype, or float when the header scales them) and
    spacing [3] in mm, array axis order. A volume with NaN or inf voxels is a ValueError."""
    img = _open(path)
    data = np.asanyarray(img.dataobj)
    data = data.transpose(2, 1, 0) if data.ndim == 3 else data.transpose(2, 1, 0, 3)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise ValueError(f"{path}: {bad} NaN/inf voxels; clean the volume or leave it out")
    spacing = np.asarray(img.header.get_zooms()[:3], np.float64)[::-1]
    if not (spacing > 0).all():
        raise ValueError(f"{path}: voxel spacing {tuple(spacing)} is not positive")
    return np.ascontiguousarray(data), spacing


def resampled_shape(shape: tuple[int, ...], spacing: np.ndarray, target: np.ndarray) -> tuple:
    """Grid size after resampling: round(n · spacing / target) per axis (at least 1)."""
    n = np.asarray(shape[:3], np.float64)
    return tuple(int(v) for v in np.maximum(1, np.round(n * spacing / target)))


def resample(volume: np.ndarray, spacing: np.ndarray, target: np.ndarray, order: int) -> np.ndarray:
    """Resample [D,H,W] or [D,H,W,C] from `spacing` to `target` mm (array axis order).

    The first voxel centre stays in place: output voxel u samples input position u · target /
    spacing (edge values repeated beyond the last voxel). order=1 (trilinear) for images,
    order=0 (nearest) for label volumes, whose values it never mixes. Returns float32 for
    order 1, the input dtype for order 0.
    """
    spacing, target = np.asarray(spacing, np.float64), np.asarray(target, np.float64)
    out_shape = resampled_shape(volume.shape, spacing, target)
    matrix = target / spacing
    dtype = volume.dtype if order == 0 else np.float32
    source = volume if order == 0 else volume.astype(np.float32)

    def one(v: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(
            v, matrix, output_shape=out_shape, order=order, mode="nearest", output=dtype
        )

    if volume.ndim == 3:
        return one(source)
    return np.stack([one(source[..., c]) for c in range(volume.shape[3])], axis=-1)


def slices(volume: np.ndarray) -> list[np.ndarray]:
    """The axial slices [H,W(,C)] of a volume [D,H,W(,C)], index d = the slice's z."""
    return [volume[d] for d in range(volume.shape[0])]
