"""Study-level explain option and the ``python -m jaxseg.explain`` CLI on the tiny demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
        env=subprocess_env(JAX_PLATFORMS="cpu"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("explained")
    out = run("-m", "jaxseg.main", "--config=configs/demo.py:tiny", f"--workdir={workdir}",
              "--config.protocol.run_folds=1", "--config.explain.enabled=True")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return workdir


def table_rows(text: str, heading: str) -> dict[str, tuple[float, float]]:
    """{stage: (cka, distance)} of the similarity table under ``heading``."""
    section = text.split(heading, 1)[1].split("###", 1)[0]
    rows = re.findall(r"^\| (\S+) \| ([0-9.]+|—) \| ([0-9.e-]+|—) \|$", section, re.M)
    return {s: (float(c) if c != "—" else None, float(d) if d != "—" else None) for s, c, d in rows}


def test_study_report_links_the_explain_index(study):
    report = (study / "report.md").read_text()
    assert "[explain/index.md](explain/index.md)" in report
    index = (study / "explain" / "index.md").read_text()
    pngs = re.findall(r"\]\((\S+\.png)\)", index)
    assert "activations_mean.png" in pngs and "activations_topk.png" in pngs
    assert any(p.startswith("maximize_segment_encoder_stage_0") for p in pngs)
    for png in pngs:
        assert (study / "explain" / png).stat().st_size > 1000


def test_frozen_encoder_is_identical_to_its_pretext_and_scratch_is_not(study):
    text = (study / "explain" / "similarity.md").read_text()
    frozen = table_rows(text, "### localize vs segment")
    for stage in ("encoder/stage_0", "encoder/stage_1", "bottleneck"):
        cka, distance = frozen[stage]
        assert cka == pytest.approx(1.0, abs=1e-3) and distance == 0.0
    scratch = table_rows(text, "### localize vs scratch")
    assert all(scratch[s][1] > 0 for s in ("encoder/stage_0", "encoder/stage_1", "bottleneck"))


def test_explain_cli_writes_figures_and_reports_bad_runs(study, tmp_path):
    seg = study / "fold_0" / "seed_0" / "budget_4" / "segment"
    scratch = study / "fold_0" / "seed_0" / "budget_4" / "scratch"
    out = run("-m", "jaxseg.explain", f"--runs=fine-tuned={seg},scratch={scratch}",
              f"--out={tmp_path / 'x'}", "--num_images=2", "--channels=2", "--steps=3")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "x" / "index.md").exists()
    assert "### fine-tuned vs scratch" in (tmp_path / "x" / "similarity.md").read_text()
    bad = run("-m", "jaxseg.explain", f"--runs=a={tmp_path}", f"--out={tmp_path / 'y'}")
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "not a stage directory" in bad.stderr
