"""What an imported dataset stores besides its examples: shared by the importer's .npz writer and
`tfds_store`, which must not import each other."""

from __future__ import annotations

import dataclasses
import json

# Marks an output as written by `jaxseg data import`, so that --overwrite replaces only such an
# output: the .npz key MARKER, or the file MARKER + '.json' inside a tfds dataset folder.
MARKER = "jaxseg_import"


def marker_text() -> str:
    """The marker's content: what wrote the output, and the layout version."""
    return json.dumps({"written_by": "jaxseg data import", "layout_version": 1})


@dataclasses.dataclass(frozen=True)
class Layout:
    """Names, optional keys and array specs of an imported dataset, fixed before writing."""

    class_names: tuple[str, ...]
    mask_names: tuple[str, ...]  # K mask channels
    keys: frozenset[str]  # optional per-example keys stored: 'center', 'box', 'spacing'
    image_shape: tuple[int, ...]  # per example: [*S,C]
    image_dtype: type

    @property
    def rank(self) -> int:
        """R, the number of spatial axes."""
        return len(self.image_shape) - 1

    @property
    def mask_shape(self) -> tuple[int, ...]:
        """[*S,K], uint8."""
        return (*self.image_shape[:-1], len(self.mask_names))
