"""Run a study: every planned run in order (finished ones are read back, not retrained), then
``results.csv``, the summary table on stdout and ``report.md`` (with ``figures/`` and
``machine.json``) in the workdir; or one shard of the runs next to other workers (``run_shard``);
or rebuild the report from the finished runs (``report_study``)."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import ml_collections
from absl import logging

from jaxseg import atomic, data, locking
from jaxseg.studies import plan as plan_lib
from jaxseg.studies import preflight, pretext, time_report
from jaxseg.studies import results as results_lib
from jaxseg.studies import shards as shards_lib
from jaxseg.studies import workdir as workdir_lib
from jaxseg.studies.report import write_report
from jaxseg.train import distributed, rundir
from jaxseg.train.loop import train_and_evaluate


class Datasets:
    """Each data config loaded once: ``datasets(data_config) -> Dataset`` (stages may train on
    their own data, e.g. another structure or source)."""

    def __init__(self) -> None:
        self.loaded: dict[str, data.Dataset] = {}

    def __call__(self, config: ml_collections.ConfigDict) -> data.Dataset:
        key = config.to_json_best_effort(sort_keys=True)
        if key not in self.loaded:
            self.loaded[key] = data.load(config)
        return self.loaded[key]


def run_study(
    config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False
) -> list[dict]:
    """Train/evaluate all runs of ``config`` under ``workdir``; returns the tidy result rows.

    Finished runs are read back, never retrained or rewritten, unless ``overwrite`` (then every
    run of the study is cleared and trained again). A workdir holding the same study with other
    budgets, seeds or folds is extended; another study, a directory of other files or report
    files jaxseg did not write are refused (``studies.workdir``). Everything is checked before
    anything is written; one process at a time holds the workdir. The report ends with where the
    time went (``time_report``).
    """
    start = time.perf_counter()
    workdir_lib.check(workdir)
    config = config if overwrite else workdir_lib.extend(config, workdir)
    planned, datasets = check_study(config, workdir, overwrite)
    with study_lock(workdir):
        write_study_config(config, workdir)
        setup_s = time.perf_counter() - start
        rows = train_all(planned, datasets, overwrite, pretext.mode(config))
        write_study_report(config, workdir, planned, rows, datasets, (start, setup_s))
    return rows


def run_shard(
    config: ml_collections.ConfigDict, workdir: str, shard: int, count: int
) -> list[plan_lib.Run]:
    """Train shard ``shard`` of ``count`` of the study (``studies.shards``: whole families of
    chains) next to the other shards' workers; returns the runs skipped as busy.

    Checked as ``run_study`` checks. The study lock is held only to read and to record the
    study config (every worker writes the same): a sequential study started meanwhile stops at
    the first run a worker holds, and a worker is refused while a sequential study holds the
    workdir. A run held by another process is skipped with its family. The last worker to
    finish writes the report; the others say how many runs have no result yet (``jaxseg
    report`` rebuilds it any time).
    """
    start = time.perf_counter()
    with study_lock(workdir, wait=STUDY_LOCK_WAIT):  # not while another writes the report
        workdir_lib.check(workdir)
        config = workdir_lib.extend(config, workdir)
    planned, datasets = check_study(config, workdir, overwrite=False)
    with study_lock(workdir, wait=STUDY_LOCK_WAIT):
        write_study_config(config, workdir)
    setup_s = time.perf_counter() - start
    families = shards_lib.families(shards_lib.share(planned, shard, count))
    print(
        f"shard {shard}/{count}: {sum(len(shards_lib.runs(f)) for f in families)} of "
        f"{len(shards_lib.runs(planned))} runs ({len(families)} families of chains)",
        flush=True,
    )
    busy = train_families(families, datasets, pretext.mode(config))
    if busy:
        print(
            f"shard {shard}/{count}: skipped {len(busy)} runs held by other processes, and the "
            "runs of their families:",
            file=sys.stderr,
        )
        for run in busy:
            print(f"  busy: {os.path.relpath(run.workdir, workdir)}", file=sys.stderr)
    rows, missing = finished_rows(planned)
    if missing:
        print(
            f"shard {shard}/{count} done; {len(missing)} runs of other shards"
            f"{' (or busy)' * bool(busy)} have no result yet: run `jaxseg report {workdir}` when "
            "they finish",
            flush=True,
        )
        return busy
    try:
        with study_lock(workdir):
            workdir_lib.check(workdir)
            write_study_report(config, workdir, planned, rows, datasets, (start, setup_s))
    except locking.BusyError:  # another worker (or `jaxseg report`) is writing it
        print(f"shard {shard}/{count} done; the report is written by another process", flush=True)
    return busy


def train_families(
    families: list[list[plan_lib.Chain]], datasets: Datasets, check: str = "stop"
) -> list[plan_lib.Run]:
    """Every run of each family in order; a family with a run another process holds is left
    for it (its dependants need that run). ``check``: ``pretext_check`` (``studies.pretext``).
    Returns the busy runs."""
    busy = []
    for family in families:
        for run in shards_lib.runs(family):
            try:
                train_run(run, datasets, overwrite=False, check=check)
            except locking.BusyError as err:
                print(f"skipping its family: {err}", file=sys.stderr, flush=True)
                busy.append(run)
                break
    return busy


def write_study_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Record the study's config in ``workdir`` (``studies.workdir``)."""
    study_config = os.path.join(workdir, workdir_lib.STUDY_CONFIG)
    atomic.write_text(study_config, rundir.config_text(config))


