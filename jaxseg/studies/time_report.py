"""Where a study's time went: each run's seconds per phase (``train.timing``, its
``timing.json``) summed, beside the study's own set-up and report writing; the last section of
``report.md`` and ``summary.json``'s ``time``.

Shares are of the phases' total, not of the wall time: the wall time is that of the command
which trained (or reported) the study, while the phase sums also count runs that parallel shard
workers or an earlier command finished, so on a sharded, extended or resumed study they exceed
it (a share of the wall would then pass 100 %).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from jaxseg import atomic
from jaxseg.train import rundir, timing

TRAINING = "train"


def run_sums(runs: Iterable[str]) -> tuple[dict[str, float], int]:
    """Phase-wise sums over the distinct run directories that have a ``timing.json``, and how
    many of them had one."""
    found = [t for t in (rundir.read_json(r, rundir.TIMING) for r in dict.fromkeys(runs)) if t]
    return timing.add(*found), len(found)


def summary(runs: Iterable[str], setup_s: float, report_s: float, wall_s: float) -> dict:
    """``summary.json``'s ``time``: run phase sums, study set-up and report seconds, the wall
    time, the phases' total (runs + set-up + report) and the share of it that was training
    steps."""
    sums, timed = run_sums(runs)
    total = sum(sums.values()) + setup_s + report_s
    share = sums.get(TRAINING, 0.0) / total if total > 0 else float("nan")
    return {
        "runs": sums,
        "timed_runs": timed,
        "study_setup": setup_s,
        "report": report_s,
        "wall": wall_s,
        "total": total,
        "training_share": share,
    }


def markdown(time: dict) -> str:
    """The report section: one row per phase with seconds and share of the phases' total."""
    total = time["total"]
    study = [("study set-up", time["study_setup"]), ("report", time["report"])]
    rows = [*time["runs"].items(), *study]
    lines = [
        "## Where the time went",
        "",
        f"Wall time of this command {time['wall']:.1f} s. The phases below total {total:.1f} s, "
        f"run phases summed over {time['timed_runs']} runs (`timing.json` in each run; runs "
        "finished by parallel shard workers or an earlier command count too, so the total can "
        f"exceed the wall time); training steps are {100 * time['training_share']:.1f} % of it.",
        "",
        "| phase | seconds | % of total |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {s:.1f} | {100 * s / total if total else 0:.1f} |" for name, s in rows]
    return "\n".join(lines) + "\n"


def record(workdir: str, time: dict) -> None:
    """Add ``time`` to ``summary.json`` and its section to the end of ``report.md``; print the
    section (after the report the study printed)."""
    path = os.path.join(workdir, "summary.json")
    with open(path) as f:
        saved = json.load(f)
    atomic.write_json(path, {**saved, "time": time})
    report = os.path.join(workdir, "report.md")
    with open(report) as f:
        text = f.read()
    section = markdown(time)
    atomic.write_text(report, text.rstrip("\n") + "\n\n" + section)
    print(section, flush=True)
