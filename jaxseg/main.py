"""``jaxseg train --config=configs/NAME.py[:ARGS] --workdir=DIR [--overwrite | --shard=i/n]``:
train and evaluate a study (aliases: ``jaxseg --config=...``, ``python -m jaxseg.main ...``).

Override any config key with ``--config.KEY=VALUE``, e.g. ``--config.stages.segment.steps=50``;
the config is locked, so a misspelt key is an error, not a silently ignored setting. A bad config
file, argument, override or workdir ends in one ``error: ...`` line before anything trains.
Finished runs in DIR are read back, not retrained (unless --overwrite). ``--shard=i/n`` (or a
SLURM array task's ``SLURM_ARRAY_TASK_ID``/``_COUNT``) trains one of n shares of the runs, next to
the other shards' workers (``studies.shards``, ``launch/``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import tempfile
from typing import NoReturn

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from jaxseg import abslrun


class ConfigFile(flags.ArgumentParser):
    """``--config=FILE[:ARG]``: ``FILE``'s ``get_config(ARG)``, locked. ml_collections' own
    parser defers a missing file to a traceback at first use and embeds the traceback of an
    error in ``get_config`` in the flag error; here either is one line (absl's flag error)."""

    def parse(self, argument: str) -> ml_collections.ConfigDict:
        path, *arg = argument.split(":", 1)
        if not os.path.isfile(path):
            raise ValueError(f"no such config file {path!r}")
        try:
            loader = importlib.machinery.SourceFileLoader("config_config", path)
            module = importlib.util.module_from_spec(
                importlib.util.spec_from_loader(loader.name, loader)
            )
            loader.exec_module(module)
            config = module.get_config(*arg)
        except Exception as err:  # the config file is code: any error in it is the flag's error
            text = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
            raise ValueError(" ".join(text.split())) from None
        if not isinstance(config, ml_collections.ConfigDict):
            raise ValueError(f"get_config() returned {type(config).__name__}, not a ConfigDict")
        config.lock()
        return config

    def flag_type(self) -> str:
        return "config object"


_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.", lock_config=True)
flags.FLAGS["config"].parser = ConfigFile()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Retrain and rewrite finished runs instead of reading them back."
)
_SHARD = flags.DEFINE_string(
    "shard",
    None,
    "i/n: train shard i of n of the study's runs (whole families of chains), next to the other "
    "shards' workers. Default: from a SLURM array task (SLURM_ARRAY_TASK_ID/_COUNT), else all.",
)
flags.mark_flags_as_required(["config", "workdir"])
WORKDIR_ERRORS = {
    FileExistsError: "is a file, not a directory",
    NotADirectoryError: "lies under a file",
}


def check_workdir(path: str) -> str:
    """The absolute ``path``, created and probed with a temporary file before anything trains:
    an empty ``--workdir=`` (an unset shell variable) would write the study into the current
    directory, and an unwritable one would fail only after the first run trained."""
    if not path.strip():
        raise ValueError("--workdir is empty (an unset shell variable?); name a directory")
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as err:
        raise ValueError(
            f"--workdir={path}: {WORKDIR_ERRORS.get(type(err), err.strerror)}"
        ) from None
    return os.path.abspath(path)


def shard_of(flag: str | None, overwrite: bool) -> tuple[int, int] | None:
    """The worker's ``(i, n)`` from ``--shard`` or a SLURM array task, or None (every run).
    ``--overwrite`` would clear runs other workers are training: refused with a shard."""
    from jaxseg.studies import shards

    shard = shards.parse(flag) if flag is not None else shards.from_env()
    if shard is not None and overwrite:
        where = "--shard" if flag is not None else f"a SLURM array task ({shards.SLURM_ID})"
        raise ValueError(
            f"--overwrite with {where} is refused: it would clear runs other workers are "
            "training; delete the workdir first, or run the study without shards"
        )
    return shard


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        shard = shard_of(_SHARD.value, _OVERWRITE.value)
        workdir = check_workdir(_WORKDIR.value)
    except ValueError as err:
        sys.exit(f"error: {err}")
    from jaxseg.train import distributed

    if shard is not None and distributed.settings_from_env() is not None:
        sys.exit(
            "error: a shard worker is one process (its claims are process 0's locks); start "
            "shards without JAXSEG_COORDINATOR/JAXSEG_DISTRIBUTED"
        )
    distributed.initialize_from_env()  # joins N processes when launch/ set JAXSEG_COORDINATOR
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; --verbosity=0 shows it
    import jax

    from jaxseg.studies.run import run_shard, run_study
    from jaxseg.train.sigterm import Preempted

    # Every fold and seed compiles the same programs: a persistent cache compiles them once.
    cache = os.environ.get("JAXSEG_XLA_CACHE", os.path.expanduser("~/.cache/jaxseg/xla"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    logging.info("jax devices: %s", jax.devices())
    try:
        if shard is None:
            run_study(_CONFIG.value, workdir, _OVERWRITE.value)
        else:
            run_shard(_CONFIG.value, workdir, *shard)
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


def train(argv: list[str]) -> NoReturn:
    """``jaxseg train ARGV``: the study launcher (exits)."""
    abslrun.run(main, "jaxseg train", __name__, argv, flags_parser=parse_flags)


if __name__ == "__main__":
    train(sys.argv[1:])
