"""Reading images and masks, listing folders and pairing mask files with their images."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jaxseg.data import nifti

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_SEPARATORS = "_- ."
_INTEGER_MODES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32}


def file_stem(name: str) -> str:
    """The base name without an image or NIfTI extension."""
    base = os.path.basename(name)
    low = base.lower()
    for ext in (*nifti.EXTENSIONS, *IMAGE_EXTENSIONS):
        if low.endswith(ext):
            return base[: -len(ext)]
    return base


def read_image(path: str, mask: bool = False) -> np.ndarray:
    """Pixels [H,W] or [H,W,C] in the file's dtype (uint8, uint16, int32 or float32); NaN or
    inf pixels are a ValueError, as they are for training.

    Palette images become RGB (for masks the palette indices are kept), alpha is dropped, and a
    mask stored as RGB must have identical channels (it is then read as one).
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            if (mode == "P" and not mask) or mode in ("RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            elif mode in ("LA", "1"):
                img = img.convert("L")
            x = np.asarray(img)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from None
    if mode == "1":
        x = (x > 0).astype(np.uint8)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"{path}: {bad} NaN/inf pixels; clean the image or leave it out")
    if mask and x.ndim == 3:
        if not (x == x[..., :1]).all():
            raise ValueError(
                f"{path}: mask has colour channels that differ; save it as a single-channel "
                "label image"
            )
        x = x[..., 0]
    return x


def image_header(path: str) -> tuple[tuple[int, int], type]:
    """(H, W) and the dtype the pixels will have, without decoding them."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            dtype = _INTEGER_MODES.get(img.mode, np.float32 if img.mode == "F" else np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from None
    return (h, w), dtype


def mask_channels(values: np.ndarray, classes: Sequence[int] | None, where: str) -> np.ndarray:
    """Mask values [*S] -> uint8 one-hot [*S,K] without background.

    classes None: binary, K = 1, any nonzero value is foreground. Otherwise the declared class
    values, the first being background: K = len(classes) - 1; any other value is a ValueError
    naming `where` and the value.
    """
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"{where}: mask has NaN or inf values")
    if classes is None:
        return (values != 0).astype(np.uint8)[..., None]
    present = np.unique(values)
    outside = present[~np.isin(present, np.asarray(classes))]
    if outside.size:
        raise ValueError(
            f"{where}: mask value(s) {outside[:8].tolist()} outside the declared classes "
            f"{list(classes)}"
        )
    return np.stack([values == c for c in classes[1:]], axis=-1).astype(np.uint8)


def extra_values(values: np.ndarray, classes: Sequence[int] | None) -> list | None:
    """The values of a mask expected binary (`classes` None) that holds more than two, else
    None: `mask_channels` would merge them all into the foreground."""
    if classes is not None:
        return None
    present = np.unique(values)
    return present[:8].tolist() if len(present) > 2 else None


def listing(folder: str, extensions: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """{stem: path} of the files with one of `extensions`; other entries are skipped."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such folder")
    files, skipped = {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name.lower().endswith(extensions) and not name.startswith("."):
            files[file_stem(name)] = path
        else:
            skipped.append(f"{path} (not a {'/'.join(extensions)} file)")
    return files, skipped


def pair_files(
    image_stems: Sequence[str], mask_stems: Sequence[str], suffix: str
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Match mask stems to image stems: mask = image stem + suffix + optional separator + tag.

    Returns ({image stem: [(mask stem, tag), ...]}, mask stems without an image). The longest
    matching image stem wins ('case1' vs 'case1_b').
    """
    images = set(image_stems)
    pairs: dict[str, list[tuple[str, str]]] = {s: [] for s in image_stems}
    orphans = []
    for m in sorted(mask_stems):
        for k in range(len(m), 0, -1):
            head, rest = m[:k], m[k:]
            if rest and rest[0] not in _SEPARATORS:
                continue
            if head.endswith(suffix) and head[: len(head) - len(suffix)] in images:
                pairs[head[: len(head) - len(suffix)]].append((m, rest.lstrip(_SEPARATORS)))
                break
        else:
            orphans.append(m)
    return pairs, orphans


def masks_among(stems: Sequence[str], suffix: str) -> set[str]:
    """The stems that are masks (stem + suffix + optional tag) of another of `stems`: a folder
    holding images and their masks side by side (BUSI's `case.png`, `case_mask.png`)."""
    if not suffix:
        return set()
    pairs, _ = pair_files(stems, stems, suffix)
    return {m for found in pairs.values() for m, _ in found}


def mask_names(classes: Sequence[int] | None) -> tuple[str, ...]:
    """Names of the channels of `mask_channels`: 'foreground', or the class values."""
    return ("foreground",) if classes is None else tuple(str(c) for c in classes[1:])
