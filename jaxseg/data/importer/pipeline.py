"""The steps every import shares: CSV annotations, placement, the report and the checked write.

A source (`folders`, `volumes`) lists its files and describes them as a `Source`; `run` does the
rest, reading one example at a time through `Source.read`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from jaxseg.data.importer import annotations, output
from jaxseg.data.importer.placement import RESIZE_POLICIES, Placement, place, plan
from jaxseg.data.importer.report import Report
from jaxseg.data.layout import Layout, fields

# read(id, placement, CSV entry) -> {'image' [*S,C] in Source.dtype, 'mask' uint8 [*S,K],
# 'n_mask_files', and 'center', 'box' (placed, or None), the VOLUME_KEYS of a volume source,
# 'notes' [(what, where)] on doubtful input}; a bad example raises ValueError.
Reader = Callable[[str, Placement, dict], dict]

# Stored for every example: its grid before placement and the Placement (`placement.unplace`).
PLACEMENT_KEYS = frozenset({"original_shape", "placement_offset", "placement_scale"})
# Stored for volumes (and their slices): spacing and the file's geometry (`nifti.Header`).
VOLUME_KEYS = frozenset({"spacing", "file_shape", "affine", "orientation"})

# A note: the import goes on, and the report ends in one warning per kind of note.
MULTI_VALUED = (
    "mask file(s) expected binary hold more than two values; every nonzero value became "
    "foreground (pass --mask-classes to keep classes apart)"
)


@dataclasses.dataclass(frozen=True)
class Source:
    """What a source found before reading pixels, and how to read one of its examples."""

    ids: tuple[str, ...]  # examples to import, in order
    grids: dict[str, tuple[int, ...]]  # spatial shape of each example before placement
    read: Reader
    mask_names: tuple[str, ...]
    channels: int
    dtype: type  # of the stored images
    problems: tuple[str, ...] = ()  # found while listing
    skipped: tuple[str, ...] = ()  # files left out while listing
    summary: tuple[str, ...] = ()  # report lines before the CSV ones
    remarks: tuple[str, ...] = ()  # report lines after them
    volumes: bool = False  # 3-D sources: CSV rank 3, one group per volume, spacing stored
    slices: bool = False  # write the axial slices of each volume as 2-D examples
    empty_slices: bool = True  # keep slices with an empty mask
    masks: bool = True  # False: images alone (labels from the CSV only); mask rows are zeros


def check_options(
    resize: str,
    size: int,
    color: str,
    multi_mask: str,
    multiple: int,
    mask_classes: Sequence[int] | None,
    masks: bool = True,
) -> None:
    """ValueError for an option outside its documented values (see `import_folders`), or a mask
    option given for images imported without masks (`masks` False), which it could not affect."""
    if not masks and (mask_classes is not None or multi_mask != "merge"):
        raise ValueError(
            "mask_classes / multi_mask (--mask-classes, --multi-mask) apply to masks; "
            "images imported without masks take neither"
        )
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


def run(
    path: str,
    source: Source,
    *,
    csv_files: Sequence[str],
    resize: str,
    size: int,
    multiple: int,
    skip_bad: bool,
) -> Report:
    """Import `source` to `path` (`*.npz` or a tfds folder) and print the Report."""
    table, csv_problems, notes = annotations.read_csv(csv_files, 3 if source.volumes else 2)
    problems = [*source.problems, *csv_problems, *annotations.check_coverage(table, source.ids)]
    if source.slices and any(k in e for e in table.values() for k in ("center", "box")):
        problems.append(
            "CSV centres/boxes are per volume; slices "
            + ("derive theirs from the masks" if source.masks else "carry none (omit --slices)")
        )
    max_boxes = max((len(e.get("boxes", ())) for e in table.values()), default=1) or 1
    if source.volumes and max_boxes > 1:
        problems.append("CSV: several boxes per id are supported for 2-D images only")
    class_names, labels = annotations.label_values(table, source.ids)
    noun = "slices" if source.slices else "examples"
    places, shape = plan(source.grids, resize, size, multiple, noun)
    report = Report(path, 0, (*shape, source.channels), source.mask_names, class_names)
    report.skipped.extend([*source.skipped, *notes])
    report.imported.extend(source.summary)
    unit = "volume" if source.volumes else "image"
    keys = _annotation_keys(report, table, labels, source.ids, unit, source.masks)
    report.imported.extend(source.remarks)
    layout = Layout(
        class_names,
        source.mask_names,
        frozenset(keys | PLACEMENT_KEYS | (VOLUME_KEYS if source.volumes else set())),
        report.image_shape,
        source.dtype,
        max_boxes=max_boxes,
        masks=source.masks,
        label_width=len(class_names) if np.ndim(labels[source.ids[0]]) else 0,
    )
    notes: dict[str, list[str]] = {}
    rows = _rows(source, table, labels, places, layout.keys, problems, notes, report)
    report.count = output.write(path, rows, layout, problems, skip_bad)
    report.skipped.extend(problems)
    report.warnings.extend(
        f"{len(where)} {what}; first: {where[0]}" for what, where in notes.items()
    )
    print(report, flush=True)
    for line in report.warnings:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    return report


def _annotation_keys(
    report: Report,
    table: dict,
    labels: dict[str, int | np.ndarray],
    ids: Sequence[str],
    unit: str,
    masks: bool = True,
) -> set[str]:
    """Fill the report's imported/derived lines for CSV fields (how many examples have each;
    ``labels`` as ``annotations.label_values`` gives them); returns the stored keys. Examples
    without a CSV centre or box store NaN (unknown): loading derives it from the mask where
    there is one."""
    keys = set()
    rest = "the others' from the masks when loaded" if masks else "the others have none"
    for key, plural in (("center", "centres"), ("box", "boxes")):
        have = sum(key in table.get(i, {}) for i in ids)
        if have:
            keys.add(key)
            several = sum(len(table.get(i, {}).get("boxes", ())) > 1 for i in ids)
            extra = f", {several} with several" if key == "box" and several else ""
            report.imported.append(
                f"{plural} from CSV for {have} of {len(ids)} {unit}s{extra}"
                + (f" ({rest})" if have < len(ids) else "")
            )
        elif masks:
            report.derived.append(f"{plural} from the masks when loaded (the CSV has none)")
    multi = [labels[i] for i in ids if "labels" in table.get(i, {})]
    if multi:
        values = np.array(multi)
        report.imported.append(
            f"multi-hot labels from CSV ({values.shape[1]} classes) for {len(multi)} of "
            f"{len(ids)} {unit}s: {(values == 1).sum()} positive, {(values == -1).sum()} uncertain"
        )
    have_group = ids and all("group" in table.get(i, {}) for i in ids)
    report.imported.append("groups from CSV" if have_group else f"one group per {unit}")
    return keys


GEOMETRY = frozenset({"center", "box", "spacing"})


def _or_nan(value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """A row's centre/box, NaN-padded to ``shape`` (several boxes [m,2R] -> [M,2R]); NaN when
    the CSV has none for this example."""
    out = np.full(shape, np.nan)
    if value is None:
        return out
    value = np.asarray(value, np.float64)
    if value.shape == shape:
        return value
    out.reshape(-1, shape[-1])[: len(value.reshape(-1, shape[-1]))] = value.reshape(-1, shape[-1])
    return out


def _rows(
    source: Source,
    table: dict,
    labels: dict[str, int | np.ndarray],
    places: dict[str, Placement],
    keys: frozenset[str],
    problems: list[str],
    notes: dict[str, list[str]],
    report: Report,
) -> Iterator[dict]:
    """The placed rows of every example (or of every slice); bad ones go to `problems`, the
    readers' notes to `notes` ({what: [where]})."""
    dropped = 0
    rank = 3 if source.volumes else 2
    max_boxes = max((len(e.get("boxes", ())) for e in table.values()), default=1) or 1
    layout_shapes = {k: f.shape for k, f in fields(rank, max_boxes).items()}
    for stem in source.ids:
        where = places[stem]
        try:
            found = source.read(stem, where, table.get(stem, {}))
        except ValueError as e:
            problems.append(str(e))
            continue
        for what, at in found.get("notes", ()):
            notes.setdefault(what, []).append(at)
        group = table.get(stem, {}).get("group", stem)
        common = dict(
            label=labels[stem],
            group=str(group),
            n_mask_files=found["n_mask_files"],
            original_shape=source.grids[stem],
            placement_offset=where.offset,
            placement_scale=where.scale,
            **{k: found[k] for k in VOLUME_KEYS - {"spacing"} if k in keys},
        )
        if not source.slices:
            row = dict(
                image=place(found["image"], where, False),
                mask=place(found["mask"], where, True),
                id=stem,
                **common,
            )
            yield row | {k: _or_nan(found.get(k), layout_shapes[k]) for k in keys & GEOMETRY}
            continue
        for d, (image, mask) in enumerate(zip(found["image"], found["mask"], strict=True)):
            if not source.empty_slices and not mask.any():
                dropped += 1
                continue
            yield dict(
                image=place(image, where, False),
                mask=place(mask, where, True),
                id=f"{stem}:z{d}",
                spacing=found["spacing"][1:] / where.scale,
                **common,
            )
    if dropped:
        report.skipped.append(f"{dropped} slices with empty masks (empty_slices=False)")
