"""jaxseg.train.rundir: a run directory recognises its config, refuses another one, reads a
damaged file as one error naming it, and lets a failed run start over under a new config (the
NaN error's own advice: lower the learning rate, same command)."""

import json
import os

import pytest

from jaxseg.train import rundir
from jaxseg.train.loop import train_and_evaluate


def test_record_refuses_another_config_and_names_the_file(tiny_run, tmp_path):
    run = tiny_run(tmp_path)
    rundir.record(run.config, run.workdir)
    rundir.record(run.config, run.workdir)  # the same config: fine
    other = run.config.copy_and_resolve_references()
    other.steps = 7
    assert rundir.differs(other, run.workdir)
    config_json = os.path.join(run.workdir, rundir.CONFIG)
    with pytest.raises(ValueError, match=f"holds a run with a different config \\({config_json}"):
        rundir.record(other, run.workdir)


def test_a_damaged_json_file_is_one_error_naming_it(tmp_path):
    (tmp_path / rundir.RESULT).write_text('{"metrics": {"di')
    with pytest.raises(ValueError, match=f"{tmp_path / rundir.RESULT} is not valid JSON"):
        rundir.read_result(str(tmp_path))
    assert rundir.read_result(str(tmp_path / "none")) is None


def test_nan_marks_the_run_failed_and_a_lower_learning_rate_starts_it_over(
    tiny_run, tiny_fundus, tmp_path, capsys
):
    run = tiny_run(tmp_path, "scratch")
    bad = run.config.copy_and_resolve_references()
    bad.optimizer.learning_rate = 1e30
    with pytest.raises(FloatingPointError, match=r"lower optimizer\.learning_rate"):
        train_and_evaluate(bad, run.workdir, tiny_fundus)
    with open(os.path.join(run.workdir, rundir.FAILED)) as f:
        failed = json.load(f)
    assert "NaN/inf" in failed["reason"]
    rundir.check(run.config, run.workdir)  # another config is allowed on a failed run
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    assert "the failed run's outputs are cleared" in capsys.readouterr().out
    assert result["steps"] == run.config.steps
    assert not os.path.exists(os.path.join(run.workdir, rundir.FAILED))
    # finished now: another config is refused again
    with pytest.raises(ValueError, match="holds a run with a different config"):
        rundir.check(bad, run.workdir)
