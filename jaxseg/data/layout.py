"""What an imported dataset stores besides its examples: shared by the importer's .npz writer and
`tfds_store`, which must not import each other."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

# Marks an output as written by `jaxseg data import`, so that --overwrite replaces only such an
# output: the .npz key MARKER, or the file MARKER + '.json' inside a tfds dataset folder.
MARKER = "jaxseg_import"


def marker_text() -> str:
    """The marker's content: what wrote the output, and the layout version."""
    return json.dumps({"written_by": "jaxseg data import", "layout_version": 1})


@dataclasses.dataclass(frozen=True)
class Field:
    """An optional per-example value: its .npz key ([N,*shape]) and dtype (np.str_: text)."""

    npz_key: str
    dtype: type
    shape: tuple[int, ...]


def fields(rank: int, max_boxes: int = 1) -> dict[str, Field]:
    """{row key = tfds feature name: Field} of the optional per-example keys (rank R); boxes
    are [2R], or [max_boxes, 2R] padded with NaN rows when an example has several."""
    return {
        "center": Field("centers", np.float32, (rank,)),
        "box": Field("boxes", np.float32, (2 * rank,) if max_boxes == 1 else (max_boxes, 2 * rank)),
        "spacing": Field("spacing", np.float32, (rank,)),
        "original_shape": Field("original_shapes", np.int32, (rank,)),
        "placement_offset": Field("placement_offsets", np.int32, (rank,)),
        "placement_scale": Field("placement_scales", np.float64, ()),
        "file_shape": Field("file_shapes", np.int32, (3,)),
        "affine": Field("affines", np.float64, (4, 4)),
        "orientation": Field("orientations", np.str_, ()),
    }


@dataclasses.dataclass(frozen=True)
class Layout:
    """Names, optional keys and array specs of an imported dataset, fixed before writing."""

    class_names: tuple[str, ...]
    mask_names: tuple[str, ...]  # K mask channels
    keys: frozenset[str]  # optional per-example keys stored (of `fields`)
    image_shape: tuple[int, ...]  # per example: [*S,C]
    image_dtype: type
    max_boxes: int = 1  # boxes per example: several are stored [M,2R], NaN-padded
    masks: bool = True  # False: an import without masks (no 'masks' key is written)
    label_width: int = 0  # L of multi-hot labels [L] (1, 0, -1 per class); 0: one class id

    @property
    def rank(self) -> int:
        """R, the number of spatial axes."""
        return len(self.image_shape) - 1

    @property
    def stored(self) -> dict[str, Field]:
        """The Fields of the optional keys stored, in the order of `fields`."""
        return {k: f for k, f in fields(self.rank, self.max_boxes).items() if k in self.keys}

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """[*S,K], uint8."""
        return (*self.image_shape[:-1], len(self.mask_names))
