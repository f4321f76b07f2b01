"""Shards of a study (jaxseg.studies.shards, ``jaxseg train --shard=i/n``): the partition of the
planned runs into whole families, the shard from a SLURM array task, and workers on the tiny
demo: two concurrent workers (one killed with SIGKILL and started again) give the sequential
study's results.csv byte for byte; a run another process holds is skipped with its family."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import pytest
from conftest import REPO, subprocess_env

from jaxseg import locking
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import shards
from jaxseg.train import rundir


def study(tiny_study, seeds=(0,), budgets=(4,), localize_steps=6, workdir="/study"):
    config = ml_collections.ConfigDict(tiny_study.to_dict())
    config.protocol.update(seeds=seeds, budgets=budgets)
    config.stages.localize.steps = localize_steps
    return plan_lib.plan(config, workdir)


def fake(*costs: int) -> list[plan_lib.Chain]:
    """One single-run chain per cost, in directories d0, d1, ..."""
    return [
        plan_lib.Chain("arm", [plan_lib.Run(f"/s/d{i}", ml_collections.ConfigDict(dict(steps=c)),
                                            "stage", 0, 0, 0)])
        for i, c in enumerate(costs)
    ]  # fmt: skip


def dirs(chains) -> list[str]:
    return [run.workdir for run in shards.runs(chains)]


def test_families_join_the_chains_that_share_a_run(tiny_study):
    planned = study(tiny_study, seeds=(0, 1), budgets=(4, 8, 12))
    families = shards.families(planned)
    # per fold × seed: the localize run with its 3 segment chains, and 3 lone scratch chains
    assert len(families) == 2 * 2 * (1 + 3)
    for family in families:
        arms = {chain.arm for chain in family}
        assert (arms, len(family)) in (({"pretrained"}, 3), ({"scratch"}, 1))
        assert len({(r.fold, r.seed) for r in shards.runs(family)}) == 1
    assert sorted(c for f in families for c in map(id, f)) == sorted(map(id, planned))
    assert shards.cost(families[0]) == 6 + 3 * 6  # the shared localize run counted once


def test_cost_counts_the_maximum_steps_or_else_the_epochs():
    def chain(i: int, **fields) -> plan_lib.Chain:
        run = plan_lib.Run(f"/s/e{i}", ml_collections.ConfigDict(fields), "stage", 0, 0, 0)
        return plan_lib.Chain("arm", [run])

    family = [chain(0, steps=500, epochs=100), chain(1, steps=0, epochs=2.5)]
    assert shards.cost(family) == 500 + 3


@pytest.mark.parametrize("n", [1, 2, 3, 5, 40])
def test_shares_cover_every_run_once_keep_families_whole_and_balance_cost(tiny_study, n):
    kw = dict(seeds=(0, 1), budgets=(4, 8, 12), localize_steps=30)
    planned = study(tiny_study, **kw)
    shares = [shards.share(planned, i, n) for i in range(n)]
    owners = [dirs(s) for s in shares]
    assert sorted(d for o in owners for d in o) == sorted(dirs(planned))  # each run exactly once
    for family in shards.families(planned):
        assert sum(id(family[0]) in map(id, s) for s in shares) == 1
        assert all(any(c is chain for c in s) for s in shares if any(c is family[0] for c in s)
                   for chain in family)  # fmt: skip
    for s in shares:  # chains in plan order
        assert [planned.index(c) for c in s] == sorted(planned.index(c) for c in s)
    loads = [sum(map(shards.cost, shards.families(s))) for s in shares]
    biggest = max(map(shards.cost, shards.families(planned)))
    assert max(loads) - min(loads) <= biggest  # greedy longest-first: within one family
    elsewhere = study(tiny_study, **kw, workdir="/elsewhere/x")  # another mount of the workdir
    moved = [dirs(shards.share(elsewhere, i, n)) for i in range(n)]
    assert [[os.path.relpath(d, "/elsewhere/x") for d in o] for o in moved] == [
        [os.path.relpath(d, "/study") for d in o] for o in owners
    ]


def test_assign_is_longest_first_to_the_least_loaded_with_ties_by_directory():
    groups = shards.families(fake(3, 7, 1, 5, 4))
    assert shards.assign(groups, 2) == [0, 0, 1, 1, 1]  # 7→0, 5→1, 4→1, 3→0, 1→1: 10 / 10
    groups = shards.families(fake(2, 2, 2))  # equal costs: by directory, to shards 0, 1, 2, 0 …
    assert shards.assign(groups, 2) == [0, 1, 0]
    assert [dirs(shards.share(fake(2, 2, 2), i, 2)) for i in range(2)] == [
        ["/s/d0", "/s/d2"],
        ["/s/d1"],
    ]


@pytest.mark.parametrize(
    "text,error",
    [
        ("2/2", r"--shard=2/2: the shard index must be in 0 … 1 \(of n=2\)"),
        ("0/0", r"--shard=0/0: the number of shards n must be at least 1"),
        ("a/b", r"--shard='a/b': give i/n"),
        ("-1/2", r"--shard='-1/2': give i/n"),
        ("1", r"--shard='1': give i/n"),
    ],
)
def test_bad_shard_strings_are_one_clear_error(text, error):
    with pytest.raises(ValueError, match=error):
        shards.parse(text)


def test_parse_and_slurm_array_env():
    assert shards.parse("0/1") == (0, 1) and shards.parse(" 3/4 ") == (3, 4)
    assert shards.from_env({}) is None
    assert shards.from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    array = {"SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}  # --array=1-4
    assert shards.from_env({**array, "SLURM_ARRAY_TASK_ID": "4"}) == (3, 4)
    stepped = {
        "SLURM_ARRAY_TASK_COUNT": "4",
        "SLURM_ARRAY_TASK_MIN": "10",
        "SLURM_ARRAY_TASK_STEP": "5",
    }  # fmt: skip  --array=10-25:5
    assert [shards.from_env({**stepped, "SLURM_ARRAY_TASK_ID": str(t)}) for t in (10, 25)] == [
        (0, 4),
        (3, 4),
    ]
    for bad in ({**stepped, "SLURM_ARRAY_TASK_ID": "12"}, {**array, "SLURM_ARRAY_TASK_ID": "0"}):
        with pytest.raises(ValueError, match="pass --shard=i/n"):
            shards.from_env(bad)
    with pytest.raises(ValueError, match="not integers"):
        shards.from_env({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"})


# --- workers on the tiny demo (2 folds: shard 0 = fold 0's runs, shard 1 = fold 1's) ---------


def worker(workdir: Path, *args: str, log: Path, **env: str) -> subprocess.Popen:
    """``python -m jaxseg train`` on the tiny demo, output into ``log``."""
    cmd = [sys.executable, "-m", "jaxseg", "train", "--config=configs/demo.py:tiny",
           f"--workdir={workdir}", *args]  # fmt: skip
    with open(log, "w") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(JAX_PLATFORMS="cpu", **env),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def finish(proc: subprocess.Popen, log: Path) -> str:
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    return log.read_text()


def test_two_workers_one_killed_and_restarted_give_the_sequential_results(demo, tmp_path):
    workdir = tmp_path / "sharded"
    logs = [tmp_path / f"shard{i}.log" for i in range(3)]
    first = worker(workdir, "--shard=0/2", log=logs[0])
    second = worker(workdir, log=logs[1], SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_TASK_COUNT="2")
    fold1 = workdir / "fold_1/seed_0"
    localize, segment = fold1 / "localize", fold1 / "budget_4/segment"
    deadline = time.monotonic() + 300
    while not (segment / "result.json").exists():  # kill it mid-run, else once a run finished
        if (localize / "result.json").exists() and any(
            p.name.isdigit() for p in (segment / "checkpoints").glob("*")
        ):
            break
        assert second.poll() is None and time.monotonic() < deadline, logs[1].read_text()
        time.sleep(0.02)
    second.send_signal(signal.SIGKILL)
    assert second.wait(timeout=60) == -signal.SIGKILL
    assert not (fold1 / "budget_4/scratch/result.json").exists()
    localize_mtime = (localize / "result.json").stat().st_mtime_ns
    restarted = worker(workdir, "--shard=1/2", log=logs[2])
    outputs = [finish(first, logs[0]), finish(restarted, logs[2])]
    assert (localize / "result.json").stat().st_mtime_ns == localize_mtime  # read back
    assert "shard 0/2: 3 of 6 runs (2 families of chains)" in outputs[0]
    ended = [o for o in outputs if "runs of other shards have no result yet" in o]
    assert len(ended) <= 1 and (workdir / "results.csv").exists()  # the last one reported
    csv = (workdir / "results.csv").read_bytes()
    assert csv == (demo["workdir"] / "results.csv").read_bytes()
    report = subprocess.run([sys.executable, "-m", "jaxseg", "report", str(workdir)], cwd=REPO,
                            env=subprocess_env(JAX_PLATFORMS="cpu"), capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    assert (workdir / "results.csv").read_bytes() == csv


def test_a_worker_skips_the_family_of_a_run_another_process_holds(
    tiny_study, tmp_path, capsys, monkeypatch
):
    """(In this process: flock refuses a second open file of the same process too.)"""
    from jaxseg.studies import run as run_lib
    from jaxseg.studies.run import run_shard

    workdir = tmp_path / "busy"
    workdir.mkdir()  # as another worker left it: the study recorded, a run claimed
    (workdir / "study_config.json").write_text(rundir.config_text(tiny_study))
    localize = workdir / "fold_1/seed_0/localize"
    monkeypatch.setattr(run_lib, "STUDY_LOCK_WAIT", 0.2)  # a sequential study holds the workdir
    refused = pytest.raises(locking.BusyError, match=f"--workdir={workdir} is in use")
    with locking.hold(str(workdir)), refused:
        run_shard(tiny_study, str(workdir), 1, 2)
    assert not (workdir / "fold_1").exists()
    with locking.hold(str(localize)):
        busy = run_shard(tiny_study, str(workdir), 1, 2)
    out = capsys.readouterr()
    assert [run.workdir for run in busy] == [str(localize)]
    assert "skipping its family: run " in out.err and "busy: fold_1/seed_0/localize" in out.err
    assert (
        f"5 runs of other shards (or busy) have no result yet: run `jaxseg report {workdir}`"
        in (out.out)
    )
    assert (workdir / "fold_1/seed_0/budget_4/scratch/result.json").exists()  # its own family
    assert not list(workdir.rglob("segment/config.json"))  # the dependant was not started
    assert not (workdir / "results.csv").exists()


@pytest.mark.parametrize(
    "args,env,error",
    [
        (["--shard=2/2"], {}, "error: --shard=2/2: the shard index must be in 0 … 1 (of n=2)"),
        (["--overwrite", "--shard=0/2"], {},
         "error: --overwrite with --shard is refused: it would "
         "clear runs other workers are training; delete the workdir first, or run the study "
         "without shards"),
        (["--shard=0/1"], {"JAXSEG_COORDINATOR": "localhost:0", "JAXSEG_NUM_PROCESSES": "1",
                           "JAXSEG_PROCESS_ID": "0"},
         "error: a shard worker is one process (its claims are process 0's locks); start "
         "shards without JAXSEG_COORDINATOR/JAXSEG_DISTRIBUTED"),
    ],
)  # fmt: skip
def test_bad_shard_or_overwrite_with_shard_is_one_error_line(tmp_path, args, env, error):
    log = tmp_path / "log"
    proc = worker(tmp_path / "w", *args, log=log, **env)
    assert proc.wait(timeout=120) == 1
    lines = log.read_text().strip().splitlines()
    assert [ln for ln in lines if ln.startswith("error:")] == [error] == lines[-1:]
    assert "Traceback" not in log.read_text()
    assert not os.path.exists(tmp_path / "w" / "fold_0")
