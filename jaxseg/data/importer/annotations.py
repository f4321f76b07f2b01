"""CSV annotations by image or volume id: centres, boxes, class labels and patient groups."""

from __future__ import annotations

import csv
from collections.abc import Sequence

import numpy as np

from jaxseg.data.importer.files import file_stem

_CSV_FIELDS = {
    "center": (("x", "y"), ("x", "y", "z")),
    "box": (("x0", "y0", "x1", "y1"), ("x0", "y0", "z0", "x1", "y1", "z1")),
}


def read_csv(paths: Sequence[str], rank: int) -> tuple[dict[str, dict], list[str], list[str]]:
    """Annotations by id from CSV files with a header row.

    Columns (case-insensitive): `id` (an image stem, extension optional) and any of `x, y[, z]`
    (centre), `x0, y0[, z0], x1, y1[, z1]` (box; several rows of one id give several boxes),
    `label` or `class`, `group`. Returns ({id: {'center': [R], 'box': [2R] (the first),
    'boxes': [[2R], ...], 'label': str, 'group': str}}, problems, notes).
    """
    table: dict[str, dict] = {}
    problems, notes = [], []
    for path in paths:
        rows = _read_rows(path, problems)
        if rows is None:
            continue
        header = [h.strip().lower() for h in rows[0]]
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
            if any(cell.strip() for cell in row):
                _add_row(table, row, header, fields, label_col, f"{path}:{line}", problems)
    return table, problems, notes


def _read_rows(path: str, problems: list[str]) -> list[list[str]] | None:
    """The rows of a CSV file whose header has an 'id' column, else None (a problem noted)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{path}: cannot read CSV ({type(e).__name__}: {e})")
        return None
    if not rows:
        problems.append(f"{path}: empty CSV; it needs a header row with an 'id' column")
        return None
    if "id" not in [h.strip().lower() for h in rows[0]]:
        problems.append(f"{path}: header {rows[0]} has no 'id' column")
        return None
    return rows


def _add_row(
    table: dict[str, dict],
    row: list[str],
    header: list[str],
    fields: dict[str, tuple[str, ...]],
    label_col: str | None,
    where: str,
    problems: list[str],
) -> None:
    """Enter one CSV row into `table`; bad cells and second values of a field are problems."""
    if len(row) != len(header):
        problems.append(f"{where}: {len(row)} cells but the header has {len(header)}")
        return
    col = {h: i for i, h in enumerate(header)}
    ident = file_stem(row[col["id"]].strip())
    entry = table.setdefault(ident, {})
    found = {}
    try:
        for key, names in fields.items():
            found[key] = np.array([float(row[col[n]]) for n in names])
    except ValueError:
        problems.append(f"{where}: non-numeric coordinate in {row}")
        return
    if label_col is not None:
        found["label"] = row[col[label_col]].strip()
    if "group" in col:
        found["group"] = row[col["group"]].strip()
    for key, value in found.items():
        if key == "box" and np.isfinite(value).all():  # several boxes per id are kept
            entry.setdefault("boxes", []).append(value)
        if key in entry and (key == "box" or (key in ("label", "group") and entry[key] == value)):
            continue  # a further box, or the same label/group repeated on a box row
        if key in entry:
            problems.append(f"{where}: second '{key}' for id '{ident}'")
        elif key in _CSV_FIELDS and not np.isfinite(value).all():
            problems.append(f"{where}: '{key}' of id '{ident}' is not finite")
        else:
            entry[key] = value


def class_names(table: dict[str, dict], ids: Sequence[str]) -> tuple[tuple[str, ...], dict]:
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


def check_coverage(table: dict, ids: Sequence[str]) -> list[str]:
    """A label or group given for one imported id must be given for all (centres and boxes may
    be missing: unknown, NaN); ids must be imported ones."""
    problems = [f"CSV: id '{i}' matches no imported image" for i in table if i not in ids]
    for key in ("label", "group"):
        have = [i for i in ids if key in table.get(i, {})]
        if have and len(have) < len(ids):
            missing = [i for i in ids if key not in table.get(i, {})]
            problems.append(f"CSV: no '{key}' for id(s) {missing[:8]} (others have one)")
    return problems
