"""The command line, end to end: ``python -m jaxseg train --config=configs/demo.py:tiny ...`` in a
subprocess (as a user runs it), its outputs, resuming a finished study and its errors."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, jaxseg_main, result_files, subprocess_env

STEP_LINE = re.compile(r"step \d+/\d+")
# what transfer.format_report prints when a stage loads its init_from
TRANSFER_LINE = re.compile(r"^\w+: transfer( from .*)?: \d+ leaves loaded", re.MULTILINE)
BUSI = Path(os.environ.get("JAXSEG_BUSI") or REPO.parent / "shared/data/busi/busi.npz")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_demo_runs_and_reports(demo, tiny_study):
    workdir, out = demo["workdir"], demo["proc"].stdout
    assert "# Study report" in out
    assert re.search(r"\| budget \| arm \| n \| dice mean ± sd \|", out)
    for arm in ("pretrained", "scratch"):
        assert re.search(rf"\| 4 \| {arm} \| 2 \| ", out), arm
    report = (workdir / "report.md").read_text()
    study, time_heading, time_section = report.partition("## Where the time went")
    assert study.strip() in out and time_heading  # the time section is printed after it
    assert (time_heading + time_section).strip() in out.split(study.strip())[1]

    rows = read_rows(workdir / "results.csv")
    assert {r["arm"] for r in rows} == {"pretrained", "scratch"}
    final_dice = [r for r in rows if r["final"] == "1" and r["metric"] == "dice"]
    folds, budgets = tiny_study.protocol.run_folds, len(tiny_study.protocol.budgets)
    assert len(final_dice) == folds * budgets * 2 == 4
    assert {(r["arm"], r["fold"]) for r in final_dice} == {
        (arm, str(f)) for arm in ("pretrained", "scratch") for f in range(folds)
    }
    assert all(r["stage"] in ("segment", "scratch") and r["n_train"] == "4" for r in final_dice)
    pretext = [r for r in rows if r["final"] == "0"]
    assert {r["stage"] for r in pretext} == {"localize"}
    assert "center_error" in {r["metric"] for r in pretext}

    summary = json.loads((workdir / "summary.json").read_text())
    assert {(s["arm"], s["n"], s["metric"]) for s in summary["final"]} == {
        ("pretrained", 2, "dice"),
        ("scratch", 2, "dice"),
    }
    assert any(p["stage"] == "localize" for p in summary["pretext"])
    # pretext health opens the report (tiny: pretext_check='warn', a warning first if it failed)
    (health,) = summary["pretext_health"]
    assert set(health["baselines"]) == {"mean_train_centre", "image_centre"}
    top = report.splitlines()[:6]
    assert "## Pretext health" in top
    assert top[2].startswith("**Warning") == (health["beats"] < health["n"])

    # Every run of the plan has its own directory with a result (localize shared by budgets).
    assert sorted(demo["results"]) == sorted(
        f"fold_{f}/seed_0/{d}/result.json"
        for f in range(folds)
        for d in ("localize", "budget_4/segment", "budget_4/scratch")
    )


def test_rerun_skips_finished_runs(demo):
    workdir = demo["workdir"]
    before = (workdir / "results.csv").read_bytes()
    proc = jaxseg_main(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not STEP_LINE.search(proc.stdout), proc.stdout
    # setting up a stage that loads a transfer prints it (the first run did); a re-run does not
    assert TRANSFER_LINE.search(demo["proc"].stdout)
    assert not TRANSFER_LINE.search(proc.stdout), proc.stdout
    assert "# Study report" in proc.stdout
    assert result_files(workdir) == demo["results"]  # no result.json rewritten
    assert (workdir / "results.csv").read_bytes() == before


def test_changed_config_in_a_finished_study_is_refused(demo, tmp_path):
    """A finished run of another config is refused (check_workdir) before anything trains or is
    written: exit 1 with one 'error:' line naming the run; its files stay as they were."""
    workdir = tmp_path / "changed"
    shutil.copytree(demo["workdir"], workdir)
    segment = workdir / "fold_0/seed_0/budget_4/segment"
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    proc = jaxseg_main(workdir, "--config.stages.segment.steps=3", "--config.protocol.run_folds=1")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {segment} holds a run with a different config ({segment / 'config.json'}); "
        "use a new --workdir, or delete that one to start over"
    )
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] == [
        proc.stderr.strip().splitlines()[-1]
    ]
    assert not STEP_LINE.search(proc.stdout)
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_override_sets_the_stage_steps(tmp_path):
    workdir = tmp_path / "override"
    proc = jaxseg_main(workdir, "--config.stages.segment.steps=3", "--config.protocol.run_folds=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "segment: step 3/3" in proc.stdout
    run = workdir / "fold_0/seed_0/budget_4"
    assert json.loads((run / "segment/result.json").read_text())["steps"] == 3
    assert json.loads((run / "segment/config.json").read_text())["steps"] == 3
    assert json.loads((run / "scratch/result.json").read_text())["steps"] == 6
    assert not (workdir / "fold_1").exists()
    rows = read_rows(workdir / "results.csv")
    assert len([r for r in rows if r["final"] == "1" and r["metric"] == "dice"]) == 2


def test_misspelt_key_is_an_error(tmp_path):
    workdir = tmp_path / "typo"
    proc = jaxseg_main(workdir, "--config.stages.segment.stepz=3")
    assert proc.returncode != 0
    assert "stepz" in proc.stderr
    assert not (workdir / "fold_0").exists()


def test_arm_with_unknown_stage_is_a_one_line_error(tmp_path):
    workdir = tmp_path / "nope"
    proc = jaxseg_main(workdir, "--config.arms.scratch=nope")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "nope" in errors[0] and "scratch" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (workdir / "fold_0").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--config.compare=(('pretrained','scratch'),('nope','scratch'))",
         "error: compare names arm 'nope'; arms are ['pretrained', 'scratch']"),
        ("--config.correction=fdr", "error: correction 'fdr' is not one of holm, bh"),
    ],
)  # fmt: skip
def test_bad_compare_or_correction_is_a_one_line_error(tmp_path, flag, message):
    workdir = tmp_path / "bad"
    proc = jaxseg_main(workdir, flag)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [message], proc.stderr
    assert not (workdir / "fold_0").exists()


def test_unknown_frozen_norm_is_a_one_line_error(tmp_path):
    workdir = tmp_path / "frozen_norm"
    proc = jaxseg_main(workdir, "--config.stages.segment.frozen_norm=adpt")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "frozen_norm='adpt' must be one of stored, adapt" in errors[0]
    assert "Traceback" not in proc.stderr
    assert not (workdir / "fold_0").exists()


@pytest.mark.skipif(not BUSI.is_file(), reason=f"BUSI not found at {BUSI} (set JAXSEG_BUSI)")
def test_busi_tiny_study(tmp_path):
    workdir = tmp_path / "busi"
    proc = jaxseg_main(
        workdir,
        "--config.data.image_size=32",
        "--config.protocol.run_folds=1",
        config=f"configs/demo.py:tiny,data={BUSI}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = json.loads((workdir / "study_config.json").read_text())
    assert study["data"]["source"] == "npz" and study["data"]["path"] == str(BUSI)
    assert "780 images, 133 with empty masks" in proc.stdout
    rows = read_rows(workdir / "results.csv")
    assert len([r for r in rows if r["final"] == "1" and r["metric"] == "dice"]) == 2
    run = workdir / "fold_0/seed_0"
    localize = json.loads((run / "localize/result.json").read_text())
    segment = json.loads((run / "budget_4/segment/result.json").read_text())
    # Empty-mask (normal) images have no centre: out of localization, kept for segmentation.
    assert set(localize["test_index"]) < set(segment["test_index"])
    assert localize["n_train"] + localize["n_test"] == 780 - 133
    assert segment["n_train"] == 4
    # The normals are reported apart: counted, their false-positive rate, no Dice of their own.
    with np.load(BUSI) as busi:
        normals = int(np.sum(busi["labels"][segment["test_index"]] == 0))
    metrics = segment["metrics"]
    assert metrics["empty_count"] == normals > 0
    assert {"dice_all", "empty_fp_rate", "hd_inf", "dice[benign]", "dice[malignant]",
            "hd[malignant]", "empty_fp_rate[normal]"} <= set(metrics)  # fmt: skip
    assert "dice[normal]" not in metrics


def test_report_embeds_prediction_overlays_and_the_weight_distance_heat_map(demo):
    workdir = demo["workdir"]
    report = (workdir / "report.md").read_text()
    for name in ("budget_dice.png", "predictions_budget_4.png", "weight_distance_budget_4.png"):
        assert f"figures/{name}" in report
        assert (workdir / "figures" / name).stat().st_size > 1000


def test_same_config_and_seed_give_bit_identical_results(demo, tmp_path):
    again = tmp_path / "again"
    proc = jaxseg_main(again)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (again / "results.csv").read_bytes() == (demo["workdir"] / "results.csv").read_bytes()
    for rel in demo["results"]:
        first = json.loads((demo["workdir"] / rel).read_text())
        second = json.loads((again / rel).read_text())
        assert first["per_example"] == second["per_example"], rel
    # The seed and the versions are recorded in the workdir.
    assert json.loads((again / "study_config.json").read_text())["seed"] == 0
    versions = json.loads((again / "machine.json").read_text())
    assert {"jax", "jaxlib", "flax", "optax", "numpy"} <= set(versions)


def test_overwrite_retrains_finished_runs_with_identical_results(demo, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(demo["workdir"], workdir)
    before = result_files(workdir)
    proc = jaxseg_main(workdir, "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert STEP_LINE.search(proc.stdout)  # trained again
    after = result_files(workdir)
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)
    assert (workdir / "results.csv").read_bytes() == (demo["workdir"] / "results.csv").read_bytes()


def test_sigterm_checkpoints_exits_143_and_the_same_command_resumes(demo, tmp_path):
    workdir = tmp_path / "term"
    cmd = [sys.executable, "-m", "jaxseg.main", "--config=configs/demo.py:tiny",
           f"--workdir={workdir}", "--config.stages.localize.log_every=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(JAX_PLATFORMS="cpu"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in proc.stdout:  # wait until training is under way
        if STEP_LINE.search(line):
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-2000:]
    assert "preempted" in err and not list(workdir.rglob("result.json"))
    assert list((workdir / "fold_0" / "seed_0" / "localize" / "checkpoints").iterdir())
    again = jaxseg_main(workdir, "--config.stages.localize.log_every=1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from step" in again.stdout
    # The killed-and-resumed study ends with the uninterrupted study's results table.
    assert (workdir / "results.csv").read_bytes() == (demo["workdir"] / "results.csv").read_bytes()


# --- the study workdir (issue 18): relocatable, extensible, one writer, the user's files kept


def test_a_moved_copied_or_symlinked_workdir_resumes_and_reports(demo, tmp_path):
    """No absolute path is stored in a workdir: a copy elsewhere, or a link to one, reads every
    finished run back and re-reports the same table; a copy missing one result.json resumes that
    run from its checkpoint."""
    moved = tmp_path / "elsewhere" / "moved"
    shutil.copytree(demo["workdir"], moved)
    link = tmp_path / "link"
    link.symlink_to(moved)
    for workdir in (moved, link):
        proc = jaxseg_main(workdir)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not STEP_LINE.search(proc.stdout)
        assert (workdir / "results.csv").read_bytes() == (
            demo["workdir"] / "results.csv"
        ).read_bytes()
    (moved / "fold_1/seed_0/budget_4/segment/result.json").unlink()
    proc = jaxseg_main(moved)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "segment: resumed from step 6" in proc.stdout
    assert (moved / "results.csv").read_bytes() == (demo["workdir"] / "results.csv").read_bytes()


def test_more_budgets_in_the_same_workdir_add_rows(demo, tmp_path):
    workdir = tmp_path / "extended"
    shutil.copytree(demo["workdir"], workdir)
    before = read_rows(workdir / "results.csv")
    proc = jaxseg_main(workdir, "--config.protocol.budgets=(8,)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "extending the study in" in proc.stdout and "budgets (4,) -> (4, 8)" in proc.stdout
    rows = read_rows(workdir / "results.csv")
    assert {r["budget"] for r in rows} == {r["budget"] for r in before} | {"8"}
    assert all(r in rows for r in before)  # the old rows stay, as they were
    study = json.loads((workdir / "study_config.json").read_text())
    assert study["protocol"]["budgets"] == [4, 8]


def test_report_files_the_user_wrote_or_edited_are_never_overwritten(demo, tmp_path):
    workdir = tmp_path / "edited"
    shutil.copytree(demo["workdir"], workdir)
    (workdir / "report.md").write_text("my own notes")
    before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    proc = jaxseg_main(workdir)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {workdir / 'report.md'} was not written by jaxseg, or was changed since; move "
        "it out of the workdir (jaxseg replaces its report files)"
    )
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before


def test_a_second_process_on_a_busy_workdir_is_refused(tmp_path):
    workdir = tmp_path / "busy"
    cmd = [sys.executable, "-m", "jaxseg.main", "--config=configs/demo.py:tiny",
           f"--workdir={workdir}", "--config.stages.localize.log_every=1"]  # fmt: skip
    first = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(JAX_PLATFORMS="cpu"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in first.stdout:  # wait until the first process trains
            if STEP_LINE.search(line):
                break
        second = jaxseg_main(workdir, "--config.stages.localize.log_every=1")
        assert second.returncode == 1
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: --workdir={workdir} is in use by another jaxseg process")
        assert f"(pid {first.pid}@{socket.gethostname()}," in last
    finally:
        first.kill()
        first.communicate(timeout=60)
