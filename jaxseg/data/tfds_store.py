"""Imported datasets as TF-free tfds datasets: `Tensor` features in `array_record` files.

For sets too big for memory: `write` streams examples to disk, `open_source` gives random access
(len, [i]) for grain or any loader (`tfds.builder_from_directory(path).as_data_source()`), and
`load` (same signature as `npz.load`; `data.source='tfds'`) reads them back into a `Dataset`:
whole when they fit in `IN_MEMORY_BYTES`, else streamed (`stream.Rows`, read per batch).
The output folder holds one split 'train' (all examples, import order) with the features
image [*S,C], mask uint8 [*S,K], id, n_mask_files, label (int, or [L] multi-hot), group and
the optional keys of `layout.fields` that were imported (center [R], box [2R], spacing [R],
original_shape [R], placement_offset [R], placement_scale, and for NIfTI file_shape [3],
affine [4,4] and orientation; the .npz key is the plural, `npz` docstring); its metadata.json holds
class_names, mask_names and rank, and `layout.MARKER`.json marks it as jaxseg's (an import's
--overwrite replaces nothing else).
TensorFlow is never imported (tensorflow_datasets runs without it).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxseg import atomic
from jaxseg.data import derive, labels, npz, stream
from jaxseg.data.dataset import Dataset
from jaxseg.data.layout import MARKER, Field, Layout, fields, marker_text

VERSION = "1.0.0"
SPLIT = "train"
# A dataset whose images and masks take more bytes is streamed (`streamed`), else read whole.
IN_MEMORY_BYTES = int(os.environ.get("JAXSEG_IN_MEMORY_MB", "2048")) << 20


def _features(layout: Layout) -> Any:
    import tensorflow_datasets as tfds  # late: heavy, and only tfds outputs need it

    f = tfds.features
    spec = {
        "image": f.Tensor(shape=layout.image_shape, dtype=np.dtype(layout.image_dtype)),
        "mask": f.Tensor(shape=layout.mask_shape, dtype=np.uint8),
        "id": f.Text(),
        "group": f.Text(),
        "n_mask_files": f.Scalar(dtype=np.int32),
        "label": (
            f.Tensor(shape=(layout.label_width,), dtype=np.int32)
            if layout.label_width
            else f.Scalar(dtype=np.int32)
        ),
    }
    spec.update(
        {
            k: f.Text() if v.dtype is np.str_ else f.Tensor(shape=v.shape, dtype=np.dtype(v.dtype))
            for k, v in layout.stored.items()
        }
    )
    return f.FeaturesDict(spec)


def _builder_class() -> type:
    """A GeneratorBasedBuilder named 'jaxseg_import' writing the given examples as 'train'."""
    import tensorflow_datasets as tfds  # late: heavy, and only tfds outputs need it

    class JaxsegImport(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(VERSION)

        def __init__(self, *, features, examples, metadata, **kwargs):
            self._spec, self._examples, self._metadata = features, examples, metadata
            super().__init__(**kwargs)

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description="Imported with `jaxseg data import` (jaxseg.data.importer).",
                features=self._spec,
                metadata=tfds.core.MetadataDict(self._metadata),
                disable_shuffling=True,
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            return {SPLIT: self._generate_examples()}

        def _generate_examples(self):
            yield from enumerate(self._examples)

    return JaxsegImport


def write(output: str, examples: Iterator[dict], layout: Layout) -> int:
    """Stream `examples` (importer rows) into a tfds dataset folder `output`.

    Built under a temporary sibling folder, removed on failure; only a finished dataset is
    moved to `output` (an old one replaced, `atomic.replace`). Returns the number of examples.
    """
    import tensorflow_datasets as tfds  # late: heavy, and only tfds outputs need it

    parent = os.path.dirname(os.path.abspath(output))
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.tmp-", dir=parent)
    metadata = {
        "class_names": list(layout.class_names),
        "mask_names": list(layout.mask_names),
        "rank": layout.rank,
    }
    try:
        builder = _builder_class()(
            features=_features(layout),
            examples=(_values(row, layout.stored) for row in examples),
            metadata=metadata,
            data_dir=tmp,
            file_format="array_record",
        )
        tfds.display_progress_bar(False)  # the importer prints its own report
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                builder.download_and_prepare()
        finally:
            tfds.display_progress_bar(True)
        count = builder.info.splits[SPLIT].num_examples
        marker = os.path.join(os.fspath(builder.data_dir), f"{MARKER}.json")
        atomic.write_text(marker, marker_text())
        atomic.replace(os.fspath(builder.data_dir), output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return count


def _values(row: dict, stored: dict[str, Field]) -> dict:
    """An importer row with its optional keys in their Field dtypes."""
    return row | {
        k: row[k] if f.dtype is np.str_ else np.asarray(row[k], f.dtype) for k, f in stored.items()
    }


def open_source(path: str | os.PathLike) -> tuple[Any, dict]:
    """(random-access source of the examples as dicts of numpy arrays and bytes, metadata)."""
    import tensorflow_datasets as tfds  # late: heavy, and only tfds outputs need it

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, "dataset_info.json")):
        raise ValueError(
            f"{path}: not a tfds dataset folder (no dataset_info.json); import one with "
            "`jaxseg data import ... OUTPUT_FOLDER`"
        )
    builder = tfds.builder_from_directory(path)
    return builder.as_data_source(split=SPLIT), dict(builder.info.metadata)


def read_raw(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All examples of a tfds dataset folder as arrays in the .npz layout (`npz` docstring)."""
    source, metadata = open_source(path)
    rows = [source[i] for i in range(len(source))]
    if not rows:
        raise ValueError(f"{os.fspath(path)}: the dataset holds no examples")
    raw = {
        "images": np.stack([r["image"] for r in rows]),
        "masks": np.stack([r["mask"] for r in rows]),
        "ids": np.array([r["id"].decode() for r in rows]),
        "groups": np.array([r["group"].decode() for r in rows]),
        "labels": np.array([r["label"] for r in rows], np.int32),
        "n_mask_files": np.array([r["n_mask_files"] for r in rows], np.int32),
        "label_names": np.array(metadata["class_names"]),
        "mask_names": np.array(metadata["mask_names"]),
    }
    for key, field in fields(metadata["rank"]).items():
        if key in rows[0]:
            values = [r[key].decode() if field.dtype is np.str_ else r[key] for r in rows]
            raw[field.npz_key] = np.array(values, field.dtype)
    return raw


