"""jaxseg.studies.workdir: which study a workdir holds, extension by budgets/seeds/folds, and the
report files jaxseg may replace (it wrote them, unchanged since)."""

import json
import os

import ml_collections
import pytest

from jaxseg.studies import workdir


def study(**protocol) -> ml_collections.ConfigDict:
    base = dict(folds=5, run_folds=2, budgets=(4, 16), seeds=(0,), split_seed=0)
    return ml_collections.ConfigDict(
        dict(seed=0, data=dict(source="fundus"), protocol={**base, **protocol},
             stages=dict(a=dict(steps=3)), arms=dict(a="a"), compare=("a", "a"))
    )  # fmt: skip


def record(path, config) -> None:
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, workdir.STUDY_CONFIG), "w") as f:
        f.write(config.to_json_best_effort(sort_keys=True, indent=1))


def test_new_or_empty_workdirs_pass_and_other_folders_are_refused(tmp_path):
    workdir.check(str(tmp_path / "new"))
    workdir.check(str(tmp_path))
    (tmp_path / workdir.OWN[-1]).write_text("")  # a lock left behind is no content
    workdir.check(str(tmp_path))
    (tmp_path / "thesis.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty \(thesis.txt\) and holds no jaxseg study"):
        workdir.check(str(tmp_path))


def test_extension_unions_budgets_seeds_and_folds(tmp_path, capsys):
    record(tmp_path, study())
    assert workdir.extend(study(), str(tmp_path)).to_dict() == study().to_dict()
    out = workdir.extend(study(budgets=(8,), seeds=(1,), run_folds=1), str(tmp_path))
    assert tuple(out.protocol.budgets) == (4, 8, 16)
    assert tuple(out.protocol.seeds) == (0, 1)
    assert out.protocol.run_folds == 2
    assert "budgets (4, 16) -> (4, 8, 16); seeds (0,) -> (0, 1)" in capsys.readouterr().out
    changed = study(budgets=(8,))
    changed.stages.a.steps = 5  # judged per run, not here
    changed.compare = (("b", "b"), ("a", "b"))  # report only: a recorded single pair, now two
    changed.correction = "bh"  # report only, and absent from the recorded study
    changed.pretext_check = "warn"  # changes no run either
    assert tuple(workdir.extend(changed, str(tmp_path)).protocol.budgets) == (4, 8, 16)


def test_another_study_is_refused_naming_the_keys(tmp_path):
    record(tmp_path, study())
    other = study(folds=3)
    other.data.source = "kidneys"
    with pytest.raises(ValueError, match=r"differs at data.source, protocol.folds\)"):
        workdir.extend(other, str(tmp_path))


def test_report_files_jaxseg_did_not_write_are_refused(tmp_path):
    record(tmp_path, study())
    (tmp_path / "report.md").write_text("jaxseg's")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(b"png")
    workdir.record_outputs(str(tmp_path))
    assert set(json.loads((tmp_path / workdir.OUTPUTS).read_text())) == {
        "report.md", "figures/a.png", workdir.STUDY_CONFIG
    }  # fmt: skip
    workdir.check(str(tmp_path))
    (tmp_path / "notes.txt").write_text("a user's file jaxseg never writes")
    workdir.check(str(tmp_path))
    (tmp_path / "figures" / "mine.png").write_bytes(b"user")
    with pytest.raises(ValueError, match=r"figures/mine.png was not written by jaxseg"):
        workdir.check(str(tmp_path))
    (tmp_path / "figures" / "mine.png").unlink()
    (tmp_path / "report.md").write_text("edited by hand")
    with pytest.raises(ValueError, match=r"report.md was not written by jaxseg, or was changed"):
        workdir.check(str(tmp_path))
