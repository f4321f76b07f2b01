"""Import NIfTI image volumes, with their label volumes or alone, as volumes or axial slices."""

from __future__ import annotations

import collections
import functools
from collections.abc import Sequence

import numpy as np

from jaxseg.data import nifti
from jaxseg.data.importer import files, pipeline
from jaxseg.data.importer.output import check_output
from jaxseg.data.importer.placement import Placement, place_geometry
from jaxseg.data.importer.report import InputError, Report


def import_nifti(
    images: str,
    labels: str | None,
    output: str,
    *,
    label_suffix: str = "",
    mask_classes: Sequence[int] | None = None,
    csv_files: Sequence[str] = (),
    spacing: Sequence[float] | None = None,
    slices: bool = False,
    empty_slices: bool = True,
    resize: str = "pad16",
    size: int = 0,
    multiple: int = 16,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> Report:
    """Import NIfTI image volumes and label volumes (see the package docstring).

    Args:
      images, labels: folders of .nii/.nii.gz; the labels of `case.nii.gz` are
        `case{label_suffix}.nii.gz`. labels None: the image volumes alone, labelled by the CSV
        only (centres, boxes, class labels, groups; a volume without a CSV centre or box has
        none: NaN); written as .npz without 'masks' (every example `has_mask` False), as
        `import_folders` writes images alone.
      output: `*.npz`, or a folder for a tfds dataset.
      mask_classes: None (binary labels) or the label values, background first.
      csv_files: CSV annotations by volume id (centres/boxes in the file's voxel indices (x=i,
        y=j, z=k), moved with the reorientation to RAS, only for volumes; label and group also
        for slices).
      spacing: resample every volume to this (D, H, W) spacing in mm (images trilinear, labels
        nearest), e.g. (3.22, 1.62, 1.62); None keeps the grid, which must then agree.
      slices: write the axial slices as 2-D examples (group = the volume's, so one volume's
        slices share a fold); `empty_slices=False` leaves out slices with an empty mask (so it
        needs `labels`: without them every slice is an example).
      resize, size, multiple: as `import_folders`; volumes support only 'pad16' (pad D, H, W).
      skip_bad, overwrite: as `import_folders`.
    """
    pipeline.check_options(
        resize, size, "gray", "merge", multiple, mask_classes, masks=labels is not None
    )
    if not slices and resize != "pad16":
        raise ValueError("volumes keep their voxel grid: use resize='pad16' (and spacing=...)")
    if labels is None and not empty_slices:
        raise ValueError(
            f"{images}: empty_slices=False (--drop-empty-slices) needs label volumes; without "
            "them no slice has a mask, so every slice is an example"
        )
    target = None if spacing is None else np.asarray(spacing, np.float64)
    if target is not None and (target.shape != (3,) or (target <= 0).any()):
        raise ValueError(f"spacing must be 3 positive mm values (D, H, W), got {spacing}")
    check_output(output, overwrite)
    source = _source(images, labels, label_suffix, target, mask_classes, slices, empty_slices)
    return pipeline.run(
        output,
        source,
        csv_files=csv_files,
        resize=resize,
        size=size,
        multiple=multiple,
        skip_bad=skip_bad,
    )


def _source(
    images: str,
    labels: str | None,
    suffix: str,
    target: np.ndarray | None,
    classes: Sequence[int] | None,
    slices: bool,
    empty_slices: bool,
) -> pipeline.Source:
    """The volumes (or slices) to import: listed, paired with their label volumes (none when
    `labels` is None), their headers checked."""
    image_files, skipped = files.listing(images, nifti.EXTENSIONS)
    if labels is None:
        pairs, problems = {s: (p, None) for s, p in image_files.items()}, []
    else:
        label_files, skipped_labels = files.listing(labels, nifti.EXTENSIONS)
        pairs, problems = _pairs(image_files, label_files, suffix)
        skipped += skipped_labels
    headers = _headers(pairs, problems)
    if not headers:
        what = "image volume" if labels is None else "image volume with labels"
        raise InputError([*problems, f"{images}: no {what} to import"])
    problems += _spacing_problems(headers, image_files, target)
    out_spacing = {s: h.spacing if target is None else target for s, h in headers.items()}
    grids = {
        s: h.shape[:3] if target is None else nifti.resampled_shape(h.shape, h.spacing, target)
        for s, h in headers.items()
    }
    channels = {h.shape[3] if len(h.shape) == 4 else 1 for h in headers.values()}
    if len(channels) > 1:
        raise ValueError(f"image volumes have different channel counts {sorted(channels)}")
    what = "slices of volumes" if slices else "volumes"
    read = functools.partial(
        _read,
        pairs=pairs,
        headers=headers,
        target=target,
        classes=classes,
        out_spacing=out_spacing,
    )
    return pipeline.Source(
        ids=tuple(headers),
        grids={s: g[1:] if slices else g for s, g in grids.items()},
        read=read,
        mask_names=files.mask_names(classes) if labels is not None else ("mask",),
        channels=channels.pop(),
        dtype=np.float32,
        problems=tuple(problems),
        skipped=tuple(skipped),
        summary=(
            f"{what} of {len(headers)} NIfTI files from {images}, "
            + ("no label volumes" if labels is None else f"labels from {labels}"),
            *_reoriented(headers),
            *([] if target is None else [f"resampled to spacing {_mm(target)} mm (D, H, W)"]),
        ),
        volumes=True,
        slices=slices,
        empty_slices=empty_slices,
        masks=labels is not None,
    )


def _pairs(
    image_files: dict[str, str], label_files: dict[str, str], suffix: str
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """({stem: (image path, label path)}, problems): the labels of `case` are `case{suffix}`."""
    wanted = {s + suffix for s in image_files}
    problems = [
        f"{p}: label volume without image" for m, p in label_files.items() if m not in wanted
    ]
    problems += [
        f"{p}: image volume without labels"
        for s, p in image_files.items()
        if s + suffix not in label_files
    ]
    pairs = {
        s: (p, label_files[s + suffix]) for s, p in image_files.items() if s + suffix in label_files
    }
    return pairs, problems


def _headers(
    pairs: dict[str, tuple[str, str | None]], problems: list[str]
) -> dict[str, nifti.Header]:
    """{stem: image Header} of the readable image volumes whose label volume (if any) has the
    image's grid and affine (so both get the same reorientation); the others are problems."""
    headers = {}
    for stem, (path, lpath) in pairs.items():
        try:
            image = nifti.header(path)
            label = None if lpath is None else nifti.header(lpath)
        except ValueError as e:
            problems.append(str(e))
            continue
        problem = None if label is None else _mismatch(image, label, path, lpath)
        if problem:
            problems.append(problem)
        else:
            headers[stem] = image
    return headers


def _mismatch(image: nifti.Header, label: nifti.Header, path: str, lpath: str) -> str | None:
    """Why the label volume `lpath` does not fit image `path` (shape, spacing, affine), or None."""
    if label.shape != image.shape[:3]:
        return f"{lpath}: label shape {label.shape} != image shape {image.shape[:3]}"
    if not np.allclose(label.spacing, image.spacing, rtol=1e-3):
        return f"{lpath}: label spacing {_mm(label.spacing)} != image spacing {_mm(image.spacing)}"
    if not np.allclose(label.affine, image.affine, rtol=1e-4, atol=1e-3):
        return (
            f"{lpath}: label affine {label.affine[:3].round(4).tolist()} "
            f"({label.orientation}) != affine {image.affine[:3].round(4).tolist()} "
            f"({image.orientation}) of image {path}"
        )
    return None


def _spacing_problems(
    headers: dict[str, nifti.Header], image_files: dict[str, str], target: np.ndarray | None
) -> list[str]:
    """Unless resampled to `target`, all volumes must share one spacing (after reorientation)."""
    if target is not None:
        return []
    first, *rest = headers
    return [
        f"{image_files[s]}: inconsistent spacing {_mm(headers[s].spacing)} vs "
        f"{_mm(headers[first].spacing)} of {first}; pass spacing=... to resample"
        for s in rest
        if not np.allclose(headers[s].spacing, headers[first].spacing, rtol=1e-3)
    ]


def _reoriented(headers: dict[str, nifti.Header]) -> list[str]:
    """The report line on volumes stored in an orientation other than RAS, if any."""
    codes = collections.Counter(h.orientation for h in headers.values() if h.orientation != "RAS")
    if not codes:
        return []
    counts = ", ".join(f"{n} from {c}" for c, n in sorted(codes.items()))
    return [f"reoriented {codes.total()} volume(s) to RAS (closest canonical): {counts}"]


def _read(
    stem: str,
    where: Placement,
    entry: dict,
    *,
    pairs: dict[str, tuple[str, str | None]],
    headers: dict[str, nifti.Header],
    target: np.ndarray | None,
    classes: Sequence[int] | None,
    out_spacing: dict[str, np.ndarray],
) -> dict:
    """One volume [D,H,W,C] float32 in canonical orientation, its mask (zeros [D,H,W,1] without
    a label volume), its CSV centre/box and the file's geometry (a `pipeline.Reader`)."""
    path, lpath = pairs[stem]
    volume, sp = nifti.read(path)
    if target is not None:
        volume = nifti.resample(volume, sp, target, order=1)
    if lpath is None:
        mask, notes = np.zeros((*volume.shape[:3], 1), np.uint8), []
    else:
        mask, notes = _label_volume(lpath, sp, target, classes)
    volume = volume if volume.ndim == 4 else volume[..., None]
    head = headers[stem]
    ratio = head.spacing / out_spacing[stem]
    center, box = _volume_geometry(entry, head, ratio, where, lpath or path)
    return dict(
        image=volume.astype(np.float32),
        mask=mask,
        center=center,
        box=box,
        spacing=out_spacing[stem],
        file_shape=head.shape[:3],
        affine=head.affine,
        orientation=head.orientation,
        n_mask_files=0 if lpath is None else 1,
        notes=notes,
    )


def _label_volume(
    lpath: str, sp: np.ndarray, target: np.ndarray | None, classes: Sequence[int] | None
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """A label volume (spacing `sp`) -> (uint8 mask [D,H,W,K] in canonical orientation,
    resampled nearest to `target`; notes on binary labels with more than two values)."""
    values, _ = nifti.read(lpath)
    if values.ndim != 3:
        raise ValueError(f"{lpath}: label volume has shape {values.shape}; need 3-D")
    if values.dtype.kind == "f" and (values != np.round(values)).any():
        raise ValueError(f"{lpath}: label volume has non-integer values")
    if target is not None:
        values = nifti.resample(values, sp, target, order=0)
    extra = files.extra_values(values, classes)
    notes = [] if extra is None else [(pipeline.MULTI_VALUED, f"{lpath} {extra}")]
    return files.mask_channels(values, classes, lpath), notes


def _mm(spacing: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in spacing)


def _volume_geometry(
    entry: dict, head: nifti.Header, ratio: np.ndarray, where: Placement, name: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """CSV centre/box of a volume (the file's voxel indices x, y, z = i, j, k) through the
    reorientation, resampling (voxel p -> p · ratio, first voxel fixed; box ends rounded to the
    nearest voxel) and padding."""
    r = ratio[::-1]  # (x, y, z) order
    center, box = entry.get("center"), entry.get("box")
    if center is not None:
        center = nifti.canonical_points(center, head.affine, head.shape) * r
    if box is not None:
        corners = nifti.canonical_points(box.reshape(2, 3), head.affine, head.shape)
        box = np.round(np.concatenate([corners.min(0), corners.max(0)]) * np.concatenate([r, r]))
    return place_geometry(center, box, where, name)