def load(path: str, image_size: int = 0, normalize: bool = True) -> Dataset:
    """Read a tfds dataset folder written by `write` into a Dataset (as `npz.load` does for
    .npz files: same validation, derived centres/boxes, downsampling by `image_size`,
    `normalize`). A set whose images and masks take more than `IN_MEMORY_BYTES` is streamed
    (`streamed`): its `image` and `mask` are `stream.Rows`, read per batch."""
    path = os.fspath(path)
    source, metadata = open_source(path)
    if len(source) and len(source) * _example_bytes(source[0]) > IN_MEMORY_BYTES:
        return streamed(path, source, metadata, image_size, normalize)
    arrays, class_names = npz.from_raw(read_raw(path), path, image_size, normalize)
    return Dataset(arrays, class_names, path)


def _example_bytes(row: dict) -> int:
    return row["image"].nbytes + row["mask"].nbytes


def _reader(source: Any, key: str) -> stream.Reader:
    """Source rows -> the stacked feature ``key`` as float32 (one record read per example)."""
    shape = source[0][key].shape

    def read(index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), *shape), np.float32)
        for j, i in enumerate(index):
            out[j] = source[int(i)][key]
        return out

    return read


def streamed(
    path: str, source: Any, metadata: dict, image_size: int = 0, normalize: bool = True
) -> Dataset:
    """A Dataset over a tfds folder that holds only the per-example labels in memory: one pass
    in `stream.CHUNK`-example reads checks pixels and masks (as `npz.from_raw`) and derives
    centres, boxes and has_object; `image` (standardised when `normalize`) and `mask` are read
    per batch. Streams at the stored size only (`image_size` 0)."""
    if image_size:
        raise ValueError(
            f"{path}: holds more than {IN_MEMORY_BYTES >> 20} MiB of images, so it streams at "
            f"its stored size; use image_size=0 (import at the size wanted: --size)"
        )
    rank, n = int(metadata["rank"]), len(source)
    optional = {k: f for k, f in fields(rank).items() if k in ("center", "box", "spacing")}
    small: dict[str, list] = {k: [] for k in ("label", "group", "center_m", "box_m", "has")}
    small |= {k: [] for k in optional if k in source[0]}
    for rows in stream.chunks(n):
        records = [source[int(i)] for i in rows]
        images = np.stack([r["image"] for r in records])
        masks = np.stack([r["mask"] for r in records])
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            raise ValueError(f"{path}: 'images' contains NaN or inf; clean or drop those examples")
        if not ((masks == 0) | (masks == 1)).all():
            raise ValueError(
                f"{path}: 'masks' must hold only 0 and 1, found {np.unique(masks)[:8]}"
            )
        center, has = derive.centers_from_masks(masks, rank)
        small["center_m"].append(center)
        small["box_m"].append(derive.boxes_from_masks(masks, rank))
        small["has"].append(has)
        small["label"] += [r["label"] for r in records]
        small["group"] += [r["group"].decode() for r in records]
        for key in optional.keys() & small.keys():
            small[key] += [r[key] for r in records]
    raw = {"labels": np.array(small["label"], np.int32)}
    raw["label_names"] = np.array(metadata["class_names"])
    label_arrays, class_names = npz._labels(path, raw, n)  # the .npz checks of labels
    has_object = np.concatenate(small["has"])
    arrays = {
        "image": stream.Rows(_reader(source, "image"), n, source[0]["image"].shape, np.float32),
        "mask": stream.Rows(_reader(source, "mask"), n, source[0]["mask"].shape, np.float32),
        "center": np.concatenate(small["center_m"]),
        "box": np.concatenate(small["box_m"]),
        "has_object": has_object,
        **label_arrays,
        "group": np.unique(small["group"], return_inverse=True)[1].astype(np.int32),
    }
    if normalize:
        arrays["image"] = arrays["image"].map(derive.normalize_images)
    stored = {k: np.asarray(small[k], np.float32) for k in ("center", "box") if k in small}
    every = np.ones(n, bool)  # a tfds folder holds a mask for every example
    arrays = labels.merge(
        arrays,
        every,
        stored.get("center"),
        every if "center" in stored else None,
        stored["box"][:, None] if "box" in stored else None,
    )
    if "spacing" in small:
        arrays["spacing"] = np.asarray(small["spacing"], np.float32)
    return Dataset(arrays, class_names, path)
