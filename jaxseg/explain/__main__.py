"""``jaxseg explain --runs=scratch=DIR1,pretrained=DIR2 --out=DIR``: activation maps, activation
maximisation and per-stage similarity of finished stage runs (see ``report``; alias:
``python -m jaxseg.explain``)."""

from __future__ import annotations

import sys
from typing import NoReturn

from absl import flags, logging

from jaxseg import abslrun
from jaxseg.eval.weights import parse_runs

_RUNS = flags.DEFINE_list("runs", None, "label=stage_workdir pairs; the first is the reference.")
_OUT = flags.DEFINE_string("out", None, "Output directory for PNGs and tables.")
_LAYERS = flags.DEFINE_string("layers", r"^(encoder/stage_\d+|bottleneck)$", "Module path regex.")
_IMAGES = flags.DEFINE_integer("num_images", 4, "Held-out images to show.")
_CHANNELS = flags.DEFINE_integer("channels", 8, "Channels maximised per layer.")
_STEPS = flags.DEFINE_integer("steps", 64, "Gradient-ascent steps of activation maximisation.")
flags.mark_flags_as_required(["runs", "out"])


def main(argv: list[str]) -> None:
    del argv
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from jaxseg.explain.report import explain_runs

    try:
        index = explain_runs(
            parse_runs(_RUNS.value), _OUT.value, _LAYERS.value, _IMAGES.value, _CHANNELS.value,
            _STEPS.value,
        )  # fmt: skip
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    print(f"wrote {index}")


def run(argv: list[str]) -> NoReturn:
    """``jaxseg explain ARGV`` (exits)."""
    abslrun.run(main, "jaxseg explain", __name__, argv)


if __name__ == "__main__":
    run(sys.argv[1:])
