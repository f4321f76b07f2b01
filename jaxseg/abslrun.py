"""absl apps as verbs of ``jaxseg``: ``run(main, prog, module, argv)`` runs ``main`` with
``prog`` as the program name. absl names the program and picks the flags ``--help`` shows from
``sys.argv[0]``, which under the ``jaxseg`` console script is the wrapper, not the app (so its help
was one "USAGE: jaxseg [flags]" line, with exit status 1); here ``--help`` prints ``prog``, the
module's docstring and the module's own flags and exits 0 (``--helpfull`` is absl's, every flag).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

HELP = ("-h", "-?", "--help", "--helpshort")


def module_help(module: str) -> str:
    """``module``'s docstring and flags (absl keys the flags of ``__main__`` by its file)."""
    from absl import flags

    key = sys.argv[0] if module == "__main__" else module
    doc = (sys.modules[module].__doc__ or "").replace("``", "").strip()
    return f"{doc}\n\nflags:\n{flags.FLAGS.module_help(key).strip()}\n"


def run(
    main: Callable[[list[str]], None],
    prog: str,
    module: str,
    argv: list[str],
    flags_parser: Callable[[list[str]], list[str]] | None = None,
) -> NoReturn:
    """``absl.app.run(main)`` on ``[prog, *argv]``; exits (``--help``: ``module_help``, 0)."""
    from absl import app

    if any(arg in HELP for arg in argv):
        print(f"usage: {prog} [flags]\n\n{module_help(module)}", end="")
        sys.exit(0)
    app.run(main, argv=[prog, *argv], flags_parser=flags_parser or app.parse_flags_with_usage)
