"""Shared fixtures for the training/CLI integration tests: tiny run configs, a tiny dataset, a
checkpoint reader, the environment for ``python -m jaxseg`` subprocesses and the tiny demo study
run once from the command line (``demo``).

Every tiny U-Net step costs seconds of XLA compile time on a CPU, and the integration tests
compile the same few programs again and again (one per stage kind). A persistent JAX compilation
cache shared by this process and its subprocesses turns the repeats into cache hits. It lives in
pytest's cache directory (``.pytest_cache/d/jax-compilation-cache``, git-ignored) unless
``JAXSEG_TEST_JAX_CACHE`` names another directory; the cache is keyed by the program, the jax
version and the flags, so a stale entry is never reused for a different program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The suite compiles hundreds of tiny programs; XLA's default CPU convolution path compiles ~10 %
# faster than the one `import jaxseg` selects, which pays only on real-size steps (BENCHMARKS.md).
# Both compute the same numbers; tests/test_xla_flags.py checks the flag in its own processes.
os.environ.setdefault("JAXSEG_FAST_CPU", "0")

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxseg import checkpoint, data

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `configs` is a directory of the repo, not an installed package
    sys.path.insert(0, str(REPO))

from configs import demo as demo_configs  # noqa: E402
from jaxseg.studies import plan as plan_lib  # noqa: E402

_CACHE_ENV = "JAXSEG_TEST_JAX_CACHE"


def pytest_configure(config: pytest.Config) -> None:
    cache = os.environ.get(_CACHE_ENV)
    if not cache:
        if getattr(config, "cache", None) is not None:
            cache = str(config.cache.mkdir("jax-compilation-cache"))
        else:  # -p no:cacheprovider
            cache = os.path.join(tempfile.gettempdir(), "jaxseg-test-jax-cache")
    os.environ[_CACHE_ENV] = cache
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (pyproject's addopts) each test file runs whole on one
    worker, so its module-scoped fixtures are built once; the files that read the session-wide
    tiny ``demo`` study share one worker, so it runs once."""
    demo_files = {item.path for item in items if "demo" in getattr(item, "fixturenames", ())}
    for item in items:
        group = "demo" if item.path in demo_files else str(item.path.relative_to(REPO))
        item.add_marker(pytest.mark.xdist_group(group))


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child python running jaxseg: same compilation cache, repo on the path."""
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=os.environ.get(_CACHE_ENV, ""),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


def jaxseg_main(workdir: Path, *args: str, config: str = "configs/demo.py:tiny"):
    """``python -m jaxseg train`` on the CPU; returns the CompletedProcess (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "jaxseg", "train", f"--config={config}", f"--workdir={workdir}",
         *args],
        cwd=REPO,
        env=subprocess_env(JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip


def result_files(workdir: Path) -> dict[str, int]:
    """{relative path of every result.json: mtime in ns}."""
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in workdir.rglob("result.json")}


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The tiny demo study, run once from the command line (read-only: copy before changing)."""
    workdir = tmp_path_factory.mktemp("cli") / "tiny"
    proc = jaxseg_main(workdir)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(workdir=workdir, proc=proc, results=result_files(workdir))


@pytest.fixture(scope="session")
def tiny_study() -> ml_collections.ConfigDict:
    """configs/demo.py:tiny — 40 fundus images of 32², 2 folds, budget 4, 6 steps per stage."""
    return demo_configs.get_config("tiny")


@pytest.fixture(scope="session")
def tiny_fundus(tiny_study) -> data.Dataset:
    """The tiny study's dataset (shared, read-only: copy before modifying)."""
    return data.load(tiny_study.data)


def make_run(
    study: ml_collections.ConfigDict,
    root: str | os.PathLike,
    arm: str,
    index: int = -1,
    fold: int = 0,
    seed: int = 0,
    budget: int | None = None,
) -> plan_lib.Run:
    """The run of the ``index``-th stage of ``arm`` (default its last) under ``root``."""
    budget = next(iter(study.protocol.budgets)) if budget is None else budget
    n = len(plan_lib.arm_stages(study, arm))
    return plan_lib.stage_run(study, str(root), arm, index % n, fold, seed, budget)


@pytest.fixture(scope="session")
def tiny_run(tiny_study):
    """Factory: ``tiny_run(root, arm='scratch', index=-1, **kw)`` -> plan.Run of one stage."""

    def factory(root, arm: str = "scratch", index: int = -1, **kw) -> plan_lib.Run:
        return make_run(tiny_study, root, arm, index, **kw)

    return factory


def read_variables(
    ckpt_dir: str | os.PathLike,
    step: int | None = None,
    collections: tuple[str, ...] = ("params", "batch_stats"),
) -> dict[str, np.ndarray]:
    """{'params/encoder/.../kernel': array} of a saved state (latest step unless ``step``)."""
    variables = checkpoint.load_variables(os.path.abspath(ckpt_dir), step, collections)
    return {p: np.asarray(v) for p, v in checkpoint.flatten(variables).items()}


def checkpoint_steps(ckpt_dir: str | os.PathLike) -> list[int]:
    """The finished steps saved under ``ckpt_dir``."""
    with ocp.CheckpointManager(os.path.abspath(ckpt_dir)) as mngr:
        return sorted(mngr.all_steps())
