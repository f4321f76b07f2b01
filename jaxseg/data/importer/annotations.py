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


MULTI_HOT = "label:"  # column prefix of one multi-hot finding: `label:NAME`


def read_csv(paths: Sequence[str], rank: int) -> tuple[dict[str, dict], list[str], list[str]]:
    """Annotations by id from CSV files with a header row.

    Columns (case-insensitive): `id` (an image stem, extension optional) and any of `x, y[, z]`
    (centre), `x0, y0[, z0], x1, y1[, z1]` (box; several rows of one id give several boxes),
    `label` or `class` (one class per id), or instead `label:NAME` columns (multi-hot, one per
    finding, e.g. CheXpert's 14: 1 positive, 0 negative, -1 uncertain, blank = 0: not mentioned,
    as CheXpert's labeller means it; 1.0/0.0/-1.0 too), and `group`. Returns ({id: {'center':
    [R], 'box': [2R] (the first), 'boxes': [[2R], ...], 'label': str, 'labels': ((NAME, value),
    ...), 'group': str}}, problems, notes). Every file's `label:NAME` columns must name the same
    findings in the same order, and a file or id must not mix them with a `label` column.
    """
    table: dict[str, dict] = {}
    problems, notes = [], []
    forms: dict[str, str] = {}  # 'label' / 'labels' -> the first file using that form
    findings: list[tuple[str, tuple[str, ...]]] = []  # (file, NAMEs) of files with label:NAME
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
        multi = _multi_hot_columns(path, rows[0], label_col, problems)
        if multi is None:
            continue
        if multi:
            findings.append((path, tuple(name for _, name in multi)))
        if label_col or multi:
            forms.setdefault("labels" if multi else "label", path)
        used = {"id", *(n for names in fields.values() for n in names), label_col, "group"}
        used |= {header[i] for i, _ in multi}
        unused = [h for h in header if h not in used]
        if unused:
            notes.append(f"{path}: ignored columns {unused}")
        for line, row in enumerate(rows[1:], start=2):
            if any(cell.strip() for cell in row):
                where = f"{path}:{line}"
                _add_row(table, row, header, fields, label_col, multi, where, problems)
    if len(forms) > 1:
        problems.append(
            f"CSV: {forms['label']} has a 'label' column but {forms['labels']} has "
            f"'{MULTI_HOT}NAME' columns; give one class per id or multi-hot findings, not both"
        )
    problems += [
        f"{path}: '{MULTI_HOT}NAME' columns {list(names)} differ from {list(findings[0][1])} "
        f"of {findings[0][0]}; every CSV must list the same findings in the same order"
        for path, names in findings[1:]
        if names != findings[0][1]
    ]
    return table, problems, notes


def _multi_hot_columns(
    path: str, header: list[str], label_col: str | None, problems: list[str]
) -> list[tuple[int, str]] | None:
    """[(column, NAME)] of the `label:NAME` columns of a header row (names as written), or None
    (a problem noted) when they are mixed with a `label`/`class` column, unnamed or repeated."""
    multi = [
        (i, h.strip()[len(MULTI_HOT) :].strip())
        for i, h in enumerate(header)
        if h.strip().lower().startswith(MULTI_HOT)
    ]
    names = [name for _, name in multi]
    if multi and label_col:
        problems.append(
            f"{path}: has a '{label_col}' column and '{MULTI_HOT}NAME' columns; give one class "
            "per id or multi-hot findings, not both"
        )
    elif "" in names or len(set(names)) != len(names):
        problems.append(f"{path}: '{MULTI_HOT}NAME' columns need distinct names, got {names}")
    else:
        return multi
    return None


def _multi_hot(row: list[str], multi: list[tuple[int, str]], where: str) -> tuple:
    """((NAME, 1 | 0 | -1), ...) of a row's `label:NAME` cells; ValueError naming file:line and
    column for any other value."""
    values = []
    for i, name in multi:
        cell = row[i].strip()
        try:
            value = float(cell) if cell else 0.0  # blank: not mentioned = negative
        except ValueError:
            value = None
        if value not in (1, 0, -1):
            raise ValueError(
                f"{where}: column '{MULTI_HOT}{name}' holds {cell!r}; multi-hot labels are 1, "
                "0, -1 (uncertain) or blank (not mentioned: 0)"
            )
        values.append((name, int(value)))
    return tuple(values)


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


_SAME = ("label", "labels", "group")  # must agree between rows of one id


def _add_row(
    table: dict[str, dict],
    row: list[str],
    header: list[str],
    fields: dict[str, tuple[str, ...]],
    label_col: str | None,
    multi: list[tuple[int, str]],
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
    try:
        if multi:
            found["labels"] = _multi_hot(row, multi, where)
    except ValueError as e:
        problems.append(str(e))
        return
    if label_col is not None:
        found["label"] = row[col[label_col]].strip()
    if "group" in col:
        found["group"] = row[col["group"]].strip()
    for key, value in found.items():
        if key == "box" and np.isfinite(value).all():  # several boxes per id are kept
            entry.setdefault("boxes", []).append(value)
        if key in entry and (key == "box" or (key in _SAME and entry[key] == value)):
            continue  # a further box, or the same label/group repeated on a box row
        if key in entry:
            before = f" ({_shown(value)}; before: {_shown(entry[key])})" if key in _SAME else ""
            problems.append(f"{where}: second '{key}' for id '{ident}'{before}")
        elif key in _CSV_FIELDS and not np.isfinite(value).all():
            problems.append(f"{where}: '{key}' of id '{ident}' is not finite")
        else:
            entry[key] = value


def label_values(
    table: dict[str, dict], ids: Sequence[str]
) -> tuple[tuple[str, ...], dict[str, int | np.ndarray]]:
    """(class names, {id: label}) of the imported ids: a class id (`class_names`; 0 where the
    CSV gives none), or with `label:NAME` columns the NAMEs and an int32 [L] row of 1, 0, -1
    (all -1, unknown, for an id without a row: `check_coverage` refuses it unless skip_bad)."""
    rows = [table[i]["labels"] for i in ids if "labels" in table.get(i, {})]
    if not rows:
        names, label_ids = class_names(table, ids)
        return names, {i: label_ids.get(table.get(i, {}).get("label"), 0) for i in ids}
    names = tuple(name for name, _ in rows[0])
    unknown = tuple((name, -1) for name in names)
    return names, {
        i: np.array([v for _, v in table.get(i, {}).get("labels", unknown)], np.int32) for i in ids
    }


def _shown(value: object) -> str:
    """A CSV value as a problem line shows it: multi-hot ((NAME, v), ...) as {NAME: v}."""
    return str(dict(value)) if isinstance(value, tuple) else repr(value)


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
    for key in ("label", "labels", "group"):
        have = [i for i in ids if key in table.get(i, {})]
        if have and len(have) < len(ids):
            missing = [i for i in ids if key not in table.get(i, {})]
            problems.append(f"CSV: no '{key}' for id(s) {missing[:8]} (others have one)")
    return problems