def write_study_report(
    config: ml_collections.ConfigDict,
    workdir: str,
    planned: list[plan_lib.Chain],
    rows: list[dict],
    datasets: Datasets,
    clock: tuple[float, float],
) -> None:
    """``results.csv``, the report, the explain figures when enabled, where the time went
    (``clock``: the command's ``perf_counter`` start and set-up seconds), and the manifest."""
    reporting = time.perf_counter()
    report = write_results(config, workdir, rows, datasets(config.data))
    if "explain" in config and config.explain.enabled:
        link_explain(workdir, report, explain_first_split(config, workdir, planned))
    record_time(workdir, planned, clock[1], reporting, clock[0])
    workdir_lib.record_outputs(workdir)


def record_time(
    workdir: str, planned: list[plan_lib.Chain], setup_s: float, reporting: float, start: float
) -> None:
    """``time_report.record`` of the study's runs; ``reporting`` and ``start`` are the
    ``perf_counter`` times the report and the command started."""
    runs = [run.workdir for chain in planned for run in chain.runs]
    now = time.perf_counter()
    time_report.record(workdir, time_report.summary(runs, setup_s, now - reporting, now - start))


def report_study(workdir: str) -> list[plan_lib.Run]:
    """Rebuild ``results.csv``, ``summary.json``, ``figures/`` and ``report.md`` of the study in
    ``workdir`` from its finished runs, training nothing; returns the runs without a result.

    A chain (arm × fold × seed × budget) is reported when all its runs finished; the missing
    runs are listed on stderr. The explain figures are linked when present, not redrawn. Raises
    ValueError when ``workdir`` holds no study or no chain finished.
    """
    start = time.perf_counter()
    recorded = workdir_lib.recorded(workdir)
    if recorded is None:
        raise ValueError(f"{workdir} is not a study workdir (no {workdir_lib.STUDY_CONFIG})")
    config = ml_collections.ConfigDict(recorded)
    planned = plan_lib.plan(config, workdir)
    rows, missing = finished_rows(planned)
    runs = {run.workdir for chain in planned for run in chain.runs}
    if not rows:
        raise ValueError(
            f"no chain of runs in {workdir} finished ({len(missing)} of {len(runs)} runs have no "
            "result); nothing to report"
        )
    print_missing(workdir, missing, len(runs))
    with locking.hold(workdir):
        workdir_lib.check(workdir)
        reporting = time.perf_counter()
        report = write_results(config, workdir, rows, data.load(config.data))
        index = os.path.join("explain", "index.md")
        if (
            "explain" in config
            and config.explain.enabled
            and os.path.exists(os.path.join(workdir, index))
        ):
            link_explain(workdir, report, index)
        record_time(workdir, planned, reporting - start, reporting, start)
        workdir_lib.record_outputs(workdir)
    return missing


def finished_rows(planned: list[plan_lib.Chain]) -> tuple[list[dict], list[plan_lib.Run]]:
    """The result rows of the chains whose runs all finished (as ``train_all`` builds them), and
    the runs without a result (each once)."""
    rows, missing = [], {}
    for chain in planned:
        results = [rundir.read_result(run.workdir) for run in chain.runs]
        missing |= {r.workdir: r for r, res in zip(chain.runs, results, strict=True) if res is None}
        if all(res is not None for res in results):
            rows += results_lib.rows_for(chain.arm, chain.runs, results)
    return rows, list(missing.values())


