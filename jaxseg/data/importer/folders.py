"""Import a folder of 2-D images and a folder of masks matched by file stem."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np

from jaxseg.data.importer import files, pipeline
from jaxseg.data.importer.output import check_output
from jaxseg.data.importer.placement import Placement, place_geometry
from jaxseg.data.importer.report import InputError, Report
from jaxseg.data.preprocess import LUMINANCE


def import_folders(
    images: str,
    masks: str | None,
    output: str,
    *,
    mask_suffix: str = "_mask",
    multi_mask: str = "merge",
    mask_classes: Sequence[int] | None = None,
    csv_files: Sequence[str] = (),
    resize: str = "pad",
    size: int = 0,
    color: str = "gray",
    multiple: int = 16,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> Report:
    """Import a folder of 2-D images and a folder of masks (see the package docstring).

    Args:
      images, masks: folders; a mask of image `case.png` is `case{mask_suffix}[_tag].png`.
        masks None: the images alone, labelled by the CSV only (centres, boxes, labels; an
        image without a CSV centre or box has none: NaN); written as .npz without 'masks'.
      output: `*.npz`, or a folder for a tfds dataset.
      multi_mask: 'merge' (OR of an image's mask files) or 'channels' (one channel per tag).
      mask_classes: None (binary masks) or the class values, background first.
      csv_files: CSV annotations (`annotations.read_csv`): centres, boxes, one class per id
        (`label`) or multi-hot findings (`label:NAME` columns: 1, 0, -1 uncertain, blank = 0),
        groups.
      resize: a policy of RESIZE_POLICIES; size: output side for 'pad'/'crop' (0 = keep).
      color: 'gray' (RGB -> luminance) or 'rgb' (gray -> 3 equal channels).
      multiple: 'pad16' pads to a multiple of this.
      skip_bad: leave out examples with problems (listed in the report) instead of failing.
      overwrite: replace an existing output.

    Returns:
      The Report (also printed).
    """
    pipeline.check_options(
        resize, size, color, multi_mask, multiple, mask_classes, masks=masks is not None
    )
    check_output(output, overwrite)
    if masks is None:
        source = _images_only(images, color, csv_files)
    else:
        source = _source(images, masks, mask_suffix, multi_mask, mask_classes, color, csv_files)
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
    masks: str,
    suffix: str,
    multi_mask: str,
    classes: Sequence[int] | None,
    color: str,
    csv_files: Sequence[str],
) -> pipeline.Source:
    """The images to import: listed, paired with their masks, their headers read."""
    image_files, mask_files, pairs, problems, skipped = _pairs(images, masks, suffix)
    lossy = [mask_files[m] for found in pairs.values() for m, _ in found]
    lossy = [p for p in lossy if p.lower().endswith((".jpg", ".jpeg"))]
    if lossy:
        raise ValueError(
            f"{lossy[0]}: {len(lossy)} mask file(s) are JPEG, whose lossy compression changes "
            "mask values and edges; export the masks as PNG"
        )
    headers = _headers({s: image_files[s] for s, ms in pairs.items() if ms}, problems)
    if not headers:
        raise InputError([*problems, f"{images}: no image with a mask to import"])
    if multi_mask == "channels" and classes is not None:
        raise ValueError("multi_mask='channels' needs binary masks (mask_classes=None)")
    tags = sorted({t for s in headers for _, t in pairs[s]})
    channels = multi_mask == "channels"
    dtype = _one_dtype(headers, image_files)
    several = sum(len(pairs[s]) > 1 for s in headers)
    read = functools.partial(
        _read,
        images=image_files,
        masks={s: [(mask_files[m], t) for m, t in pairs[s]] for s in headers},
        color=color,
        dtype=dtype,
        classes=classes,
        tags=tags if channels else None,
    )
    return pipeline.Source(
        ids=tuple(headers),
        grids={s: shape for s, (shape, _) in headers.items()},
        read=read,
        mask_names=tuple(t or "mask" for t in tags) if channels else files.mask_names(classes),
        channels=3 if color == "rgb" else 1,
        dtype=dtype,
        problems=tuple(problems),
        skipped=tuple(skipped),
        summary=(
            f"{len(headers)} images from {images}, masks from {masks}",
            *([f"CSV {', '.join(csv_files)}"] if csv_files else []),
        ),
        remarks=(f"{several} images had several mask files ({multi_mask})",) if several else (),
    )


def _images_only(images: str, color: str, csv_files: Sequence[str]) -> pipeline.Source:
    """Every image of the folder, without masks (a cheap-label set: labels from the CSV)."""
    image_files, skipped = files.listing(images, files.IMAGE_EXTENSIONS)
    problems: list[str] = []
    headers = _headers(image_files, problems)
    if not headers:
        raise InputError([*problems, f"{images}: no image to import"])
    dtype = _one_dtype(headers, image_files)
    read = functools.partial(
        _read, images=image_files, masks=None, color=color, dtype=dtype, classes=None, tags=None
    )
    return pipeline.Source(
        ids=tuple(headers),
        grids={s: shape for s, (shape, _) in headers.items()},
        read=read,
        mask_names=("mask",),
        channels=3 if color == "rgb" else 1,
        dtype=dtype,
        problems=tuple(problems),
        skipped=tuple(skipped),
        summary=(
            f"{len(headers)} images from {images}, no masks",
            *([f"CSV {', '.join(csv_files)}"] if csv_files else []),
        ),
        masks=False,
    )


def _pairs(
    images: str, masks: str, suffix: str
) -> tuple[dict[str, str], dict[str, str], dict[str, list[tuple[str, str]]], list[str], list[str]]:
    """(image files, mask files, pairs, problems, skipped files) of two folders, or of one folder
    holding images beside their masks (passed as both: BUSI's layout)."""
    image_files, skipped = files.listing(images, files.IMAGE_EXTENSIONS)
    in_images = files.masks_among(list(image_files), suffix)
    if os.path.realpath(images) == os.path.realpath(masks):
        if not suffix:
            raise ValueError(f"{images}: images and masks in one folder need a --mask-suffix")
        mask_files = {s: p for s, p in image_files.items() if s in in_images}
        image_files = {s: p for s, p in image_files.items() if s not in in_images}
        in_images = set()
    else:
        mask_files, skipped_masks = files.listing(masks, files.IMAGE_EXTENSIONS)
        skipped += skipped_masks
    pairs, orphans = files.pair_files(list(image_files), list(mask_files), suffix)
    problems = [f"{mask_files[m]}: mask without image" for m in orphans]
    lonely = [s for s, ms in pairs.items() if not ms]
    problems += [f"{image_files[s]}: image without mask" for s in lonely if s not in in_images]
    strays = [image_files[s] for s in lonely if s in in_images]
    if strays:
        problems.append(
            f"{images}: {len(strays)} files look like masks of its images (e.g. {strays[0]}); "
            "for images and masks in one folder pass that folder as both IMAGES and MASKS"
        )
    return image_files, mask_files, pairs, problems, skipped


def _one_dtype(headers: dict[str, tuple[tuple[int, int], type]], paths: dict[str, str]) -> type:
    """The pixel type all images share; mixed ones (e.g. 8- and 16-bit) are a ValueError naming
    a file of each, since integer images keep their dtype and range."""
    first = {}
    for stem, (_, dtype) in headers.items():
        first.setdefault(np.dtype(dtype).name, paths[stem])
    if len(first) > 1:
        listed = ", ".join(f"{d} ({p})" for d, p in first.items())
        raise ValueError(
            f"images have different pixel types: {listed}; convert them to one bit depth"
        )
    return next(iter(headers.values()))[1]


def _headers(paths: dict[str, str], problems: list[str]) -> dict[str, tuple[tuple[int, int], type]]:
    """{stem: ((H, W), dtype)} of the readable images; the others are problems."""
    headers = {}
    for stem, path in paths.items():
        try:
            headers[stem] = files.image_header(path)
        except ValueError as e:
            problems.append(str(e))
    return headers


def _read(
    stem: str,
    where: Placement,
    entry: dict,
    *,
    images: dict[str, str],
    masks: dict[str, list[tuple[str, str]]] | None,
    color: str,
    dtype: type,
    classes: Sequence[int] | None,
    tags: list[str] | None,
) -> dict:
    """One image, its masks (zeros when ``masks`` is None) and its CSV centre and boxes
    ([m,2R]: every box of the id) through `where` (a `pipeline.Reader`)."""
    image = _color(files.read_image(images[stem]), color, dtype)
    if masks is None:
        mask, notes, count = np.zeros((*image.shape[:2], 1), np.uint8), [], 0
    else:
        mask, notes = _read_masks(masks[stem], image.shape[:2], classes, tags)
        count = len(masks[stem])
    center, _ = place_geometry(entry.get("center"), None, where, images[stem])
    boxes = [place_geometry(None, b, where, images[stem])[1] for b in entry.get("boxes", ())]
    box = np.stack(boxes) if boxes else None
    return dict(image=image, mask=mask, center=center, box=box, n_mask_files=count, notes=notes)


def _color(image: np.ndarray, color: str, dtype: type) -> np.ndarray:
    """[H,W] or [H,W,C] -> [H,W,1] (gray, Rec. 709 luminance) or [H,W,3] in `dtype`."""
    if image.ndim == 2:
        image = image[..., None]
    if color == "gray" and image.shape[-1] == 3:
        image = image.astype(np.float32) @ LUMINANCE[:, None]
    elif color == "rgb" and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if np.dtype(dtype).kind in "ui" and image.dtype != dtype:
        info = np.iinfo(dtype)
        image = np.clip(np.rint(image), info.min, info.max)
    return image.astype(dtype)


def _read_masks(
    paths: list[tuple[str, str]],
    shape: tuple[int, int],
    classes: Sequence[int] | None,
    tags: list[str] | None,
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """An image's mask files -> (uint8 [H,W,K]: OR-merged (tags None) or one channel per tag,
    notes on binary masks with more than two values)."""
    planes, notes = {}, []
    for path, tag in paths:
        values = files.read_image(path, mask=True)
        if values.shape[:2] != shape:
            raise ValueError(f"{path}: mask size {values.shape[:2]} != image size {shape}")
        planes[tag] = files.mask_channels(values, classes, path)
        extra = files.extra_values(values, classes)
        if extra is not None:
            notes.append((pipeline.MULTI_VALUED, f"{path} {extra}"))
    if tags is None:
        return np.any(np.stack(list(planes.values())), axis=0).astype(np.uint8), notes
    empty = np.zeros((*shape, 1), np.uint8)
    return np.concatenate([planes.get(t, empty) for t in tags], axis=-1), notes
