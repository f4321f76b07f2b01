"""Import your own data into one dataset file that configs read by path (`data.path`).

Sources: a folder of 2-D images and a folder of masks matched by file stem, or NIfTI image
volumes and label volumes (`import_folders`, `import_nifti`); optional CSV files add centres,
boxes, classes and patient groups. The output is the .npz layout of shared/data/busi (`*.npz`,
read by `data.source='npz'`) or a TF-free tfds dataset folder (any other path, read by
`jaxseg.data.tfds_store.load`) for sets too big for memory.

Masks: `mask_classes=None` makes a mask binary (any nonzero value is foreground); a tuple such as
(0, 1, 2) declares class values, the first being background, and gives one channel per other
value (K = len - 1). Several mask files of one image (`case_mask.png`, `case_mask_2.png`, i.e.
stem + suffix + optional `_tag`) are OR-merged (`multi_mask='merge'`) or become channels named by
their tags (`'channels'`).

Resize policies (`resize`): 'pad' zero-pads to a centred square, then resizes it to `size`
(0 = keep the square's side); 'crop' centre-crops to a square, then resizes; 'pad16' keeps the
pixel grid and zero-pads every example (centred) to the common shape rounded up to `multiple`.
Images resize with Lanczos, masks by area (box) averaging thresholded at 0.5 (edge-aligned
grids: output pixel u covers input [u/s, (u+1)/s)). Integer images keep their dtype and range
(rounded and clipped after resizing); normalisation happens when the dataset is loaded.

Coordinates (CSV and stored) use the pixel-centre convention of `jaxseg.data.derive`: pixel (row
r, col c) is (x, y) = (c, r); volumes add z = the slice index d. Boxes are inclusive.

Bad input is collected per file; unless `skip_bad`, any problem raises `InputError` listing them
all and nothing is written. Output goes to a temporary sibling path renamed at the end; an
existing output is refused unless `overwrite`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from PIL import Image

from jaxseg.data import nifti
from jaxseg.data.preprocess import LUMINANCE

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
RESIZE_POLICIES = ("pad", "crop", "pad16")
_SEPARATORS = "_- ."
_INTEGER_MODES = {"I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.int32}
_CSV_FIELDS = {
    "center": (("x", "y"), ("x", "y", "z")),
    "box": (("x0", "y0", "x1", "y1"), ("x0", "y0", "z0", "x1", "y1", "z1")),
}


class InputError(ValueError):
    """Bad input; `problems` holds one 'file: what is wrong' line each. Nothing was written."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:10])
        more = f"; ... and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        super().__init__(
            f"{len(self.problems)} problem(s) in the input, nothing written: {shown}{more}"
        )


