"""``python -m jaxseg.data import|inspect ...``: bring your own data.

    python -m jaxseg.data import IMAGES MASKS OUT.npz [--csv labels.csv] [--size 256]
    python -m jaxseg.data import IMAGES OUT.npz --csv centres.csv   # no masks: CSV labels only
    python -m jaxseg.data import CT_DIR LABEL_DIR OUT_DIR --spacing 3.22,1.62,1.62
    python -m jaxseg.data import CT_DIR OUT.npz --csv centres.csv   # volumes alone
    python -m jaxseg.data inspect OUT.npz

IMAGES holding .nii/.nii.gz files are imported as volumes (`importer.import_nifti`),
otherwise as 2-D images (`importer.import_folders`). OUT ending in .npz is written in the .npz
layout, anything else as a tfds dataset folder. Errors are one ``error:`` line, exit status 1;
doubtful input that was still imported is one ``warning:`` line per kind, exit status 0.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxseg.data import importer, inspection, nifti


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxseg data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="image/mask folders or NIfTI volumes -> .npz or tfds")
    imp.add_argument(
        "images", help="folder of images (png/jpg/tif/bmp) or NIfTI volumes; may be MASKS too"
    )
    imp.add_argument(
        "masks", help="folder of masks / label volumes (leave out: images alone, labels by --csv)"
    )
    imp.add_argument("output", nargs="?", help="OUT.npz, or a folder for a tfds dataset")
    imp.add_argument(
        "--mask-suffix",
        default=None,
        help="mask stem = image stem + this (default '_mask' for images, '' for volumes)",
    )
    imp.add_argument(
        "--multi-mask",
        choices=("merge", "channels"),
        default="merge",
        help="several mask files per image: OR-merge or one channel per tag",
    )
    imp.add_argument(
        "--mask-classes",
        type=_ints,
        default=None,
        help="class values, background first, e.g. 0,1,2 (default: binary)",
    )
    imp.add_argument(
        "--csv",
        action="append",
        default=[],
        help="CSV with id and x,y / x0,y0,x1,y1[,class] / label (or label:NAME multi-hot, "
        "1/0/-1 uncertain/blank = 0) / group columns (repeatable)",
    )
    imp.add_argument(
        "--resize",
        choices=importer.RESIZE_POLICIES,
        default=None,
        help="pad (to square, default for images), crop, pad16 (default for volumes)",
    )
    imp.add_argument("--size", type=int, default=0, help="output side for pad/crop (0 = keep)")
    imp.add_argument("--multiple", type=int, default=16, help="pad16 pads to this multiple")
    imp.add_argument("--color", choices=("gray", "rgb"), default="gray")
    imp.add_argument(
        "--spacing",
        type=_floats,
        default=None,
        help="volumes: resample to D,H,W mm, e.g. 3.22,1.62,1.62",
    )
    imp.add_argument("--slices", action="store_true", help="volumes: write 2-D axial slices")
    imp.add_argument(
        "--drop-empty-slices",
        action="store_true",
        help="with --slices: leave out slices whose mask is empty",
    )
    imp.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out examples with problems instead of failing",
    )
    imp.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the output of an earlier import (never anything else)",
    )
    ins = sub.add_parser("inspect", help="counts, balance, duplicates, contact sheet")
    ins.add_argument("path", help="an .npz file or tfds dataset folder")
    ins.add_argument("--sheet", default=None, help="contact sheet PNG (default PATH.sheet.png)")
    ins.add_argument(
        "--max-distance",
        type=int,
        default=4,
        help="near-duplicate threshold in bits of the 64-bit difference hash",
    )
    return p


def _is_nifti(folder: str) -> bool:
    return os.path.isdir(folder) and any(
        name.lower().endswith(nifti.EXTENSIONS) for name in os.listdir(folder)
    )


def run_import(args: argparse.Namespace) -> importer.Report:
    common = dict(
        mask_classes=args.mask_classes,
        csv_files=args.csv,
        size=args.size,
        multiple=args.multiple,
        skip_bad=args.skip_bad,
        overwrite=args.overwrite,
    )
    if args.output is None:  # IMAGES OUT: images alone, labelled by the CSV
        args.masks, args.output = None, args.masks
    if _is_nifti(args.images):
        return importer.import_nifti(
            args.images,
            args.masks,
            args.output,
            label_suffix=args.mask_suffix or "",
            spacing=args.spacing,
            slices=args.slices,
            empty_slices=not args.drop_empty_slices,
            resize=args.resize or ("pad" if args.slices else "pad16"),
            **common,
        )
    if args.spacing or args.slices:
        raise ValueError(f"{args.images}: --spacing and --slices need NIfTI volumes")
    return importer.import_folders(
        args.images,
        args.masks,
        args.output,
        mask_suffix="_mask" if args.mask_suffix is None else args.mask_suffix,
        multi_mask=args.multi_mask,
        color=args.color,
        resize=args.resize or "pad",
        **common,
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 1 bad input, 2 usage)."""
    args = parser().parse_args(argv)
    try:
        if args.command == "import":
            run_import(args)
        else:
            inspection.inspect(args.path, args.sheet, args.max_distance)
    except (ValueError, OSError) as err:  # bad input, or a file the OS refuses (one line)
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
