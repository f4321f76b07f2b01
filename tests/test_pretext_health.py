"""A study's pretext health (issue 15): ``pretext_check`` stops a study at a pretext that does
not beat its trivial baseline with one error line, or warns and says so atop the report."""

from __future__ import annotations

import json
import os

import pytest
from conftest import jaxseg_main

from jaxseg.studies import plan as plan_lib
from jaxseg.studies import pretext, shards
from jaxseg.studies import run as run_lib


def _result(metric: str, figure: float, baseline: dict, beats: bool, **extra) -> dict:
    return dict(primary=metric, task="localization", metrics={metric: figure},
                baseline=baseline, beats_baseline=beats, **extra)  # fmt: skip


def _write(run: plan_lib.Run, result: dict) -> None:
    os.makedirs(run.workdir, exist_ok=True)
    with open(os.path.join(run.workdir, "result.json"), "w") as f:
        json.dump(result, f)


def test_mode_is_checked_and_defaults_to_stop(tiny_study):
    config = tiny_study.copy_and_resolve_references()
    assert config.pretext_check == "warn"  # scale=ci / tiny: a few steps need not learn
    del config["pretext_check"]
    assert pretext.mode(config) == "stop"  # a study config recorded before the key
    config.pretext_check = "stpo"
    with pytest.raises(ValueError, match=r"pretext_check='stpo' is not one of \('stop', 'warn'\)"):
        pretext.mode(config)


def test_verdict_and_message_name_stage_figures_and_remedy(tiny_study, tmp_path, capsys):
    planned = plan_lib.plan(tiny_study, str(tmp_path))
    segment = planned[0].runs[1]
    bad = _result("center_error", 9.0, {"mean_train_centre": 6.0, "image_centre": 7.0}, False)
    assert pretext.verdict(bad) == ("center_error", 9.0, "mean_train_centre", 6.0)
    assert pretext.verdict({**bad, "beats_baseline": True}) is None
    assert pretext.verdict({"primary": "dice", "metrics": {"dice": 0.1}}) is None  # no baseline
    _write(segment.parent, bad)
    with pytest.raises(pretext.PretextFailedError) as err:
        pretext.check_parent(segment, "stop")
    text = str(err.value)
    assert "\n" not in text
    parts = (
        "'localize'",
        segment.parent.workdir,
        "center_error 9 ",
        "mean_train_centre 6 ",
        "lower is better",
        "stages.localize.steps",
        "learning_rate",
        "pretext_check='warn'",
    )
    assert all(part in text for part in parts), text
    pretext.check_parent(segment, "warn")
    pretext.check_parent(segment, "warn")  # warned once per pretext run
    assert capsys.readouterr().err.count("warning: pretext stage 'localize'") == 1
    pretext.check_parent(planned[1].runs[0], "stop")  # scratch starts from nothing


def test_collect_and_report_lines(tiny_study, tmp_path):
    planned = plan_lib.plan(tiny_study, str(tmp_path))
    parents = pretext.pretext_runs(planned)
    assert [r.stage for r in parents] == ["localize", "localize"]  # one per fold
    _write(parents[0], _result("center_error", 4.0, {"mean": 6.0, "centre": 8.0}, True))
    _write(parents[1], _result("center_error", 10.0, {"mean": 8.0, "centre": 6.0}, False))
    (row,) = pretext.collect(planned, str(tmp_path))
    assert row["mean"] == 7.0 and row["baselines"] == {"mean": 7.0, "centre": 7.0}
    assert row["beats"] == 1 and row["failing"] == ["fold_1/seed_0/localize"]
    lines = pretext.report_lines([row], "warn")
    warning = "trivial baseline: localize (1 of 2); the study went on (pretext_check='warn')"
    assert lines[0].startswith("**Warning: pretext runs did not beat their " + warning)
    assert (
        "| localize | center_error | 2 | 7.000 ± 4.243 | mean 7.000; centre 7.000 | 1/2 |" in lines
    )
    assert (
        "pretext_check='stop' their dependants are not trained"
        in pretext.report_lines([row], "stop")[0]
    )
    row.update(failing=[], beats=2)
    assert pretext.report_lines([row], "stop")[0] == "## Pretext health"
    assert pretext.report_lines([], "stop") == []


def test_a_failing_pretext_stops_the_study_then_warn_goes_on(tmp_path):
    """One RMSprop step at learning rate 0.05 throws the localizer's outputs thousands of pixels
    off (deterministically far worse than the ~5 px baselines)."""
    workdir = tmp_path / "study"
    sabotage = ("--config.stages.localize.steps=1", "--config.protocol.run_folds=1",
                "--config.stages.localize.optimizer.learning_rate=0.05")  # fmt: skip
    proc = jaxseg_main(workdir, "--config.pretext_check=stop", *sabotage)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "pretext stage 'localize' (" in errors[0] and "vs image_centre" in errors[0]
    finished = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("result.json"))
    assert finished == ["fold_0/seed_0/localize/result.json"]  # no dependant trained
    proc = jaxseg_main(workdir, "--config.pretext_check=warn", *sabotage)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: pretext stage 'localize'" in proc.stderr
    report = (workdir / "report.md").read_text().splitlines()
    assert report[0] == "# Study report"
    assert report[2].startswith("**Warning: pretext runs did not beat their trivial baseline")
    assert "## Pretext health" in report[:6]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["pretext_health"][0]["beats"] == 0
    assert (workdir / "figures" / "pretext_health.png").exists()


def test_a_shard_stops_at_a_failing_pretext_before_its_dependants(tiny_study, tmp_path):
    """``--shard`` workers go through ``train_families``: the family of a finished, failing
    pretext stops before its first dependant trains (nothing is trained here)."""
    planned = plan_lib.plan(tiny_study, str(tmp_path))
    family = shards.families(planned)[0]
    bad = _result("center_error", 9.0, {"image_centre": 5.0}, False)
    _write(family[0].runs[0], bad)
    with pytest.raises(pretext.PretextFailedError, match="fold_0/seed_0/localize"):
        run_lib.train_families([family], run_lib.Datasets(), "stop")
    assert not os.path.exists(family[0].runs[1].workdir)
