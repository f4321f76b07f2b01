"""Restarts of ``train_and_evaluate``: a run killed (SIGKILL) or preempted (SIGTERM) mid-way and
started again ends bit-identical to an uninterrupted one; a finished run is never rewritten
unless ``overwrite=True``.

The kill/preemption runs are real subprocesses (``tests/_preempt_worker.py``: the tiny scratch
stage, 12 steps, augmentation and dropout on, a progress line per step, slowed to ~0.25 s a
step so a signal lands mid-run); the steps they are signalled after come from a fixed
``random.Random`` seed. They share the compilation cache of the test session.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import REPO, checkpoint_steps, subprocess_env

from jaxseg.train.loop import Preempted, train_and_evaluate
from jaxseg.train.writers import read_jsonl

STEPS = 12
CHECKPOINT_EVERY = 2
DELAY = "0.25"
_RNG = random.Random(1204)
KILL_AFTER = _RNG.randint(3, STEPS - 3)  # SIGKILL once step KILL_AFTER has been logged
TERM_AFTER = _RNG.randint(3, STEPS - 3)  # SIGTERM once step TERM_AFTER has been logged
STAGE_DIR = Path("fold_0", "seed_0", "budget_4", "scratch")  # the worker's run under its root
TIMEOUT_S = 240


class Worker:
    """One ``_preempt_worker.py`` process; a thread collects its output line by line and, when
    asked, signals it as soon as it has logged a given step."""

    def __init__(self, root: Path, *args: str, signal_after: tuple[int, int] | None = None):
        self.root = root
        self.workdir = root / STAGE_DIR
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "_preempt_worker.py"), str(root), *args],
            cwd=REPO,
            env=subprocess_env(JAX_PLATFORMS="cpu"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.trained = threading.Event()  # set at the first progress line: the step compiled
        self.signalled_after: int | None = None  # the logged step the signal followed
        self._reader = threading.Thread(target=self._read, args=(signal_after,), daemon=True)
        self._reader.start()

    def _read(self, signal_after: tuple[int, int] | None) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            logged = re.search(rf"step (\d+)/{STEPS}\b", line)
            if logged:
                self.trained.set()
            if signal_after and logged and self.signalled_after is None:
                step, signum = signal_after
                if int(logged.group(1)) >= step:
                    self.proc.send_signal(signum)
                    self.signalled_after = int(logged.group(1))

    def finish(self) -> int:
        """Wait for the exit (killing the worker after ``TIMEOUT_S``); returns its status."""
        try:
            self.proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reader.join()
        self.trained.set()
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "".join(self.lines)


def read_state(workdir: Path, step: int) -> dict[str, np.ndarray]:
    """{path: array} of every leaf of the full state saved at ``step`` (with opt_state, rng)."""
    tree = ocp.StandardCheckpointer().restore(workdir / "checkpoints" / str(step) / "default")
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def read_result(workdir: Path) -> dict:
    return json.loads((workdir / "result.json").read_text())


def assert_same_run(workdir: Path, reference: Path) -> None:
    """The final state (params, batch_stats, opt_state, rng, step) and the test metrics are
    bit-identical to the reference run's."""
    ours, theirs = read_state(workdir, STEPS), read_state(reference, STEPS)
    assert ours.keys() == theirs.keys()
    assert any("opt_state" in p for p in ours) and any("batch_stats" in p for p in ours)
    differ = [p for p in ours if not np.array_equal(ours[p], theirs[p])]
    assert not differ, f"{len(differ)} leaves differ from the uninterrupted run: {differ[:4]}"
    a, b = read_result(workdir), read_result(reference)
    assert a["per_example"] == b["per_example"] and a["metrics"] == b["metrics"]
    assert a["steps"] == b["steps"] == STEPS


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted reference, the SIGKILLed run and the SIGTERMed run, run together; the
    interrupted ones are signalled and restarted (the restarts also run together)."""
    root = tmp_path_factory.mktemp("preempt")
    every = ("--checkpoint-every", str(CHECKPOINT_EVERY))
    reference = Worker(root / "reference", *every)
    # The others start once the reference has compiled the step into the shared cache.
    reference.trained.wait(TIMEOUT_S)
    killed = Worker(
        root / "killed", *every, "--delay", DELAY, signal_after=(KILL_AFTER, signal.SIGKILL)
    )
    # checkpoint_every > steps: the only checkpoint before the end is the one SIGTERM saves.
    termed = Worker(
        root / "termed",
        *("--checkpoint-every", "100", "--delay", DELAY),
        signal_after=(TERM_AFTER, signal.SIGTERM),
    )
    first = {"killed": (killed, killed.finish()), "termed": (termed, termed.finish())}
    state = {
        name: {
            "steps": checkpoint_steps(w.workdir / "checkpoints"),
            "result": (w.workdir / "result.json").exists(),
        }
        for name, (w, _) in first.items()
    }
    again = {
        "killed": Worker(root / "killed", *every),
        "termed": Worker(root / "termed", "--checkpoint-every", "100"),
    }
    finished = {name: (w, w.finish()) for name, w in again.items()}
    assert reference.finish() == 0, reference.output
    return dict(reference=reference, first=first, state=state, again=finished)


def test_sigkill_at_a_random_step_resumes_bit_identically(runs):
    killed, status = runs["first"]["killed"]
    assert status == -signal.SIGKILL, killed.output
    assert killed.signalled_after == KILL_AFTER
    assert not runs["state"]["killed"]["result"]
    # Killed right after logging step k: the checkpoint of the last even step < k is complete,
    # that of step k (when even) may or may not be (SIGKILL can land mid-save); step k + 1 is
    # ~0.25 s away, more than the signal takes.
    latest = max(runs["state"]["killed"]["steps"])
    assert latest % 2 == 0 and KILL_AFTER - 2 <= latest <= KILL_AFTER, runs["state"]

    restarted, status = runs["again"]["killed"]
    assert status == 0, restarted.output
    assert f"resumed from step {latest} " in restarted.output
    assert f"step {latest}/{STEPS} " not in restarted.output  # no step is trained twice
    assert f"step {latest + 1}/{STEPS} " in restarted.output
    assert_same_run(restarted.workdir, runs["reference"].workdir)
    # A save the kill interrupted leaves an orbax temporary directory; the restart removed it.
    assert not [n for n in os.listdir(restarted.workdir / "checkpoints") if "tmp" in n]


def test_sigterm_checkpoints_the_current_step_and_resumes_bit_identically(runs):
    termed, status = runs["first"]["termed"]
    assert status == Preempted.EXIT_CODE == 143, termed.output
    assert termed.signalled_after == TERM_AFTER
    stopped = int(re.search(r"^PREEMPTED (\d+)$", termed.output, re.M).group(1))
    # SIGTERM lands while step TERM_AFTER finishes or during the next one (~0.25 s); either way
    # the step it stopped at is saved, although no periodic checkpoint was due, and nothing else
    # is written.
    assert TERM_AFTER <= stopped < STEPS, (TERM_AFTER, termed.output)
    assert runs["state"]["termed"]["steps"] == [stopped]
    assert not runs["state"]["termed"]["result"]
    assert f"SIGTERM: saved step {stopped}" in termed.output

    restarted, status = runs["again"]["termed"]
    assert status == 0, restarted.output
    assert f"resumed from step {stopped} " in restarted.output
    assert checkpoint_steps(restarted.workdir / "checkpoints") == [stopped, STEPS]
    assert_same_run(restarted.workdir, runs["reference"].workdir)


# ---------------------------------------------------------------------------------------------
# Finished runs


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_run, tiny_fundus):
    """A finished tiny scratch run (6 steps), trained in this process under a sentinel SIGTERM
    handler."""
    run = tiny_run(tmp_path_factory.mktemp("finished"), "scratch")

    def sentinel(signum, frame):  # pragma: no cover - never called
        raise AssertionError("the trainer's own handler should have been active")

    previous = signal.signal(signal.SIGTERM, sentinel)
    try:
        result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
        after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return dict(run=run, result=result, handler_after=after, sentinel=sentinel)


def test_sigterm_handler_is_restored_after_the_loop(finished):
    assert finished["handler_after"] is finished["sentinel"]


def test_finished_run_returns_its_result_without_rewriting_it(finished, tiny_fundus, capsys):
    run = finished["run"]
    path = Path(run.workdir, "result.json")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    metrics_before = Path(run.workdir, "metrics.jsonl").read_bytes()
    capsys.readouterr()

    again = train_and_evaluate(run.config, run.workdir, tiny_fundus)

    out = capsys.readouterr().out
    assert not re.search(r"step \d+/6", out), out
    assert "result.json returned as saved" in out
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert Path(run.workdir, "metrics.jsonl").read_bytes() == metrics_before  # no test/ record
    assert again == json.loads(before[0]) == json.loads(json.dumps(finished["result"]))
    assert checkpoint_steps(Path(run.workdir, "checkpoints")) == [3, 6]


def test_overwrite_trains_again_from_scratch(finished, tiny_fundus, tmp_path, capsys):
    run = finished["run"]
    workdir = tmp_path / "copy"
    shutil.copytree(run.workdir, workdir)
    (workdir / "notes.txt").write_text("not the run's")
    (workdir / "checkpoints" / "corrupt_9").mkdir()  # stale: goes with checkpoints/
    old_mtime = (workdir / "result.json").stat().st_mtime_ns
    capsys.readouterr()

    result = train_and_evaluate(run.config, str(workdir), tiny_fundus, overwrite=True)

    out = capsys.readouterr().out
    assert "resumed" not in out and "step 6/6" in out
    assert (workdir / "result.json").stat().st_mtime_ns != old_mtime
    assert result["per_example"] == finished["result"]["per_example"]  # same seed, same run
    assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
    records = read_jsonl(str(workdir / "metrics.jsonl"))
    # The old run's records were deleted, not appended to.
    assert [r["step"] for r in records if "train/loss" in r] == [3, 6]
    assert (workdir / "notes.txt").read_text() == "not the run's"


def test_overwrite_replaces_a_run_of_another_config(finished, tiny_fundus, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(finished["run"].workdir, workdir)
    shorter = finished["run"].config.copy_and_resolve_references()
    shorter.steps = 3
    with pytest.raises(ValueError, match="different config"):
        train_and_evaluate(shorter, str(workdir), tiny_fundus)
    assert read_result(workdir)["steps"] == 6  # refused: untouched

    result = train_and_evaluate(shorter, str(workdir), tiny_fundus, overwrite=True)
    assert result["steps"] == read_result(workdir)["steps"] == 3
    assert checkpoint_steps(workdir / "checkpoints") == [3]
    assert json.loads((workdir / "config.json").read_text())["steps"] == 3
