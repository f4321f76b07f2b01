"""Tests for jaxseg.train.timing (seconds per phase of a run) and jaxseg.studies.time_report
(their sums in a study's report)."""

import json

import pytest

from jaxseg.studies import time_report
from jaxseg.train import rundir, timing


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def now(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    return clock


def test_nested_phases_count_once_in_the_innermost(now):
    clock = timing.Clock()
    with clock("train"):
        now.t = 2.0
        with clock("checkpoint_write"):
            now.t = 5.0
        now.t = 6.0
        with clock("evaluate"):
            now.t = 6.5
            with clock("compile"):
                now.t = 9.5
            now.t = 10.0
    now.t = 12.0  # outside every phase: "other"
    totals = clock.totals()
    assert totals["train"] == pytest.approx(3.0)  # 0-2 and 5-6
    assert totals["checkpoint_write"] == pytest.approx(3.0)
    assert totals["evaluate"] == pytest.approx(1.0)  # 6-6.5 and 9.5-10
    assert totals["compile"] == pytest.approx(3.0)
    assert totals["other"] == pytest.approx(2.0)
    assert sum(totals.values()) == pytest.approx(12.0)
    assert set(totals) == {*timing.PHASES, timing.OTHER}


def test_a_phase_left_by_an_exception_is_still_counted(now):
    clock = timing.Clock()
    with pytest.raises(RuntimeError), clock("train"):
        now.t = 4.0
        raise RuntimeError
    assert clock.totals()["train"] == pytest.approx(4.0)


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown phase 'training'"), timing.Clock()("training"):
        pass


def test_add_sums_phase_wise():
    assert timing.add({"train": 1.0, "compile": 2.0}, {"train": 0.5, "other": 1}) == {
        "train": 1.5, "compile": 2.0, "other": 1.0,
    }  # fmt: skip
    assert timing.add() == {}


def test_run_timing_accumulates_over_attempts(tmp_path):
    run = str(tmp_path)
    rundir.add_timing(run, {"train": 1.0, "compile": 4.0})
    rundir.add_timing(run, {"train": 2.0, "checkpoint_read": 0.5})  # the resumed attempt
    saved = json.loads((tmp_path / rundir.TIMING).read_text())
    assert saved == {"train": 3.0, "compile": 4.0, "checkpoint_read": 0.5}


def test_study_time_sums_distinct_runs_and_reports_shares_of_the_total(tmp_path):
    runs = [str(tmp_path / name) for name in ("a", "b", "untimed")]
    for run in runs:
        (tmp_path / run).mkdir()
    rundir.add_timing(runs[0], {"train": 6.0, "compile": 2.0})
    rundir.add_timing(runs[1], {"train": 3.0, "startup": 1.0})
    time = time_report.summary([*runs, runs[0]], setup_s=1.0, report_s=2.0, wall_s=18.0)
    assert time["runs"] == {"train": 9.0, "compile": 2.0, "startup": 1.0}  # runs[0] once
    assert time["timed_runs"] == 2
    assert time["total"] == pytest.approx(15.0)  # 12 s of runs, 1 s set-up, 2 s report
    assert time["training_share"] == pytest.approx(0.6)  # of the total, not of the 18 s wall
    (tmp_path / "summary.json").write_text(json.dumps({"final": [1]}))
    (tmp_path / "report.md").write_text("# Study\n\ntext\n")
    time_report.record(str(tmp_path), time)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final"] == [1] and summary["time"] == time
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Study\n\ntext\n\n## Where the time went")
    assert "training steps are 60.0 % of it" in report
    assert "| train | 9.0 | 60.0 |" in report and "| report | 2.0 | 13.3 |" in report
    sharded = time_report.summary(runs, setup_s=1.0, report_s=2.0, wall_s=4.0)  # workers' runs
    assert sharded["training_share"] == pytest.approx(0.6)  # still a share, not 225 % of wall
