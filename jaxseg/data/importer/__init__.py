"""Import your own data into one dataset file that configs read by path (`data.path`).

Sources: a folder of 2-D images and a folder of masks matched by file stem, or NIfTI image
volumes and label volumes (`import_folders`, `import_nifti`); either without masks (`None`):
the images alone, labelled by the CSV. Optional CSV files add centres, boxes, class labels
(one class, or multi-hot findings `label:NAME`) and patient groups. The output is the .npz
layout of shared/data/busi (`*.npz`, read by `data.source='npz'`) or a TF-free tfds dataset
folder (any other path, read by `jaxseg.data.tfds_store.load`) for sets too big for memory.

Masks: `mask_classes=None` makes a mask binary (any nonzero value is foreground); a tuple such as
(0, 1, 2) declares class values, the first being background, and gives one channel per other
value (K = len - 1). Several mask files of one image (`case_mask.png`, `case_mask_2.png`, i.e.
stem + suffix + optional `_tag`) are OR-merged (`multi_mask='merge'`) or become channels named by
their tags (`'channels'`).

Resize policies (`resize`): 'pad' zero-pads to a centred square, then resizes it to `size`
(0 = keep the square's side); 'crop' centre-crops to a square, then resizes; 'pad16' keeps the
pixel grid and zero-pads every example (centred) to the common shape rounded up to `multiple`.
Images resize with Lanczos, masks by area (box) averaging thresholded at 0.5 (edge-aligned
grids: output pixel u covers input [u/s, (u+1)/s)). Integer images keep their dtype and range
(rounded and clipped after resizing), so all images must share one pixel type; normalisation
happens when the dataset is loaded. Images and masks may share one folder (BUSI's layout).

Coordinates (CSV and stored) use the pixel-centre convention of `jaxseg.data.derive`: pixel (row
r, col c) is (x, y) = (c, r); volumes add z = the slice index d. Boxes are inclusive.

Every example's grid before placement and its Placement are stored with it
(`original_shapes`, `placement_offsets`, `placement_scales`; `unplace` maps a prediction back);
NIfTI imports add the file's `affines`, `orientations` and `file_shapes` (see `npz`).

Modules: `files` (reading, listing, pairing), `annotations` (CSV), `placement` (resize
geometry and its inverse), `folders` and `volumes` (the two sources), `pipeline` (the steps
they share), `output` (the checked, atomic write), `report`.

Bad input is collected per file; unless `skip_bad`, any problem raises `InputError` listing them
all and nothing is written. Doubtful input (a binary mask with more than two values) is imported
and noted in `Report.warnings`. Output goes to a temporary sibling path renamed at the end; an
existing output is refused unless `overwrite`, which replaces only an output an import wrote
(marked by `layout.MARKER`).
"""

from jaxseg.data.importer.files import mask_channels, pair_files
from jaxseg.data.importer.folders import import_folders
from jaxseg.data.importer.placement import (
    RESIZE_POLICIES,
    Placement,
    place_geometry,
    placement,
    unplace,
)
from jaxseg.data.importer.report import InputError, Report
from jaxseg.data.importer.volumes import import_nifti

__all__ = [
    "RESIZE_POLICIES",
    "InputError",
    "Placement",
    "Report",
    "import_folders",
    "import_nifti",
    "mask_channels",
    "pair_files",
    "place_geometry",
    "placement",
    "unplace",
]
