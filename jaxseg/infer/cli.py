"""``jaxseg predict`` and ``jaxseg export``: argument parsing around ``infer.predict`` and
``infer.export``; a bad argument, input or run is one ``error:`` line and exit 1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from jaxseg.infer.predict import Options


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not sizes like 64 or 64,96") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: sizes must be >= 1")
    return sizes


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The flags predict and export share: which runs, and how windows are laid."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        help="a run directory, or a study workdir (then --arm and --budget)",
    )
    parser.add_argument("--arm", default="", help="study arm whose fold models are ensembled")
    parser.add_argument("--budget", default="", help="label budget of that arm, as in results.csv")
    parser.add_argument("--output", required=True, help="folder to write into (nothing replaced)")
    parser.add_argument(
        "--window",
        type=_sizes,
        default=(),
        help="window size(s) (default: the run's data.image_size)",
    )
    parser.add_argument("--overlap", type=float, default=0.5, help="of neighbouring windows")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per device call")
    parser.add_argument("--threshold", type=float, default=0.5, help="on the probabilities")
    return parser  # fmt: skip


def _options(args: argparse.Namespace) -> Options:
    if not 0 < args.threshold < 1 or not 0 <= args.overlap < 1 or args.batch_size < 1:
        raise ValueError("--threshold must lie in (0, 1), --overlap in [0, 1), --batch-size >= 1")
    return Options(
        threshold=args.threshold,
        tta=getattr(args, "tta", False),
        largest_component=getattr(args, "largest_component", False),
        overlap=args.overlap,
        batch_size=args.batch_size,
        window=args.window,
        resize=getattr(args, "resize", None) or "",
    )


def _run(work: Callable[[], list[str]]) -> int:
    """Run ``work``; print what it wrote, or one error line."""
    try:
        paths = work()
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(f"wrote {len(paths)} files, e.g. {paths[0]}" if paths else "wrote nothing")
    return 0


PREDICT = (
    "Segment images (a PNG/JPEG/TIFF or NIfTI folder, or an .npz) into masks in each input's "
    "own format, size and geometry."
)
EXPORT = (
    "Write a jax.export artefact of the inference function and its preprocessing "
    "(predict.json), loadable without jaxseg's configs."
)


def predict(argv: list[str]) -> int:
    """``jaxseg predict --from RUN|STUDY --input PATH --output DIR [...]``."""
    parser = _parser("jaxseg predict", PREDICT)
    parser.add_argument("--input", help="image folder, NIfTI folder or .npz")
    parser.add_argument(
        "--held-out", action="store_true",
        help="instead of --input: the study arm's held-out examples, each predicted by the fold "
        "model that did not train on it, written in its original (imported) geometry",
    )  # fmt: skip
    parser.add_argument("--probabilities", action="store_true", help="also write probabilities")
    parser.add_argument("--tta", action="store_true", help="average over all flips")
    parser.add_argument(
        "--resize", choices=("pad", "crop"), default=None,
        help="place each 2-D image on the training grid as the import did (pad or crop to a "
        "square, resize to the window) and map the masks back; default: the image's own grid",
    )  # fmt: skip
    parser.add_argument(
        "--largest-component", action="store_true",
        help="keep each channel's largest connected component",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if (args.input is None) == (not args.held_out):
        parser.error("give --input PATH, or --held-out (with a study's --arm and --budget)")
    from jaxseg.infer.held_out import held_out
    from jaxseg.infer.predict import predict as run_predict

    def work() -> list[str]:
        if args.held_out:
            return held_out(
                args.source, args.arm, args.budget, args.output, _options(args),
                write_probabilities=args.probabilities,
            )  # fmt: skip
        return run_predict(
            args.source, args.input, args.output, _options(args), arm=args.arm,
            budget=args.budget, write_probabilities=args.probabilities,
        )  # fmt: skip

    return _run(work)


def export(argv: list[str]) -> int:
    """``jaxseg export --from RUN|STUDY --output DIR [...]``."""
    args = _parser("jaxseg export", EXPORT).parse_args(argv)
    from jaxseg.infer.export import export as run_export

    def work() -> list[str]:
        return run_export(
            args.source, args.output, _options(args), arm=args.arm, budget=args.budget
        )

    return _run(work)
