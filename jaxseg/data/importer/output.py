"""Writing an import: the .npz layout or a tfds folder, only after its problems are checked.

Nothing is left behind when the check fails: rows stream to a temporary sibling (tfds) or are
collected in memory (.npz), and the output appears atomically (`jaxseg.atomic`).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence

import numpy as np

from jaxseg import atomic
from jaxseg.data import tfds_store
from jaxseg.data.importer.report import InputError
from jaxseg.data.layout import MARKER, Layout, marker_text


def check_output(output: str, overwrite: bool) -> None:
    """Refuse an existing output unless `overwrite` and it is an earlier import's output (never
    a user's file or folder), and a missing parent folder."""
    if os.path.lexists(output):
        if not overwrite:
            raise ValueError(
                f"{output}: already exists; pass overwrite=True (--overwrite) to replace"
            )
        foreign = _not_imported(output)
        if foreign:
            raise ValueError(
                f"{output}: {foreign}; --overwrite replaces only an output of `jaxseg data "
                "import`, so nothing was touched (move it away or choose another output)"
            )
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise ValueError(f"{output}: parent folder {parent} does not exist")


def _not_imported(path: str) -> str | None:
    """Why the existing `path` is not an output jaxseg wrote (its MARKER missing), or None."""
    if os.path.islink(path):
        return "is a symbolic link"
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            return "is a folder, not an .npz file"
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return "is not an .npz archive"
        return None if f"{MARKER}.npy" in names else f"is an .npz without jaxseg's '{MARKER}' key"
    if not os.path.isdir(path):
        return "is a file, not a dataset folder"
    if not os.path.isfile(os.path.join(path, f"{MARKER}.json")):
        return f"is a folder without jaxseg's {MARKER}.json"
    return None


def write(
    output: str, rows: Iterator[dict], layout: Layout, problems: list[str], skip_bad: bool
) -> int:
    """Write the rows to `output` (`*.npz`, else a tfds folder) unless `problems`, which the
    rows may add to while they are read, forbid it (`check`). Returns the number written."""
    if not layout.masks and not output.endswith(".npz"):
        raise ValueError(f"{output}: an import without masks is written as .npz only; name OUT.npz")
    if output.endswith(".npz"):
        collected = list(rows)
        check(problems, skip_bad, len(collected))
        write_npz(output, collected, layout)
        return len(collected)
    tmp = atomic.temporary_path(output)
    try:
        count = tfds_store.write(tmp, rows, layout)
        check(problems, skip_bad, count)
        atomic.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


def check(problems: Sequence[str], skip_bad: bool, count: int) -> None:
    """InputError if there are problems (unless `skip_bad`) or no example to write."""
    if problems and not skip_bad:
        raise InputError(problems)
    if not count:
        raise InputError([*problems, "no example left to write"])


def write_npz(output: str, rows: Sequence[dict], layout: Layout) -> None:
    """Stack the rows into the .npz layout at `output` (single channel axes dropped), written
    through a temporary sibling file."""
    arrays = {
        "images": _squeeze(np.stack([r["image"] for r in rows])),
        "ids": np.array([r["id"] for r in rows]),
        "n_mask_files": np.array([r["n_mask_files"] for r in rows], np.int32),
        "labels": np.array([r["label"] for r in rows], np.int32),
        "label_names": np.array(layout.class_names),
        "mask_names": np.array(layout.mask_names),
        "groups": np.array([r["group"] for r in rows]),
        MARKER: np.array(marker_text()),
    }
    if layout.masks:
        arrays["masks"] = _squeeze(np.stack([r["mask"] for r in rows]))
    for key, field in layout.stored.items():
        arrays[field.npz_key] = np.array([r[key] for r in rows], field.dtype)
    tmp = atomic.temporary_path(output)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        atomic.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _squeeze(x: np.ndarray) -> np.ndarray:
    """Drop a single channel axis, as in shared/data/busi ([N,H,W] rather than [N,H,W,1])."""
    return x[..., 0] if x.shape[-1] == 1 else x
