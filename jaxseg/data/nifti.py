"""NIfTI volumes for the importer: reading with nibabel, voxel spacing, resampling, slicing.

Volumes are first brought to nibabel's closest canonical orientation (RAS+: voxel axes i, j, k
point most nearly to Right, Anterior, Superior; `nib.io_orientation` + `apply_orientation`, as
`nib.as_closest_canonical` does), so files stored in different orientations line up. Array axes
then follow the dataset contract: a volume is [D,H,W] or [D,H,W,C] with W along the canonical
first voxel axis (i, R), H along j (A) and D along k (S). `spacing` is in mm per voxel in array
axis order (D, H, W) = the header's zooms, permuted like the voxels, reversed.
"""

from __future__ import annotations

import os
from typing import NamedTuple

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


class Header(NamedTuple):
    """What a NIfTI file's header says, the shape and spacing after canonical reorientation."""

    shape: tuple[int, ...]  # array shape (D, H, W) or (D, H, W, C)
    spacing: np.ndarray  # [3] mm, array axis order
    orientation: str  # the file's axis codes before reorientation ('LPS', ...)
    affine: np.ndarray  # [4,4] float64, the file's voxel -> world (mm) affine


def _orientation(path: str, img: nib.Nifti1Image) -> np.ndarray:
    """nibabel's orientation [3,2] (canonical axis, flip) of each voxel axis of `img`."""
    ornt = nib.io_orientation(img.affine)
    if np.isnan(ornt).any():
        raise ValueError(f"{path}: affine {img.affine.tolist()} has no orientation (degenerate)")
    return ornt


def _canonical(values: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Voxel-axis values [3] (shape, zooms) permuted to canonical axis order (i, j, k)."""
    out = np.empty(3, values.dtype)
    out[ornt[:, 0].astype(int)] = values
    return out


def header(path: str) -> Header:
    """The Header of a NIfTI file, without reading its voxels."""
    img = _open(path)
    ornt = _orientation(path, img)
    i, j, k = _canonical(np.asarray(img.shape[:3]), ornt).tolist()
    zooms = np.asarray(img.header.get_zooms()[:3], np.float64)
    return Header(
        (k, j, i, *img.shape[3:]),
        _canonical(zooms, ornt)[::-1],
        "".join(nib.aff2axcodes(img.affine)),
        np.asarray(img.affine, np.float64),
    )


def canonical_points(points: np.ndarray, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Voxel indices [..., 3] (i, j, k) of a file with `affine` -> the same voxels' indices
    (i, j, k) after canonical reorientation; `shape` is the canonical array shape (D, H, W)."""
    ornt = nib.io_orientation(affine)
    axes = ornt[:, 0].astype(int)
    extent = np.asarray(shape[:3][::-1], np.float64)[axes]  # of each file axis
    moved = np.where(ornt[:, 1] < 0, extent - 1 - np.asarray(points, np.float64), points)
    out = np.empty_like(moved)
    out[..., axes] = moved
    return out


def read(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Voxels [D,H,W] or [D,H,W,C] in canonical orientation (stored dtype, or float when the
    header scales them) and spacing [3] in mm, array axis order. A volume with NaN or inf
    voxels is a ValueError."""
    img = _open(path)
    ornt = _orientation(path, img)
    data = nib.orientations.apply_orientation(np.asanyarray(img.dataobj), ornt)
    data = data.transpose(2, 1, 0) if data.ndim == 3 else data.transpose(2, 1, 0, 3)
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise ValueError(f"{path}: {bad} NaN/inf voxels; clean the volume or leave it out")
    spacing = _canonical(np.asarray(img.header.get_zooms()[:3], np.float64), ornt)[::-1]
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
