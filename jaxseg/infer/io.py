"""Reading the inputs of `jaxseg predict` and writing its masks in each input's own geometry.

Inputs are a folder of PNG/JPEG/TIFF images, a folder of NIfTI volumes (or one such file), or an
.npz holding `images`. An image is [H,W,C] as read (C = 1 grey, 3 RGB). A NIfTI volume is
reoriented to nibabel's closest canonical orientation (RAS+: voxel axes i, j, k run to the
patient's right, anterior, superior) and then laid out as the dataset contract's [D,H,W,C]
(W along i, H along j, D along k), so one model sees every scanner's volumes the same way round;
writing undoes that reorientation exactly, so a mask overlays its input voxel for voxel in any
viewer. npz volumes are taken as stored (already in contract order).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import zipfile
from collections.abc import Callable

import nibabel as nib
import numpy as np
from nibabel import orientations
from PIL import Image

from jaxseg import atomic
from jaxseg.data import nifti
from jaxseg.data import npz as npz_source
from jaxseg.data.importer import files

IMAGE_KINDS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}
_CANONICAL = orientations.axcodes2ornt("RAS")


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: arrays have no truth value to compare
class Input:
    """One image or volume to segment, with what writing its mask back needs.

    pixels: [H,W,C] (images) or [D,H,W,C] (volumes; NIfTI in canonical orientation), the dtype
    as read. spacing: mm per spatial array axis, or None when unknown. For NIfTI: `affine` [4,4]
    and `header` of the file, and `to_file` [3,2], the nibabel orientation that takes a
    canonical (i, j, k) array back to the file's voxel order.
    """

    name: str
    pixels: np.ndarray
    kind: str
    source: str
    spacing: tuple[float, ...] | None = None
    affine: np.ndarray | None = None
    header: nib.Nifti1Header | None = None
    to_file: np.ndarray | None = None


def read_inputs(path: str) -> list[Input]:
    """The inputs at `path` (a folder, an .npz, or one image/NIfTI file), sorted by file name or
    in npz order. Anything unusable is a ValueError of one line naming the file."""
    if os.path.isdir(path):
        return [_read_file(p) for p in _folder(path)]
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file or folder")
    if path.lower().endswith(".npz"):
        return _read_npz(path)
    _kind(path)  # refuses other extensions
    return [_read_file(path)]


def _kind(path: str) -> str:
    """'png', 'jpeg', 'tiff' or 'nifti' from the file name; anything else is a ValueError."""
    low = path.lower()
    if low.endswith(nifti.EXTENSIONS):
        return "nifti"
    kind = IMAGE_KINDS.get(os.path.splitext(low)[1])
    if kind is None:
        raise ValueError(f"{path}: not a PNG, JPEG, TIFF, NIfTI or .npz file")
    return kind


def _folder(folder: str) -> list[str]:
    """The sorted image or NIfTI files of `folder` (others are skipped), all 2-D images or all
    NIfTI, with distinct stems (they name the outputs)."""
    paths = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        if name.lower().endswith((*nifti.EXTENSIONS, *IMAGE_KINDS)):
            paths.append(path)
    if not paths:
        raise ValueError(f"{folder}: no PNG, JPEG, TIFF or NIfTI (.nii, .nii.gz) files to segment")
    volumes = [p for p in paths if _kind(p) == "nifti"]
    if volumes and len(volumes) < len(paths):
        other = next(p for p in paths if p not in volumes)
        raise ValueError(
            f"{folder}: mixes 2-D images ({os.path.basename(other)}) and NIfTI volumes "
            f"({os.path.basename(volumes[0])}); put them in separate folders"
        )
    seen: dict[str, str] = {}
    for p in paths:
        stem = files.file_stem(p)
        if stem in seen:
            raise ValueError(f"{p}: same name as {seen[stem]}; the masks would collide")
        seen[stem] = p
    return paths


def _read_file(path: str) -> Input:
    """An image [H,W,C] or a canonical NIfTI volume [D,H,W,C] (files' readers, their errors)."""
    kind, name = _kind(path), files.file_stem(path)
    if kind != "nifti":
        pixels = files.read_image(path)
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        return Input(name, pixels, kind, path)
    pixels, spacing = nifti.read(path)  # canonical (RAS+) orientation, contract axes
    img = nib.load(path)
    to_canonical = orientations.io_orientation(img.affine)
    return Input(
        name,
        pixels if pixels.ndim == 4 else pixels[..., None],
        kind,
        path,
        spacing=tuple(float(s) for s in spacing),
        affine=img.affine,
        header=img.header,
        to_file=orientations.ornt_transform(_CANONICAL, to_canonical),
    )


def _ijk(x: np.ndarray) -> np.ndarray:
    """[D,H,W,...] <-> [i,j,k,...]: the contract's axis order and the voxel order swap the first
    three axes end for end (the transpose is its own inverse)."""
    return x.transpose(2, 1, 0, *range(3, x.ndim))


def _read_npz(path: str) -> list[Input]:
    """`images` [N,*S(,C)] of an .npz (rank as the npz data source decides it), named by `ids`
    [N] when stored, else by index."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw = {k: archive[k] for k in ("images", "ids", "spacing") if k in archive.files}
    except (OSError, ValueError, EOFError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    if "images" not in raw:
        raise ValueError(f"{path}: no 'images' array (keys to segment: images [N,H,W(,C)])")
    rank = npz_source._rank(path, raw)
    images = npz_source._with_channels(path, "images", raw["images"], rank)
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = int((~np.isfinite(images)).sum())
        raise ValueError(f"{path}: {bad} NaN/inf pixels in 'images'; clean them or leave them out")
    names = _ids(path, raw.get("ids"), len(images))
    spacing = raw.get("spacing")
    if spacing is not None and len(spacing) != len(images):
        raise ValueError(f"{path}: 'spacing' has {len(spacing)} rows for {len(images)} images")
    return [
        Input(n, x, "npz", path, None if spacing is None else tuple(float(s) for s in spacing[i]))
        for i, (n, x) in enumerate(zip(names, images, strict=True))
    ]


def _ids(path: str, ids: np.ndarray | None, n: int) -> list[str]:
    """Distinct names of the n examples: the `ids` array [n] as text, else '0', '1', ..."""
    if ids is None:
        return [str(i) for i in range(n)]
    if ids.shape != (n,):
        raise ValueError(f"{path}: 'ids' has shape {ids.shape}; expected [{n}]")
    names = [v.decode() if isinstance(v, bytes) else str(v) for v in ids.tolist()]
    if len(set(names)) < n:
        raise ValueError(f"{path}: 'ids' repeats names; each example needs its own")
    return names


def write_outputs(
    inputs: list[Input],
    masks: list[np.ndarray],
    out_dir: str,
    probabilities: list[np.ndarray] | None = None,
) -> list[str]:
    """Write masks[i] (uint8 labels [*S], S = inputs[i].pixels' spatial shape) and optionally
    probabilities[i] (float32 [*S] or [*S,K]) in each input's own format and geometry: images ->
    `<name>_mask.png` / `.tif` (0/1 masks as 0/255) and `<name>_prob.tif`; NIfTI ->
    `<name>_mask.nii.gz` / `_prob.nii.gz` on the input's grid and affine; npz inputs -> one
    `masks.npz` (`masks`, `ids`, `probabilities`). Returns the paths written.

    Nothing is written when an output exists already (a ValueError naming it) or an array has
    the wrong shape; each file is written atomically.
    """
    if len(masks) != len(inputs) or (
        probabilities is not None and len(probabilities) != len(masks)
    ):
        raise ValueError(f"{len(inputs)} inputs but {len(masks)} masks / probabilities")
    labels = [_labels(x, m) for x, m in zip(inputs, masks, strict=True)]
    maps = None
    if probabilities is not None:
        maps = [_maps(x, p) for x, p in zip(inputs, probabilities, strict=True)]
    plan = _plan(inputs, labels, maps, out_dir)
    paths = [p for p, _ in plan]
    if len(set(paths)) < len(paths):
        raise ValueError(f"{out_dir}: two inputs share a name; their outputs would collide")
    for p in paths:
        if os.path.lexists(p):
            raise ValueError(
                f"{p}: exists already; nothing written (remove it or pick another folder)"
            )
    os.makedirs(out_dir, exist_ok=True)
    for p, encode in plan:
        atomic.write_bytes(p, encode())
    return paths


def _labels(x: Input, mask: np.ndarray) -> np.ndarray:
    """mask [*S] (integer or bool labels 0..255) as uint8, checked against the input's shape."""
    mask = np.asarray(mask)
    shape = x.pixels.shape[:-1]
    if mask.shape != shape:
        raise ValueError(f"{x.name}: mask has shape {mask.shape}; the input's is {shape}")
    if mask.dtype.kind not in "biu" or (mask.size and not 0 <= mask.min() <= mask.max() <= 255):
        raise ValueError(f"{x.name}: mask must hold integer labels 0..255, not {mask.dtype}")
    return mask.astype(np.uint8)


def _maps(x: Input, p: np.ndarray) -> np.ndarray:
    """Probabilities [*S] or [*S,K] as float32, checked against the input's shape."""
    p = np.asarray(p, np.float32)
    shape = x.pixels.shape[:-1]
    if p.shape[: len(shape)] != shape or p.ndim > len(shape) + 1:
        raise ValueError(f"{x.name}: probabilities have shape {p.shape}; expected {shape}(+[K])")
    return p


Plan = list[tuple[str, Callable[[], bytes]]]


def _plan(
    inputs: list[Input], labels: list[np.ndarray], maps: list[np.ndarray] | None, out_dir: str
) -> Plan:
    """(path, encoder) of every output file, so all paths are known before anything is written."""
    plan: Plan = []
    batch = []
    for i, x in enumerate(inputs):
        m, p = labels[i], None if maps is None else maps[i]
        base = os.path.join(out_dir, x.name)
        if x.kind == "npz":
            batch.append(i)
        elif x.kind == "nifti":
            plan.append((f"{base}_mask.nii.gz", lambda x=x, m=m: _nifti(x, m)))
            if p is not None:
                plan.append((f"{base}_prob.nii.gz", lambda x=x, p=p: _nifti(x, p)))
        else:
            ext = "tif" if x.kind == "tiff" else "png"
            plan.append((f"{base}_mask.{ext}", lambda m=m, ext=ext: _image(_visible(m), ext)))
            if p is not None:
                plan.append((f"{base}_prob.tif", lambda p=p: _image(p, "tif")))
    if batch:
        arrays = {
            "masks": np.stack([labels[i] for i in batch]),
            "ids": np.array([inputs[i].name for i in batch]),
        }
        if maps is not None:
            arrays["probabilities"] = np.stack([maps[i] for i in batch])
        plan.append((os.path.join(out_dir, "masks.npz"), lambda: _npz(arrays)))
    return plan


def _visible(mask: np.ndarray) -> np.ndarray:
    """A binary mask [H,W] as 0/255 (visible in any viewer); more labels keep their ids."""
    return mask * np.uint8(255) if mask.max(initial=0) <= 1 else mask


def _image(x: np.ndarray, ext: str) -> bytes:
    """A PNG or TIFF of x [H,W] (uint8 or float32), or a TIFF of x [H,W,K] with one page per
    channel (TIFF pages hold one float channel each)."""
    planes = [x] if x.ndim == 2 else [x[..., k] for k in range(x.shape[-1])]
    pages = [Image.fromarray(np.ascontiguousarray(p)) for p in planes]
    buf = io.BytesIO()
    if ext == "png":
        pages[0].save(buf, format="PNG")
    else:
        pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _nifti(x: Input, data: np.ndarray) -> bytes:
    """data [D,H,W] or [D,H,W,K] in canonical contract order -> .nii.gz bytes on the input's
    voxel grid, affine and header (dtype and scaling of `data`'s own, no display window)."""
    voxels = orientations.apply_orientation(_ijk(data), x.to_file)
    img = nib.Nifti1Image(np.ascontiguousarray(voxels), x.affine, header=x.header)
    img.set_data_dtype(data.dtype)
    img.header["cal_min"], img.header["cal_max"] = 0, 0
    return gzip.compress(img.to_bytes(), mtime=0)


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz of `arrays`."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
