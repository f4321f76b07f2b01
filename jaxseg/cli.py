"""The ``jaxseg`` command: ``jaxseg VERB [flags]`` (also ``python -m jaxseg``).

Each verb is a ``module:function(argv) -> exit status`` imported only when used, so ``--help``,
``--version`` and a mistyped verb answer at once (importing this module imports no jax). Flags are
``--name value`` or ``--name=value`` for every verb; ``jaxseg VERB --help`` lists a verb's flags.
``jaxseg --config=...`` without a verb is ``jaxseg train --config=...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

# verb: (entry point, one line of help), in the order ``--help`` lists them
VERBS: dict[str, tuple[str, str]] = {
    "train": ("jaxseg.main:train", "train and evaluate a study (--config=FILE --workdir=DIR)"),
    "predict": ("jaxseg.infer.cli:predict", "segment images with a finished run"),
    "export": ("jaxseg.infer.cli:export", "export a finished run's model for inference"),
    "data": ("jaxseg.data.__main__:main", "import or inspect a dataset (images, masks, NIfTI)"),
    "explain": ("jaxseg.explain.__main__:run", "activation maps and similarity of finished runs"),
    "weights": ("jaxseg.eval.weights:main", "distances between finished runs' conv kernels"),
    "report": ("jaxseg.cli:report", "rebuild a study's results and report from its finished runs"),
}
TOP_HELP = ("-h", "--help")


def version() -> str:
    """The installed package's version ('unknown' when jaxseg runs from a source tree only)."""
    from importlib import metadata

    try:
        return metadata.version("jaxseg")
    except metadata.PackageNotFoundError:
        return "unknown"


def usage() -> str:
    """``jaxseg --help``: the verbs, one line each."""
    width = max(map(len, VERBS))
    verbs = "\n".join(f"  {verb:<{width}}  {line}" for verb, (_, line) in VERBS.items())
    return (
        "usage: jaxseg VERB [flags]    (jaxseg VERB --help: the verb's flags)\n\n"
        f"verbs:\n{verbs}\n\n"
        "options:\n  -h, --help  this list\n  --version   the package version\n"
    )


def entry(verb: str) -> Callable[[list[str]], int]:
    """The function of ``verb``; ValueError when it cannot be imported."""
    module, name = VERBS[verb][0].split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"jaxseg {verb} is not available in this install ({err})") from None


def main(argv: list[str]) -> int:
    """Dispatch ``argv`` (without the program name) to its verb; returns the exit status."""
    if not argv or argv[0] in TOP_HELP:
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"jaxseg {version()}")
        return 0
    verb, args = ("train", argv) if argv[0].startswith("--") else (argv[0], argv[1:])
    if verb not in VERBS:
        print(f"error: unknown verb {verb!r}; verbs are {', '.join(VERBS)}", file=sys.stderr)
        return 2
    try:
        function = entry(verb)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return function(args)


def report(argv: list[str]) -> int:
    """``jaxseg report WORKDIR``: ``studies.run.report_study``; 0 when a report was written."""
    p = argparse.ArgumentParser(
        prog="jaxseg report",
        description="Rebuild results.csv, summary.json, figures/ and report.md of a study from "
        "its finished runs, training nothing. Runs without a result are listed on stderr and "
        "left out (with every chain of runs that needs them).",
    )
    p.add_argument("workdir", help="the study's --workdir (holds study_config.json)")
    args = p.parse_args(argv)
    from jaxseg.studies.run import report_study

    try:
        report_study(args.workdir)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Console-script entry point (``[project.scripts] jaxseg``)."""
    sys.exit(main(sys.argv[1:]))
