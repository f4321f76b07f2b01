"""Datasets as plain dicts of numpy arrays (N examples on axis 0, channels last).

Keys of `Dataset.arrays` (the contract every source produces), for images (S = H,W; R = 2) or
volumes (S = D,H,W; R = 3):
  image       float32 [N,*S,C]  zero mean / unit std per image (constant images only centred);
                                a CT source may deliver Hounsfield units for a `ct_window` step.
  mask        float32 [N,*S,K]  in {0,1} (K=1), S as the image's.
  center      float32 [N,R]     (x, y) = (col, row), in 3D (x, y, z) = (col, row, slice):
                                centroid of the mask foreground (x along W, y along H, z along D).
  box         float32 [N,2R]    (x0, y0, x1, y1), in 3D (x0, y0, z0, x1, y1, z1): inclusive
                                foreground voxel extents.
  has_object  bool    [N]       False for an empty mask; center and box are then zeros and
                                must be ignored (mask them out of losses and metrics).
  label       int32   [N]       class id into `Dataset.class_names`.
  group       int32   [N]       patient/case id for group-aware splits (arange(N) if unknown).
Optional:
  spacing     float32 [N,R]     physical voxel size (mm) per spatial axis in array order
                                (D,H,W / H,W); positive and finite.
  has_mask, has_center, has_box, has_label  bool [N]: which labels an example carries
                                (absent: all; centre/box: has_object), see jaxseg.data.labels.
  center_derived, box_derived   bool [N]: computed from the mask (the source gave none).
  boxes       float32 [N,M,2R]  every box of an example, rows of NaN where it has fewer than M
                                (`box` is then the box enclosing them).
  labels      float32 [N,L]     multi-hot image labels: 1, 0 or -1 (uncertain).
A set larger than memory holds `image` and `mask` as `stream.Rows` (lazy, read per batch).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxseg.data.stream import Rows

REQUIRED_KEYS = ("image", "mask", "center", "box", "has_object", "label", "group")
_DTYPES: dict[str, type] = {
    "image": np.float32,
    "mask": np.float32,
    "center": np.float32,
    "box": np.float32,
    "has_object": np.bool_,
    "label": np.int32,
    "group": np.int32,
    "spacing": np.float32,
    "boxes": np.float32,
    "labels": np.float32,
}
_FLAGS = ("has_mask", "has_center", "has_box", "has_label", "center_derived", "box_derived")
_DTYPES.update({k: np.bool_ for k in _FLAGS})
_PER_EXAMPLE = ("has_object", "label", "group", *_FLAGS)  # shape [N]
_WIDTHS = {"center": 1, "box": 2, "spacing": 1}  # shape [N, width·R]


def check_arrays(arrays: dict[str, np.ndarray], num_classes: int, name: str = "dataset") -> None:
    """Raise ValueError unless `arrays` has the contract keys, dtypes and shapes (values are
    checked only for labels and spacing)."""
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{name}: missing keys {missing}; a dataset needs {list(REQUIRED_KEYS)}")
    n = len(arrays["image"])
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray | Rows) or value.ndim == 0 or len(value) != n:
            shape = getattr(value, "shape", type(value).__name__)
            raise ValueError(f"{name}: '{key}' has shape {shape}, expected N={n} leading rows")
    for key, dtype in _DTYPES.items():
        if key in arrays and arrays[key].dtype != dtype:
            raise ValueError(
                f"{name}: '{key}' has dtype {arrays[key].dtype}, expected {np.dtype(dtype)}"
            )
    image, mask = arrays["image"], arrays["mask"]
    rank = image.ndim - 2
    if rank not in (2, 3) or mask.ndim != image.ndim or image.shape[1:-1] != mask.shape[1:-1]:
        raise ValueError(
            f"{name}: image {image.shape} and mask {mask.shape} must be [N,H,W,C] and [N,H,W,K] "
            "or [N,D,H,W,C] and [N,D,H,W,K]"
        )
    expected = {k: (n,) for k in _PER_EXAMPLE} | {k: (n, w * rank) for k, w in _WIDTHS.items()}
    for key, shape in expected.items():
        if key in arrays and arrays[key].shape != shape:
            kind = "volumes [N,D,H,W,C]" if rank == 3 else "images [N,H,W,C]"
            raise ValueError(
                f"{name}: '{key}' has shape {arrays[key].shape}, expected {shape} for {kind}"
            )
    boxes = arrays.get("boxes")
    if boxes is not None and (boxes.ndim != 3 or boxes.shape[2] != 2 * rank):
        raise ValueError(f"{name}: 'boxes' has shape {boxes.shape}, expected [N,M,{2 * rank}]")
    multi = arrays.get("labels")
    if multi is not None and (multi.ndim != 2 or not np.isin(multi, (-1, 0, 1)).all()):
        raise ValueError(f"{name}: 'labels' [N,L] must hold 1, 0 or -1 (uncertain)")
    label = arrays["label"]
    if n and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(
            f"{name}: labels span [{label.min()}, {label.max()}] but there are {num_classes} "
            "class names"
        )
    spacing = arrays.get("spacing")
    if spacing is not None and not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"{name}: 'spacing' must be positive and finite (mm per voxel)")


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
