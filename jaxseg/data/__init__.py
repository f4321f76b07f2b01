"""Datasets as plain dicts of numpy arrays (N examples on axis 0, channels last).

Keys of `Dataset.arrays` (the contract every source produces):
  image       float32 [N,H,W,C]  zero mean / unit std per image (constant images only centred).
  mask        float32 [N,H,W,K]  in {0,1} (K=1).
  center      float32 [N,2]      (x, y) = (col, row) centroid of the mask foreground.
  box         float32 [N,4]      (x0, y0, x1, y1) inclusive foreground pixel extents.
  has_object  bool    [N]        False for an empty mask; center and box are then zeros and
                                 must be ignored (mask them out of losses and metrics).
  label       int32   [N]        class id into `Dataset.class_names`.
  group       int32   [N]        patient/case id for group-aware splits (arange(N) if unknown).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxseg.data import fundus, npz, preprocess

REQUIRED_KEYS = ("image", "mask", "center", "box", "has_object", "label", "group")
# key -> (dtype, shape after N; None = checked separately below)
_SPECS: dict[str, tuple[type, tuple | None]] = {
    "image": (np.float32, None),
    "mask": (np.float32, None),
    "center": (np.float32, (2,)),
    "box": (np.float32, (4,)),
    "has_object": (np.bool_, ()),
    "label": (np.int32, ()),
    "group": (np.int32, ()),
}


def check_arrays(arrays: dict[str, np.ndarray], num_classes: int, name: str = "dataset") -> None:
    """Raise ValueError unless `arrays` has the contract keys, dtypes and shapes (not values)."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{name}: missing keys {missing}; a dataset needs {list(REQUIRED_KEYS)}")
    n = len(arrays["image"])
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray) or value.ndim == 0 or len(value) != n:
            shape = getattr(value, "shape", type(value).__name__)
            raise ValueError(f"{name}: '{key}' has shape {shape}, expected N={n} leading rows")
    for key, (dtype, trailing) in _SPECS.items():
        value = arrays[key]
        if value.dtype != dtype:
            raise ValueError(f"{name}: '{key}' has dtype {value.dtype}, expected {np.dtype(dtype)}")
        if trailing is not None and value.shape[1:] != trailing:
            raise ValueError(f"{name}: '{key}' has shape {value.shape}, expected {(n, *trailing)}")
    image, mask = arrays["image"], arrays["mask"]
    if image.ndim != 4 or mask.ndim != 4 or image.shape[1:3] != mask.shape[1:3]:
        raise ValueError(
            f"{name}: image {image.shape} and mask {mask.shape} must be [N,H,W,C] and [N,H,W,K]"
        )
    label = arrays["label"]
    if n and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(
            f"{name}: labels span [{label.min()}, {label.max()}] but there are {num_classes} "
            "class names"
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset: contract arrays plus metadata. Validated on construction."""

    arrays: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        check_arrays(self.arrays, len(self.class_names), self.name)

    def __len__(self) -> int:
        return len(self.arrays["image"])

    def subset(self, index: np.ndarray) -> Dataset:
        """The examples selected by a 1-D integer index (or length-N boolean mask) array."""
        index = np.asarray(index)
        if index.ndim != 1:
            raise ValueError(f"{self.name}: subset index must be 1-D, got shape {index.shape}")
        if index.dtype == np.bool_ and len(index) != len(self):
            raise ValueError(
                f"{self.name}: boolean subset index has length {len(index)}, expected {len(self)}"
            )
        if index.dtype != np.bool_ and not np.issubdtype(index.dtype, np.integer):
            if index.size:
                raise ValueError(
                    f"{self.name}: subset index must be integer or boolean, got {index.dtype}"
                )
            index = index.astype(np.int64)
        arrays = {k: v[index] for k, v in self.arrays.items()}
        return Dataset(arrays, self.class_names, self.name)


SOURCES: dict[str, Callable[..., Dataset]] = {"fundus": fundus.generate, "npz": npz.load}
# Config fields passed (as keyword arguments of the same name) to each source.
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "fundus": ("num_images", "image_size", "seed"),
    "npz": ("path", "image_size"),
}


def load(config: Any) -> Dataset:
    """Build the dataset named by `config.source` from the config fields in SOURCE_FIELDS.

    `config` is an ml_collections.ConfigDict or any object with attribute access.
    """
    source = getattr(config, "source", None)
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; known sources: {sorted(SOURCES)}")
    kwargs = {}
    for field in SOURCE_FIELDS[source]:
        try:
            kwargs[field] = getattr(config, field)
        except (AttributeError, KeyError):
            raise ValueError(
                f"data config for source {source!r} lacks field '{field}'; "
                f"it needs {list(SOURCE_FIELDS[source])}"
            ) from None
    dataset = SOURCES[source](**kwargs)
    return prepare(dataset, getattr(config, "preprocess", ""), getattr(config, "pad_multiple", 0))


def prepare(dataset: Dataset, steps: str = "", pad_multiple: int = 0) -> Dataset:
    """Apply an image preprocessing pipeline (``preprocess.apply``, e.g. 'clahe,gamma:0.8,
    normalize') and pad H, W to a multiple (masks with 0; centres and boxes shift with it)."""
    if not steps and not pad_multiple:
        return dataset
    arrays = dict(dataset.arrays)
    if steps:
        arrays["image"] = preprocess.apply(arrays["image"], steps)
    if pad_multiple:
        arrays["image"], (top, _, left, _) = preprocess.pad_to_multiple(
            arrays["image"], pad_multiple
        )
        arrays["mask"], _ = preprocess.pad_to_multiple(arrays["mask"], pad_multiple)
        has = arrays["has_object"][:, None]
        arrays["center"] = np.where(has, arrays["center"] + [left, top], 0).astype(np.float32)
        shift = [left, top, left, top]
        arrays["box"] = np.where(has, arrays["box"] + shift, 0).astype(np.float32)
    return Dataset(arrays, dataset.class_names, dataset.name)


__all__ = [
    "REQUIRED_KEYS",
    "SOURCES",
    "SOURCE_FIELDS",
    "Dataset",
    "check_arrays",
    "load",
    "prepare",
]
