"""Launch: ``python -m jaxseg.main --config=configs/NAME.py[:ARGS] --workdir=DIR``.

Overrides use ml_collections config flags, e.g. ``--config.stages.segment.steps=50``; the config
is locked, so a misspelt key is an error, not a silently ignored setting.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Retrain and rewrite finished runs instead of reading them back."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from jaxseg.train.distributed import initialize_from_env

    initialize_from_env()  # joins N processes when launch/ set JAXSEG_COORDINATOR etc.; else no-op
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; --verbosity=0 shows it
    import jax

    from jaxseg.studies.run import run_study
    from jaxseg.train.sigterm import Preempted

    # Every fold and seed compiles the same programs: a persistent cache compiles them once.
    cache = os.environ.get("JAXSEG_XLA_CACHE", os.path.expanduser("~/.cache/jaxseg/xla"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    logging.info("jax devices: %s", jax.devices())
    try:
        run_study(_CONFIG.value, os.path.abspath(_WORKDIR.value), _OVERWRITE.value)
    except Preempted as err:  # SIGTERM: the step was checkpointed; the same command resumes
        print(f"preempted: {err}", file=sys.stderr, flush=True)
        sys.exit(Preempted.EXIT_CODE)
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        sys.exit(f"error: {err}")


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad ``--config.*`` override reported as one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        sys.exit(f"error: {err}")
    except (AttributeError, KeyError) as err:  # ml_collections: a key the config does not have
        while isinstance(err, Exception) and err.args:
            err = err.args[0]
        sys.exit(f"error: no such config key {' '.join(str(err).split())}")


def run() -> None:
    """Console-script entry point: ``jaxseg --config=... --workdir=...`` trains a study;
    ``jaxseg data import|inspect ...`` brings in a dataset (``python -m jaxseg.data``);
    ``jaxseg weights --runs=...`` compares runs' weights (``python -m jaxseg.eval.weights``)."""
    if sys.argv[1:2] == ["data"]:
        from jaxseg.data.__main__ import main as data_main

        sys.exit(data_main(sys.argv[2:]))
    if sys.argv[1:2] == ["weights"]:
        from jaxseg.eval.weights import main as weights_main

        sys.exit(weights_main(sys.argv[2:]))
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
