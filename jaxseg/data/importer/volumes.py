"""Import NIfTI image volumes and label volumes, as volumes or as their axial slices."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from jaxseg.data import nifti
from jaxseg.data.importer import files, pipeline
from jaxseg.data.importer.output import check_output
from jaxseg.data.importer.placement import Placement, place_geometry
from jaxseg.data.importer.report import InputError, Report

Header = tuple[tuple[int, ...], np.ndarray, str]  # (shape, spacing in mm, orientation code)


def import_nifti(
    images: str,
    labels: str,
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
        `case{label_suffix}.nii.gz`.
      output: `*.npz`, or a folder for a tfds dataset.
      mask_classes: None (binary labels) or the label values, background first.
      csv_files: CSV annotations by volume id (centres/boxes in voxel indices (x=i, y=j, z=k)
        only for volumes; label and group also for slices).
      spacing: resample every volume to this (D, H, W) spacing in mm (images trilinear, labels
        nearest), e.g. (3.22, 1.62, 1.62); None keeps the grid, which must then agree.
      slices: write the axial slices as 2-D examples (group = the volume's, so one volume's
        slices share a fold); `empty_slices=False` leaves out slices with an empty mask.
      resize, size, multiple: as `import_folders`; volumes support only 'pad16' (pad D, H, W).
      skip_bad, overwrite: as `import_folders`.
    """
    pipeline.check_options(resize, size, "gray", "merge", multiple, mask_classes)
    if not slices and resize != "pad16":
        raise ValueError("volumes keep their voxel grid: use resize='pad16' (and spacing=...)")
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
    labels: str,
    suffix: str,
    target: np.ndarray | None,
    classes: Sequence[int] | None,
    slices: bool,
    empty_slices: bool,
) -> pipeline.Source:
    """The volumes (or slices) to import: listed, paired, their headers checked."""
    image_files, skipped = files.listing(images, nifti.EXTENSIONS)
    label_files, skipped_labels = files.listing(labels, nifti.EXTENSIONS)
    pairs, problems = _pairs(image_files, label_files, suffix)
    headers = _headers(pairs, problems)
    if not headers:
        raise InputError([*problems, f"{images}: no image volume with labels to import"])
    problems += _grid_problems(headers, image_files, target)
    out_spacing = {s: h[1] if target is None else target for s, h in headers.items()}
    grids = {
        s: h[0][:3] if target is None else nifti.resampled_shape(h[0], h[1], target)
        for s, h in headers.items()
    }
    channels = {h[0][3] if len(h[0]) == 4 else 1 for h in headers.values()}
    if len(channels) > 1:
        raise ValueError(f"image volumes have different channel counts {sorted(channels)}")
    what = "slices of volumes" if slices else "volumes"
    read = functools.partial(
        _read,
        pairs=pairs,
        target=target,
        classes=classes,
        ratios={s: h[1] / out_spacing[s] for s, h in headers.items()},  # input -> output voxels
        out_spacing=out_spacing,
    )
    return pipeline.Source(
        ids=tuple(headers),
        grids={s: g[1:] if slices else g for s, g in grids.items()},
        read=read,
        mask_names=files.mask_names(classes),
        channels=channels.pop(),
        dtype=np.float32,
        problems=tuple(problems),
        skipped=(*skipped, *skipped_labels),
        summary=(
            f"{what} of {len(headers)} NIfTI files from {images}, labels from {labels}",
            *([] if target is None else [f"resampled to spacing {_mm(target)} mm (D, H, W)"]),
        ),
        volumes=True,
        slices=slices,
        empty_slices=empty_slices,
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


def _headers(pairs: dict[str, tuple[str, str]], problems: list[str]) -> dict[str, Header]:
    """{stem: image Header} of the pairs whose label volume matches the image's grid; the
    others are problems."""
    headers = {}
    for stem, (path, lpath) in pairs.items():
        try:
            shape, sp, code = nifti.header(path)
            lshape, lsp, lcode = nifti.header(lpath)
        except ValueError as e:
            problems.append(str(e))
            continue
        if lshape != shape[:3]:
            problems.append(f"{lpath}: label shape {lshape} != image shape {shape[:3]}")
        elif not np.allclose(lsp, sp, rtol=1e-3):
            problems.append(f"{lpath}: label spacing {_mm(lsp)} != image spacing {_mm(sp)}")
        elif lcode != code:
            problems.append(f"{lpath}: label orientation {lcode} != image orientation {code}")
        else:
            headers[stem] = (shape, sp, code)
    return headers


def _grid_problems(
    headers: dict[str, Header], image_files: dict[str, str], target: np.ndarray | None
) -> list[str]:
    """All volumes must share one orientation and, unless resampled to `target`, one spacing."""
    problems = []
    codes = {h[2] for h in headers.values()}
    if len(codes) > 1:
        problems.append(f"inconsistent orientations {sorted(codes)}; reorient the volumes first")
    if target is None:
        first, *rest = headers
        for s in rest:
            if not np.allclose(headers[s][1], headers[first][1], rtol=1e-3):
                problems.append(
                    f"{image_files[s]}: inconsistent spacing {_mm(headers[s][1])} vs "
                    f"{_mm(headers[first][1])} of {first}; pass spacing=... to resample"
                )
    return problems


def _read(
    stem: str,
    where: Placement,
    entry: dict,
    *,
    pairs: dict[str, tuple[str, str]],
    target: np.ndarray | None,
    classes: Sequence[int] | None,
    ratios: dict[str, np.ndarray],
    out_spacing: dict[str, np.ndarray],
) -> dict:
    """One volume [D,H,W,C] float32, its mask and its CSV centre/box (a `pipeline.Reader`)."""
    path, lpath = pairs[stem]
    volume, sp = nifti.read(path)
    values, _ = nifti.read(lpath)
    if values.ndim != 3:
        raise ValueError(f"{lpath}: label volume has shape {values.shape}; need 3-D")
    if values.dtype.kind == "f" and (values != np.round(values)).any():
        raise ValueError(f"{lpath}: label volume has non-integer values")
    if target is not None:
        volume = nifti.resample(volume, sp, target, order=1)
        values = nifti.resample(values, sp, target, order=0)
    mask = files.mask_channels(values, classes, lpath)
    extra = files.extra_values(values, classes)
    volume = volume if volume.ndim == 4 else volume[..., None]
    center, box = _volume_geometry(entry, ratios[stem], where, lpath)
    return dict(
        image=volume.astype(np.float32),
        mask=mask,
        center=center,
        box=box,
        spacing=out_spacing[stem],
        n_mask_files=1,
        notes=[] if extra is None else [(pipeline.MULTI_VALUED, f"{lpath} {extra}")],
    )


def _mm(spacing: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in spacing)


def _volume_geometry(
    entry: dict, ratio: np.ndarray, where: Placement, name: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """CSV centre/box of a volume (voxel indices x, y, z) through resampling (voxel p -> p ·
    ratio, first voxel fixed; box ends rounded to the nearest voxel) and padding."""
    r = ratio[::-1]  # (x, y, z) order
    center, box = entry.get("center"), entry.get("box")
    if center is not None:
        center = center * r
    if box is not None:
        box = np.round(box * np.concatenate([r, r]))
    return place_geometry(center, box, where, name)