@dataclasses.dataclass
class Report:
    """What an import wrote (`str(report)` is the printed summary)."""

    output: str
    count: int
    image_shape: tuple[int, ...]  # per example: spatial shape + channels
    mask_names: tuple[str, ...]
    class_names: tuple[str, ...]
    imported: list[str] = dataclasses.field(default_factory=list)
    derived: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        fmt = "npz" if self.output.endswith(".npz") else "tfds"
        lines = [
            f"wrote {self.count} examples of shape {self.image_shape} to {self.output} ({fmt})",
            f"mask channels: {', '.join(self.mask_names)}; classes: {', '.join(self.class_names)}",
            *(f"imported: {s}" for s in self.imported),
            *(f"derived: {s}" for s in self.derived),
            *(f"skipped: {s}" for s in self.skipped),
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading files


def _file_stem(name: str) -> str:
    base = os.path.basename(name)
    low = base.lower()
    for ext in (*nifti.EXTENSIONS, *IMAGE_EXTENSIONS):
        if low.endswith(ext):
            return base[: -len(ext)]
    return base


def read_image(path: str, mask: bool = False) -> np.ndarray:
    """Pixels [H,W] or [H,W,C] in the file's dtype (uint8, uint16, int32 or float32).

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
    if mask and x.ndim == 3:
        if not (x == x[..., :1]).all():
            raise ValueError(
                f"{path}: mask has colour channels that differ; save it as a single-channel "
                "label image"
            )
        x = x[..., 0]
    return x


def _image_header(path: str) -> tuple[tuple[int, int], type]:
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


# ---------------------------------------------------------------------------------------------
# Pairing images with masks


def _listing(folder: str, extensions: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """{stem: path} of the files with one of `extensions`; other entries are skipped."""
    if not os.path.isdir(folder):
        raise ValueError(f"{folder}: no such folder")
    files, skipped = {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name.lower().endswith(extensions) and not name.startswith("."):
            files[_file_stem(name)] = path
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


# ---------------------------------------------------------------------------------------------
# CSV annotations


def read_csv(paths: Sequence[str], rank: int) -> tuple[dict[str, dict], list[str], list[str]]:
    """Annotations by id from CSV files with a header row.

    Columns (case-insensitive): `id` (an image stem, extension optional) and any of `x, y[, z]`
    (centre), `x0, y0[, z0], x1, y1[, z1]` (box), `label` or `class`, `group`. Returns
    ({id: {'center': [R], 'box': [2R], 'label': str, 'group': str}}, problems, notes).
    """
    table: dict[str, dict] = {}
    problems, notes = [], []
    for path in paths:
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read CSV ({type(e).__name__}: {e})")
            continue
        if not rows:
            problems.append(f"{path}: empty CSV; it needs a header row with an 'id' column")
            continue
        header = [h.strip().lower() for h in rows[0]]
        if "id" not in header:
            problems.append(f"{path}: header {rows[0]} has no 'id' column")
            continue
        col = {h: i for i, h in enumerate(header)}
        fields = {
            key: names[rank - 2]
            for key, names in _CSV_FIELDS.items()
            if all(n in col for n in names[rank - 2])
        }
        label_col = "label" if "label" in col else "class" if "class" in col else None
        used = {"id", *(n for names in fields.values() for n in names), label_col, "group"}
        unused = [h for h in header if h not in used]
        if unused:
            notes.append(f"{path}: ignored columns {unused}")
        for line, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{line}"
            if len(row) != len(header):
                problems.append(f"{where}: {len(row)} cells but the header has {len(header)}")
                continue
            ident = _file_stem(row[col["id"]].strip())
            entry = table.setdefault(ident, {})
            found = {}
            try:
                for key, names in fields.items():
                    found[key] = np.array([float(row[col[n]]) for n in names])
            except ValueError:
                problems.append(f"{where}: non-numeric coordinate in {row}")
                continue
            if label_col is not None:
                found["label"] = row[col[label_col]].strip()
            if "group" in col:
                found["group"] = row[col["group"]].strip()
            for key, value in found.items():
                if key in entry:
                    problems.append(f"{where}: second '{key}' for id '{ident}'")
                elif key in _CSV_FIELDS and not np.isfinite(value).all():
                    problems.append(f"{where}: '{key}' of id '{ident}' is not finite")
                else:
                    entry[key] = value
    return table, problems, notes


def _class_names(table: dict[str, dict], ids: Sequence[str]) -> tuple[tuple[str, ...], dict]:
    """Class names and {label text: id}: integer labels keep their values, text is sorted."""
    texts = sorted({table[i]["label"] for i in ids if "label" in table.get(i, {})})
    if not texts:
        return ("unlabelled",), {}
    if all(t.lstrip("-").isdigit() for t in texts):
        values = [int(t) for t in texts]
        if min(values) < 0:
            raise ValueError(f"CSV labels must be >= 0 when numeric, got {min(values)}")
        return tuple(f"class{i}" for i in range(max(values) + 1)), {t: int(t) for t in texts}
    return tuple(texts), {t: i for i, t in enumerate(texts)}


def _check_csv_coverage(table: dict, ids: Sequence[str]) -> list[str]:
    """A field given for one imported id must be given for all; ids must be imported ones."""
    problems = [f"CSV: id '{i}' matches no imported image" for i in table if i not in ids]
    for key in ("center", "box", "label", "group"):
        have = [i for i in ids if key in table.get(i, {})]
        if have and len(have) < len(ids):
            missing = [i for i in ids if key not in table.get(i, {})]
            problems.append(f"CSV: no '{key}' for id(s) {missing[:8]} (others have one)")
    return problems


# ---------------------------------------------------------------------------------------------
# Geometry of the resize policies


@dataclasses.dataclass(frozen=True)
class Placement:
    """How one example maps onto the output grid: input coordinate p (per axis, array order)
    -> (p + offset + 0.5) · scale - 0.5 (offsets < 0 crop). `shape` is the output shape."""

    offset: tuple[int, ...]
    scale: float
    shape: tuple[int, ...]


def placement(shape: tuple[int, ...], policy: str, size: int, target: tuple[int, ...]):
    """The Placement of an example of spatial `shape` under a resize policy; `target` is the
    common padded shape (used by 'pad16')."""
    if policy == "pad16":
        return Placement(
            tuple((t - n) // 2 for t, n in zip(target, shape, strict=True)), 1.0, target
        )
    side = max(shape) if policy == "pad" else min(shape)
    offset = tuple((side - n) // 2 for n in shape)  # negative when cropping
    out = size or side
    return Placement(offset, out / side, (out,) * len(shape))


def _shift_square(x: np.ndarray, offset: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Zero-pad (offset > 0) or crop (offset < 0) the leading axes of x into `shape`."""
    out = np.zeros(shape + x.shape[len(shape) :], x.dtype)
    src, dst = [], []
    for o, n, m in zip(offset, x.shape, shape, strict=False):
        lo, hi = max(0, -o), min(n, m - o)
        src.append(slice(lo, hi))
        dst.append(slice(lo + o, hi + o))
    out[tuple(dst)] = x[tuple(src)]
    return out


def place(x: np.ndarray, where: Placement, is_mask: bool) -> np.ndarray:
    """Apply a Placement to [*S,C]: pad/crop, then (2-D only) resize by `scale` with Lanczos
    (images) or box averaging thresholded at 0.5 (masks). Integer images keep their dtype."""
    side = tuple(round(n / where.scale) for n in where.shape)
    x = _shift_square(x, where.offset, side)
    if where.scale == 1.0:
        return x
    h, w = where.shape
    filt = Image.Resampling.BOX if is_mask else Image.Resampling.LANCZOS
    channels = [
        np.asarray(Image.fromarray(x[..., c].astype(np.float32), mode="F").resize((w, h), filt))
        for c in range(x.shape[-1])
    ]
    y = np.stack(channels, axis=-1)
    if is_mask:
        return (y >= 0.5).astype(x.dtype)
    if x.dtype.kind in "ui":
        info = np.iinfo(x.dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(x.dtype)
    return y


def place_geometry(
    center: np.ndarray | None, box: np.ndarray | None, where: Placement, where_name: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Map a CSV centre (x, y[, z]) and inclusive box through a Placement (coordinates are in
    reverse array order); a centre or box falling outside the output is a ValueError."""
    rank = len(where.shape)
    off = np.asarray(where.offset[::-1], np.float64)  # (x, y[, z]) order
    size = np.asarray(where.shape[::-1], np.float64)
    s = where.scale
    if center is not None:
        center = (center + off + 0.5) * s - 0.5
        if ((center < -0.5) | (center > size - 0.5)).any():
            raise ValueError(f"{where_name}: CSV centre falls outside the output image")
    if box is not None:
        lo = np.floor((box[:rank] + off) * s)
        hi = np.ceil((box[rank:] + off + 1) * s) - 1
        if (hi < 0).any() or (lo > size - 1).any() or (lo > hi).any():
            raise ValueError(f"{where_name}: CSV box falls outside the output image or is empty")
        box = np.concatenate([np.clip(lo, 0, size - 1), np.clip(hi, 0, size - 1)])
    return center, box


# ---------------------------------------------------------------------------------------------
# Writing


def _check_output(output: str, overwrite: bool) -> None:
    if os.path.lexists(output) and not overwrite:
        raise ValueError(f"{output}: already exists; pass overwrite=True (--overwrite) to replace")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise ValueError(f"{output}: parent folder {parent} does not exist")


def replace_output(tmp: str, output: str) -> None:
    """Move the finished `tmp` to `output`, replacing an old output only now."""
    if os.path.isdir(output) and not os.path.islink(output):
        old = f"{output}.old-{os.getpid()}"
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output)


def _squeeze(x: np.ndarray) -> np.ndarray:
    """Drop a single channel axis, as in shared/data/busi ([N,H,W] rather than [N,H,W,1])."""
    return x[..., 0] if x.shape[-1] == 1 else x


def write_npz(output: str, examples: Iterator[dict], meta: dict) -> int:
    """Stack the examples into the .npz layout at `output` (single channel axes dropped; a
    temporary sibling file renamed at the end, after meta['check']() found no problem).
    Returns N."""
    rows = list(examples)
    meta["check"]()
    arrays = {
        "images": _squeeze(np.stack([r["image"] for r in rows])),
        "masks": _squeeze(np.stack([r["mask"] for r in rows])),
        "ids": np.array([r["id"] for r in rows]),
        "n_mask_files": np.array([r["n_mask_files"] for r in rows], np.int32),
        "labels": np.array([r["label"] for r in rows], np.int32),
        "label_names": np.array(meta["class_names"]),
        "mask_names": np.array(meta["mask_names"]),
        "groups": np.array([r["group"] for r in rows]),
    }
    for key, name in (("center", "centers"), ("box", "boxes"), ("spacing", "spacing")):
        if key in meta["keys"]:
            arrays[name] = np.stack([r[key] for r in rows]).astype(np.float32)
    tmp = f"{output}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        replace_output(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(rows)


def _write(output: str, examples: Iterator[dict], meta: dict) -> int:
    if output.endswith(".npz"):
        return write_npz(output, examples, meta)
    from jaxseg.data import tfds_store  # late: imports tensorflow_datasets

    return tfds_store.write(output, examples, meta)


def _run(
    output: str,
    make_examples: Callable[[list[str]], Iterator[dict]],
    meta: dict,
    problems: list[str],
    skip_bad: bool,
    report: Report,
) -> Report:
    """Write the examples; problems found on the way abort (nothing written) unless skip_bad,
    which lists them under `skipped`."""

    def check() -> None:
        if problems and not skip_bad:
            raise InputError(problems)

    def checked() -> None:
        check()
        if not meta["count"]:
            raise InputError([*problems, "no example left to write"])

    meta["check"] = checked
    meta["count"] = 0

    def counted() -> Iterator[dict]:
        for row in make_examples(problems):
            meta["count"] += 1
            yield row

    count = _write(output, counted(), meta)
    report.skipped.extend(problems)
    report.count = count
    print(report, flush=True)
    return report


# ---------------------------------------------------------------------------------------------
# 2-D folders


def _labels_groups(table: dict, ids: Sequence[str], label_ids: dict) -> dict[str, tuple]:
    return {
        i: (label_ids.get(table.get(i, {}).get("label"), 0), table.get(i, {}).get("group", i))
        for i in ids
    }


def _annotation_report(report: Report, table: dict, ids: Sequence[str], what: str) -> set:
    """Fill the report's imported/derived lines for CSV fields; returns the stored keys."""
    keys = set()
    for key, plural in (("center", "centres"), ("box", "boxes")):
        if ids and all(key in table.get(i, {}) for i in ids):
            keys.add(key)
            report.imported.append(f"{plural} from CSV")
        else:
            report.derived.append(f"{plural} from the masks when loaded (the CSV has none)")
    have_group = ids and all("group" in table.get(i, {}) for i in ids)
    report.imported.append("groups from CSV" if have_group else f"one group per {what}")
    return keys


def import_folders(
    images: str,
    masks: str,
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
    """Import a folder of 2-D images and a folder of masks (see the module docstring).

    Args:
      images, masks: folders; a mask of image `case.png` is `case{mask_suffix}[_tag].png`.
      output: `*.npz`, or a folder for a tfds dataset.
      multi_mask: 'merge' (OR of an image's mask files) or 'channels' (one channel per tag).
      mask_classes: None (binary masks) or the class values, background first.
      csv_files: CSV annotations (`read_csv`).
      resize: a policy of RESIZE_POLICIES; size: output side for 'pad'/'crop' (0 = keep).
      color: 'gray' (RGB -> luminance) or 'rgb' (gray -> 3 equal channels).
      multiple: 'pad16' pads to a multiple of this.
      skip_bad: leave out examples with problems (listed in the report) instead of failing.
      overwrite: replace an existing output.

    Returns:
      The Report (also printed).
    """
    _check_options(resize, size, color, multi_mask, multiple, mask_classes)
    _check_output(output, overwrite)
    image_files, skipped = _listing(images, IMAGE_EXTENSIONS)
    mask_files, skipped_masks = _listing(masks, IMAGE_EXTENSIONS)
    pairs, orphans = pair_files(list(image_files), list(mask_files), mask_suffix)
    problems = [f"{mask_files[m]}: mask without image" for m in orphans]
    problems += [f"{image_files[s]}: image without mask" for s, ms in pairs.items() if not ms]
    headers = {}
    for stem, ms in pairs.items():
        if not ms:
            continue
        try:
            headers[stem] = _image_header(image_files[stem])
        except ValueError as e:
            problems.append(str(e))
    ids = list(headers)
    if not ids:
        raise InputError([*problems, f"{images}: no image with a mask to import"])
    table, csv_problems, notes = read_csv(csv_files, 2)
    problems += csv_problems + _check_csv_coverage(table, ids)
    class_names, label_ids = _class_names(table, ids)
    tags = sorted({t for s in ids for _, t in pairs[s]})
    if multi_mask == "channels" and mask_classes is not None:
        raise ValueError("multi_mask='channels' needs binary masks (mask_classes=None)")
    if multi_mask == "channels":
        mask_names = tuple(t or "mask" for t in tags)
    elif mask_classes is None:
        mask_names = ("foreground",)
    else:
        mask_names = tuple(str(c) for c in mask_classes[1:])
    dtypes = {d for _, d in headers.values()}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
    target = tuple(
        -(-max(h[0][a] for h in headers.values()) // multiple) * multiple for a in (0, 1)
    )
    places = {s: placement(headers[s][0], resize, size, target) for s in ids}
    shapes = {p.shape for p in places.values()}
    if len(shapes) > 1:
        raise ValueError(
            f"resize='{resize}' with size=0 gives examples of shapes {sorted(shapes)}; "
            "pass size=N (--size) or use resize='pad16'"
        )
    channels = 3 if color == "rgb" else 1
    report = Report(output, 0, (*shapes.pop(), channels), mask_names, class_names)
    report.skipped.extend(skipped + skipped_masks + notes)
    report.imported.append(f"{len(ids)} images from {images}, masks from {masks}")
    if csv_files:
        report.imported.append(f"CSV {', '.join(csv_files)}")
    keys = _annotation_report(report, table, ids, "image")
    several = sum(len(pairs[s]) > 1 for s in ids)
    if several:
        report.imported.append(f"{several} images had several mask files ({multi_mask})")
    meta_rows = _labels_groups(table, ids, label_ids)

    def examples(problems: list[str]) -> Iterator[dict]:
        for stem in ids:
            try:
                image = _color(read_image(image_files[stem]), color, dtype)
                mask = _read_masks(
                    [(mask_files[m], t) for m, t in pairs[stem]],
                    image.shape[:2],
                    mask_classes,
                    tags if multi_mask == "channels" else None,
                )
                where = places[stem]
                center, box = place_geometry(
                    table.get(stem, {}).get("center"),
                    table.get(stem, {}).get("box"),
                    where,
                    image_files[stem],
                )
            except ValueError as e:
                problems.append(str(e))
                continue
            label, group = meta_rows[stem]
            row = dict(
                image=place(image, where, False),
                mask=place(mask, where, True),
                id=stem,
                n_mask_files=len(pairs[stem]),
                label=label,
                group=str(group),
            )
            row.update({k: v for k, v in (("center", center), ("box", box)) if k in keys})
            yield row

    meta = dict(
        class_names=class_names,
        mask_names=mask_names,
        keys=keys,
        image=(report.image_shape, dtype),
        mask=((*report.image_shape[:-1], len(mask_names)), np.uint8),
        rank=2,
    )
    return _run(output, examples, meta, problems, skip_bad, report)


def _check_options(resize, size, color, multi_mask, multiple, mask_classes) -> None:
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {resize!r}; choose one of {RESIZE_POLICIES}")
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0 (0 = keep), got {size!r}")
    if resize == "pad16" and size:
        raise ValueError("resize='pad16' keeps the pixel grid; size must be 0")
    if color not in ("gray", "rgb"):
        raise ValueError(f"color must be 'gray' or 'rgb', got {color!r}")
    if multi_mask not in ("merge", "channels"):
        raise ValueError(f"multi_mask must be 'merge' or 'channels', got {multi_mask!r}")
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive int, got {multiple!r}")
    if mask_classes is not None and (
        len(mask_classes) < 2 or len(set(mask_classes)) != len(mask_classes)
    ):
        raise ValueError(
            f"mask_classes needs >= 2 distinct values (background first), got {mask_classes}"
        )


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
    files: list[tuple[str, str]],
    shape: tuple[int, int],
    classes: Sequence[int] | None,
    tags: list[str] | None,
) -> np.ndarray:
    """An image's mask files -> uint8 [H,W,K]: OR-merged (tags None) or one channel per tag."""
    planes = {}
    for path, tag in files:
        values = read_image(path, mask=True)
        if values.shape[:2] != shape:
            raise ValueError(f"{path}: mask size {values.shape[:2]} != image size {shape}")
        planes[tag] = mask_channels(values, classes, path)
    if tags is None:
        return np.any(np.stack(list(planes.values())), axis=0).astype(np.uint8)
    empty = np.zeros((*shape, 1), np.uint8)
    return np.concatenate([planes.get(t, empty) for t in tags], axis=-1)


# ---------------------------------------------------------------------------------------------
# NIfTI volumes


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
    """Import NIfTI image volumes and label volumes (see the module docstrings).

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
    _check_options(resize, size, "gray", "merge", multiple, mask_classes)
    if not slices and resize != "pad16":
        raise ValueError("volumes keep their voxel grid: use resize='pad16' (and spacing=...)")
    target_spacing = None if spacing is None else np.asarray(spacing, np.float64)
    if target_spacing is not None and (target_spacing.shape != (3,) or (target_spacing <= 0).any()):
        raise ValueError(f"spacing must be 3 positive mm values (D, H, W), got {spacing}")
    _check_output(output, overwrite)
    image_files, skipped = _listing(images, nifti.EXTENSIONS)
    label_files, skipped_labels = _listing(labels, nifti.EXTENSIONS)
    wanted = {s + label_suffix: s for s in image_files}
    problems = [
        f"{p}: label volume without image" for m, p in label_files.items() if m not in wanted
    ]
    problems += [
        f"{p}: image volume without labels"
        for s, p in image_files.items()
        if s + label_suffix not in label_files
    ]
    headers = {}
    for stem, path in image_files.items():
        if stem + label_suffix not in label_files:
            continue
        try:
            shape, sp, code = nifti.header(path)
            lshape, lsp, lcode = nifti.header(label_files[stem + label_suffix])
        except ValueError as e:
            problems.append(str(e))
            continue
        lpath = label_files[stem + label_suffix]
        if lshape != shape[:3]:
            problems.append(f"{lpath}: label shape {lshape} != image shape {shape[:3]}")
        elif not np.allclose(lsp, sp, rtol=1e-3):
            problems.append(f"{lpath}: label spacing {_mm(lsp)} != image spacing {_mm(sp)}")
        elif lcode != code:
            problems.append(f"{lpath}: label orientation {lcode} != image orientation {code}")
        else:
            headers[stem] = (shape, sp, code)
    ids = list(headers)
    if not ids:
        raise InputError([*problems, f"{images}: no image volume with labels to import"])
    codes = {h[2] for h in headers.values()}
    if len(codes) > 1:
        problems.append(f"inconsistent orientations {sorted(codes)}; reorient the volumes first")
    if target_spacing is None:
        first = ids[0]
        for s in ids[1:]:
            if not np.allclose(headers[s][1], headers[first][1], rtol=1e-3):
                problems.append(
                    f"{image_files[s]}: inconsistent spacing {_mm(headers[s][1])} vs "
                    f"{_mm(headers[first][1])} of {first}; pass spacing=... to resample"
                )
    grids = {
        s: h[0][:3] if target_spacing is None else nifti.resampled_shape(h[0], h[1], target_spacing)
        for s, h in headers.items()
    }
    out_spacing = {s: headers[s][1] if target_spacing is None else target_spacing for s in ids}
    table, csv_problems, notes = read_csv(csv_files, 3)
    problems += csv_problems + _check_csv_coverage(table, ids)
    if slices and any(k in e for e in table.values() for k in ("center", "box")):
        problems.append("CSV centres/boxes are per volume; slices derive theirs from the masks")
    class_names, label_ids = _class_names(table, ids)
    mask_names = ("foreground",) if mask_classes is None else tuple(map(str, mask_classes[1:]))
    dtype = np.float32
    channels = {headers[s][0][3] if len(headers[s][0]) == 4 else 1 for s in ids}
    if len(channels) > 1:
        raise ValueError(f"image volumes have different channel counts {sorted(channels)}")
    n_channels = channels.pop()
    meta_rows = _labels_groups(table, ids, label_ids)
    rank = 2 if slices else 3
    axes = (1, 2) if slices else (0, 1, 2)
    target = tuple(-(-max(grids[s][a] for s in ids) // multiple) * multiple for a in axes)
    places = {s: placement(tuple(grids[s][a] for a in axes), resize, size, target) for s in ids}
    shapes = {p.shape for p in places.values()}
    if len(shapes) > 1:
        raise ValueError(
            f"resize='{resize}' with size=0 gives slices of shapes {sorted(shapes)}; "
            "pass size=N (--size) or use resize='pad16'"
        )
    report = Report(output, 0, (*shapes.pop(), n_channels), mask_names, class_names)
    report.skipped.extend(skipped + skipped_labels + notes)
    what = "slices of volumes" if slices else "volumes"
    report.imported.append(f"{what} of {len(ids)} NIfTI files from {images}, labels from {labels}")
    if target_spacing is not None:
        report.imported.append(f"resampled to spacing {_mm(target_spacing)} mm (D, H, W)")
    keys = _annotation_report(report, table, ids, "volume") | {"spacing"}
    dropped = []

    def examples(problems: list[str]) -> Iterator[dict]:
        for stem in ids:
            lpath = label_files[stem + label_suffix]
            try:
                volume, sp = nifti.read(image_files[stem])
                values, _ = nifti.read(lpath)
                if values.ndim != 3:
                    raise ValueError(f"{lpath}: label volume has shape {values.shape}; need 3-D")
                if values.dtype.kind == "f" and (values != np.round(values)).any():
                    raise ValueError(f"{lpath}: label volume has non-integer values")
                if target_spacing is not None:
                    volume = nifti.resample(volume, sp, target_spacing, order=1)
                    values = nifti.resample(values, sp, target_spacing, order=0)
                mask = mask_channels(values, mask_classes, lpath)
                volume = volume if volume.ndim == 4 else volume[..., None]
                where = places[stem]
                ratio = headers[stem][1] / out_spacing[stem]  # input -> output voxels
                center, box = _volume_geometry(table.get(stem, {}), ratio, where, lpath)
            except ValueError as e:
                problems.append(str(e))
                continue
            label, group = meta_rows[stem]
            common = dict(label=label, group=str(group), n_mask_files=1)
            if not slices:
                row = dict(
                    image=place(volume.astype(dtype), where, False),
                    mask=place(mask, where, True),
                    id=stem,
                    spacing=out_spacing[stem],
                    **common,
                )
                row.update({k: v for k, v in (("center", center), ("box", box)) if k in keys})
                yield row
                continue
            for d, (img, msk) in enumerate(
                zip(nifti.slices(volume), nifti.slices(mask), strict=True)
            ):
                if not empty_slices and not msk.any():
                    dropped.append(f"{stem}:z{d}")
                    continue
                yield dict(
                    image=place(img.astype(dtype), where, False),
                    mask=place(msk, where, True),
                    id=f"{stem}:z{d}",
                    spacing=out_spacing[stem][1:] / where.scale,
                    **common,
                )
        if dropped:
            report.skipped.append(f"{len(dropped)} slices with empty masks (empty_slices=False)")

    meta = dict(
        class_names=class_names,
        mask_names=mask_names,
        keys=keys,
        image=(report.image_shape, dtype),
        mask=((*report.image_shape[:-1], len(mask_names)), np.uint8),
        rank=rank,
    )
    return _run(output, examples, meta, problems, skip_bad, report)


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
