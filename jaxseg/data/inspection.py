"""Inspect an imported dataset (.npz or tfds folder) before training on it.

`inspect` first applies the checks training applies when it loads the dataset (a failure is an
error: NaN pixels, masks other than 0/1, bad labels, images and masks of different shapes), then
reports counts, image shape and dtype, the stored intensity range, class balance,
foreground fraction per mask channel, examples with empty masks, groups, exact duplicates (same
SHA-256 of the stored pixels) and near-duplicates (difference hash: the image shrunk by box
averaging to 9×8, one bit per horizontally adjacent pair that gets brighter; pairs within
`max_distance` of 64 bits), and writes a contact sheet PNG with the masks overlaid. Volumes are
hashed and shown by their middle axial slice.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from PIL import Image

from jaxseg import plotting
from jaxseg.data import labels as labels_lib
from jaxseg.data import npz, tfds_store
from jaxseg.data.dataset import Dataset

SHEET_TILES = 16


def read(path: str) -> dict[str, np.ndarray]:
    """The stored arrays of an .npz file or tfds dataset folder (.npz layout, channels last:
    images [N,*S,C], masks [N,*S,K]) plus 'rank', after the checks training applies when it
    loads them (a ValueError for the first that fails). A file without masks gets zero masks;
    'has_mask' [N] says which rows are masks and 'coverage' (a 0-d object array) holds
    `labels.coverage` of the loaded dataset: how many examples carry, or derived, each label."""
    if os.path.isdir(path):
        raw = tfds_store.read_raw(path)
    else:
        raw = npz._read(path)
        with np.load(path, allow_pickle=False) as archive:
            raw.update({k: archive[k] for k in ("ids",) if k in archive.files})
    arrays, class_names = npz.from_raw(raw, path)
    Dataset(arrays, class_names, path)  # as `npz.load` and `tfds_store.load` do
    rank = npz._rank(path, raw)
    raw["images"] = npz._with_channels(path, "images", raw["images"], rank)
    raw["masks"] = npz._masks(path, raw["masks"], rank) if "masks" in raw else arrays["mask"]
    raw["has_mask"] = arrays["has_mask"]
    raw["coverage"] = np.asarray(labels_lib.coverage(arrays), dtype=object)
    raw["rank"] = np.asarray(rank)
    return raw


def _planes(x: np.ndarray, rank: int) -> np.ndarray:
    """[N,*S,C] -> [N,H,W,C]: the middle axial slice of volumes."""
    return x[:, x.shape[1] // 2] if rank == 3 else x


def difference_hash(image: np.ndarray) -> np.ndarray:
    """64-bit difference hash of an image [H,W,C] (channels averaged) as 64 booleans."""
    gray = image.astype(np.float32).mean(axis=-1)
    small = np.asarray(Image.fromarray(gray, mode="F").resize((9, 8), Image.Resampling.BOX))
    return (small[:, 1:] > small[:, :-1]).ravel()


def near_duplicates(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """(i, j, Hamming distance) for i < j with distance <= max_distance; hashes [N,64] bool."""
    bits = hashes.astype(np.int32)
    pairs = []
    for i in range(len(bits) - 1):
        dist = (bits[i + 1 :] != bits[i]).sum(axis=1)
        pairs.extend(
            (i, i + 1 + int(j), int(dist[j])) for j in np.flatnonzero(dist <= max_distance)
        )
    return pairs


def exact_duplicates(images: np.ndarray) -> list[list[int]]:
    """Groups (>= 2 indices) of examples with byte-identical pixels."""
    seen: dict[str, list[int]] = {}
    for i, image in enumerate(images):
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        seen.setdefault(digest, []).append(i)
    return [g for g in seen.values() if len(g) > 1]


def inspect(path: str, sheet: str | None = None, max_distance: int = 4) -> dict:
    """Check a dataset as training does (`read`), print its summary and write the contact sheet
    (default `<path>.sheet.png`; '' for none; an unwritable one is a ValueError after the
    summary). Returns the summary as a dict of plain values."""
    raw = read(path)
    images, masks, rank = raw["images"], raw["masks"], int(raw["rank"])
    n = len(images)
    ids = [str(i) for i in raw.get("ids", np.arange(n))]
    names = [str(s) for s in raw.get("label_names", ["unlabelled"])]
    labels = raw.get("labels", np.zeros(n, np.int64)).astype(np.int64)
    masked = raw["has_mask"]
    pixels = int(np.prod(masks.shape[1:-1]))
    fg = masks[masked].reshape(int(masked.sum()), pixels, masks.shape[-1]) > 0
    empty = [ids[i] for i in np.flatnonzero(masked)[~fg.any(axis=(1, 2))]]
    groups = raw.get("groups", np.arange(n))
    _, group_sizes = np.unique(groups, return_counts=True)
    planes = _planes(images, rank)
    hashes = np.stack([difference_hash(p) for p in planes])
    exact = exact_duplicates(images)
    same = {(a, b) for g in exact for a in g for b in g if a < b}
    near = [(a, b, d) for a, b, d in near_duplicates(hashes, max_distance) if (a, b) not in same]
    summary = {
        "path": path,
        "count": n,
        "shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "intensity": [float(images.min()), float(images.max())],
        "classes": class_counts(labels, names),
        "labels": raw["coverage"].item(),
        "foreground_fraction": [float(v) for v in fg.mean(axis=(0, 1))] if len(fg) else [],
        "empty_masks": empty,
        "groups": {"count": len(group_sizes), "largest": int(group_sizes.max())},
        "exact_duplicates": [[ids[i] for i in g] for g in exact],
        "near_duplicates": [[ids[a], ids[b], d] for a, b, d in near],
    }
    if "spacing" in raw:
        summary["spacing"] = np.unique(raw["spacing"], axis=0).tolist()
    print(format_summary(summary), flush=True)
    sheet = f"{path.rstrip(os.sep)}.sheet.png" if sheet is None else sheet
    if sheet:
        try:
            summary["sheet"] = contact_sheet(planes, _planes(masks, rank), ids, sheet)
        except OSError as e:
            raise ValueError(
                f"{sheet}: cannot write the contact sheet ({e.strerror or e}); pass --sheet "
                "with a writable path, or --sheet '' for none"
            ) from None
        print(f"contact sheet: {summary['sheet']}", flush=True)
    return summary


def class_counts(labels: np.ndarray, names: list[str]) -> dict[str, int | dict[str, int]]:
    """Examples per class name: a count for labels [N] (-1 unknown left out), or for multi-hot
    labels [N,L] {'positive': n, 'uncertain': n} per column."""
    if labels.ndim == 2:
        return {
            name: {"positive": int((col == 1).sum()), "uncertain": int((col == -1).sum())}
            for name, col in zip(names, labels.T, strict=True)
        }
    return {names[c]: int((labels == c).sum()) for c in range(len(names))}


def format_coverage(coverage: dict) -> str:
    """'mask 8, center 40 (8 derived), ...': examples carrying each label kind."""
    return ", ".join(
        f"{k} {v['available']}" + (f" ({v['derived']} derived from masks)" if v["derived"] else "")
        for k, v in coverage.items()
    )


def format_summary(s: dict) -> str:
    """The printed form of an `inspect` summary."""

    def listed(items: list) -> str:
        return ", ".join(map(str, items[:10])) + (
            f" ... (+{len(items) - 10})" if len(items) > 10 else ""
        )

    lines = [
        f"{s['path']}: {s['count']} examples of shape {tuple(s['shape'])} ({s['dtype']})",
        f"intensity range: {s['intensity'][0]:g} .. {s['intensity'][1]:g}",
        "classes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()),
        "labels per kind (examples carrying it): " + format_coverage(s["labels"]),
        "foreground fraction per mask channel: "
        + ", ".join(f"{v:.4f}" for v in s["foreground_fraction"]),
        f"empty masks: {len(s['empty_masks'])} ({listed(s['empty_masks'])})",
        f"groups: {s['groups']['count']} (largest {s['groups']['largest']})",
        f"exact duplicates: {len(s['exact_duplicates'])} sets ({listed(s['exact_duplicates'])})",
        f"near duplicates: {len(s['near_duplicates'])} pairs ({listed(s['near_duplicates'])})",
    ]
    if "spacing" in s:
        lines.append(f"spacing (mm): {s['spacing']}")
    return "\n".join(lines)


def contact_sheet(images: np.ndarray, masks: np.ndarray, ids: list[str], out_path: str) -> str:
    """A PNG grid of the first SHEET_TILES images [N,H,W,C] with their masks [N,H,W,K]
    overlaid (one colour per channel, half transparent), titled by id."""
    count = min(len(images), SHEET_TILES)
    cols = min(count, 4)
    rows = -(-count // cols)
    fig = plotting.new_figure(cols * plotting.TILE_IN, rows * plotting.TILE_IN)
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0.4, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        plotting.blank(ax)
        if i >= count:
            continue
        x = images[i].astype(np.float32)
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
        ax.imshow(x[..., 0] if x.shape[-1] == 1 else x[..., :3], cmap="gray")
        overlay = np.zeros((*x.shape[:2], 4))
        for k in range(masks.shape[-1]):
            on = masks[i, ..., k] > 0
            overlay[on, :3] = colours[k % len(colours)]
            overlay[on, 3] = 0.45
        ax.imshow(overlay)
        ax.set_title(ids[i], fontsize=7)
    return plotting.save_png(fig, out_path)