def print_missing(workdir: str, missing: list[plan_lib.Run], total: int, shown: int = 10) -> None:
    """On stderr: how many runs have no result and the first ``shown`` of them."""
    if not missing:
        return
    print(
        f"{len(missing)} of {total} runs have no result; the report leaves out the chains that "
        "need them:",
        file=sys.stderr,
    )
    for run in missing[:shown]:
        print(f"  missing: {os.path.relpath(run.workdir, workdir)}", file=sys.stderr)
    if len(missing) > shown:
        print(f"  ... and {len(missing) - shown} more", file=sys.stderr)


def write_results(
    config: ml_collections.ConfigDict, workdir: str, rows: list[dict], dataset: data.Dataset
) -> str:
    """``results.csv`` and the report (``write_report``) from ``rows``; returns the report."""
    results_lib.write_csv(rows, os.path.join(workdir, "results.csv"))
    return write_report(config, workdir, rows, dataset)


def link_explain(workdir: str, report: str, index: str) -> None:
    """``report.md``: ``report`` with a section linking the explain index (relative path)."""
    what = f"\n## What transferred\n\nSee [{index}]({index}).\n"
    atomic.write_text(os.path.join(workdir, "report.md"), report + what)


def check_study(
    config: ml_collections.ConfigDict, workdir: str, overwrite: bool
) -> tuple[list[plan_lib.Chain], Datasets]:
    """The planned runs and their datasets, after every run was checked (config, data, shapes,
    transfers; a finished run of another config in its directory is refused)."""
    results_lib.report_keys(config)  # compare pairs and correction, before any training
    pretext.mode(config)
    planned = plan_lib.plan(config, workdir)
    for chain in planned:
        for run in chain.runs:  # a finished run of another config must not pass for this one's
            if not overwrite:
                rundir.check(run.config, run.workdir)
    datasets = Datasets()
    preflight.check_study(planned, datasets)
    return planned, datasets


STUDY_LOCK_WAIT = 30.0  # seconds a shard worker waits for another's brief hold of the study lock


def study_lock(workdir: str, wait: float = 0.0) -> contextlib.AbstractContextManager:
    """The workdir's lock for the study (process 0; the others follow its lead)."""
    if not distributed.is_primary():
        os.makedirs(workdir, exist_ok=True)
        return contextlib.nullcontext()
    return locking.hold(workdir, f"--workdir={workdir}", wait)


def train_all(
    planned: list[plan_lib.Chain], datasets: Datasets, overwrite: bool, check: str = "stop"
) -> list[dict]:
    """Every run in order (a run shared by chains once); the tidy result rows. ``check``:
    ``pretext_check`` (``studies.pretext``)."""
    done: dict[str, dict] = {}
    rows = []
    for chain in planned:
        for run in chain.runs:
            if run.workdir not in done:
                done[run.workdir] = train_run(run, datasets, overwrite, check)
        results = [done[run.workdir] for run in chain.runs]
        rows += results_lib.rows_for(chain.arm, chain.runs, results)
    return rows


def train_run(run: plan_lib.Run, datasets: Datasets, overwrite: bool, check: str = "stop") -> dict:
    """The result of ``run``: read back when finished (unless ``overwrite``), else trained.
    First the run it starts from must have beaten its trivial baseline (``check`` 'stop':
    ``pretext.PretextFailedError`` otherwise; 'warn': a warning)."""
    pretext.check_parent(run, check)
    result = None if overwrite else rundir.read_result(run.workdir)
    if result is not None:
        return result
    logging.info("run %s", run.workdir)
    parent = run.parent.workdir if run.parent is not None else None
    dataset = datasets(run.config.data)
    return train_and_evaluate(run.config, run.workdir, dataset, parent=parent, overwrite=overwrite)


def explain_first_split(config: ml_collections.ConfigDict, workdir: str, planned) -> str:
    """Figures for every stage run of the first fold, seed and budget, labelled by stage;
    returns the index path relative to ``workdir``."""
    from jaxseg.explain.report import explain_runs  # matplotlib only when asked for

    first = planned[0].runs[-1]
    runs = {}
    for chain in planned:
        for run in chain.runs:
            if (
                run.fold == first.fold
                and run.seed == first.seed
                and run.budget in (0, first.budget)
            ):
                runs.setdefault(run.stage, run.workdir)
    e = config.explain
    explain_runs(
        runs, os.path.join(workdir, "explain"), e.layers, e.num_images, e.channels, e.steps
    )
    return os.path.join("explain", "index.md")
