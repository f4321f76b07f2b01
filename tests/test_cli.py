"""The ``jaxseg`` command (jaxseg.cli): the verbs' help, --version, a mistyped verb, the aliases
of ``jaxseg train`` and ``jaxseg report`` on a copy of the finished tiny demo study."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
from conftest import REPO, subprocess_env

from jaxseg import cli

HELP = {  # argv: what its help must name
    ("--help",): list(cli.VERBS),
    ("train", "--help"): ["usage: jaxseg train", "--config", "--workdir", "--overwrite", "--shard",
                          "--config.KEY=VALUE"],
    ("data", "--help"): ["usage: jaxseg data", "import", "inspect"],
    ("data", "import", "--help"): ["usage: jaxseg data import", "--size", "--csv"],
    ("weights", "--help"): ["usage: jaxseg weights", "--runs", "--group", "--out"],
    ("explain", "--help"): ["usage: jaxseg explain", "--runs", "--out", "--layers", "--steps"],
    ("report", "--help"): ["usage: jaxseg report", "workdir"],
}  # fmt: skip


def python(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` in the repo; returns the CompletedProcess (text output)."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=subprocess_env(JAX_PLATFORMS="cpu"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("argv", HELP, ids=" ".join)
def test_help_names_the_verbs_flags_and_exits_0(argv):
    proc = python("-m", "jaxseg", *argv)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for word in HELP[argv]:
        assert word in proc.stdout, (word, proc.stdout)
    assert len(proc.stdout.splitlines()) < 60  # the verb's own flags, not absl's


def test_python_m_jaxseg_main_help_still_lists_the_train_flags():
    proc = python("-m", "jaxseg.main", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--workdir" in proc.stdout and "--overwrite" in proc.stdout


def test_version_and_unknown_verb_import_no_jax():
    code = (
        "import sys; from jaxseg import cli\n"
        "for argv in (['--version'], ['trian']): print(cli.main(argv))\n"
        "print('jax' in sys.modules)"
    )
    proc = python("-c", code)
    assert proc.stdout.splitlines() == [f"jaxseg {metadata.version('jaxseg')}", "0", "2", "False"]
    assert proc.stderr.splitlines() == [
        f"error: unknown verb 'trian'; verbs are {', '.join(cli.VERBS)}"
    ]


def test_data_verb_dispatches_to_the_data_cli(tmp_path, capsys):
    assert cli.main(["data", "inspect", str(tmp_path / "missing.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "missing.npz" in err[-1]


# --- jaxseg report WORKDIR


def test_report_rebuilds_the_study_files_from_the_runs(demo, tmp_path, capsys):
    workdir = tmp_path / "tiny"
    shutil.copytree(demo["workdir"], workdir)
    for name in ("results.csv", "summary.json", "report.md"):
        (workdir / name).unlink()
    assert cli.main(["report", str(workdir)]) == 0
    assert capsys.readouterr().err == ""
    demo_dir = demo["workdir"]
    assert (workdir / "results.csv").read_bytes() == (demo_dir / "results.csv").read_bytes()
    rebuilt, trained = (
        json.loads((d / "summary.json").read_text()) for d in (workdir, demo["workdir"])
    )
    assert rebuilt.pop("time")["runs"] == trained.pop("time")["runs"]  # the runs' own timing.json
    assert rebuilt == trained
    assert "# Study report" in (workdir / "report.md").read_text()


def test_report_lists_a_missing_run_and_reports_the_rest(demo, tmp_path, tiny_run, capsys):
    workdir = tmp_path / "tiny"
    shutil.copytree(demo["workdir"], workdir)
    lost = tiny_run(workdir, "scratch", fold=1)
    os.remove(os.path.join(lost.workdir, "result.json"))
    assert cli.main(["report", str(workdir)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("1 of ") and err[1:] == [
        f"  missing: {os.path.relpath(lost.workdir, workdir)}"
    ]
    arm_fold = [r.split(",")[0:4:3] for r in (workdir / "results.csv").read_text().splitlines()]
    assert ["scratch", "1"] not in arm_fold
    assert ["scratch", "0"] in arm_fold and ["pretrained", "1"] in arm_fold


def test_report_on_a_folder_without_a_study_is_one_error_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path} is not a study workdir (no study_config.json)"
    ]


def test_report_without_a_finished_chain_is_one_error_line(demo, tmp_path, capsys):
    shutil.copy(demo["workdir"] / "study_config.json", tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: no chain of runs in {tmp_path} finished")
    assert not (tmp_path / "results.csv").exists()
