"""A study's workdir: which study it holds, and what in it jaxseg may write.

- A workdir is new, empty, or holds a study (``study_config.json``); a directory with other
  files is refused, so a mistyped ``--workdir`` never fills a source tree or a home folder.
- The study it holds may be *extended*: the same study with more label budgets, seeds or folds
  run adds runs and rows (the recorded and the new budgets/seeds are both run and reported).
  Changing what only the report shows (``compare``, ``correction``, ``report_metrics``,
  ``explain``) or ``pretext_check`` is allowed; a stage's settings are judged per run (a
  finished run of another config is refused, a failed one started over: ``train.rundir``). Any
  other difference is another study: refused unless ``overwrite``.
- Report files (``REPORT_FILES``, ``figures/``, ``explain/``) are replaced only when
  ``outputs.json`` shows jaxseg wrote them as they are (same SHA-256): a user's own or edited
  file there is refused, never overwritten.
- One process at a time: the study holds ``<workdir>/.lock`` (``jaxseg.locking``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from typing import Any

import ml_collections

from jaxseg import atomic
from jaxseg.train import rundir

STUDY_CONFIG = "study_config.json"
OUTPUTS = "outputs.json"
REPORT_FILES = ("results.csv", "summary.json", "report.md", "machine.json", STUDY_CONFIG)
REPORT_DIRS = ("figures", "explain")
EXTENSIBLE = ("budgets", "seeds", "run_folds")  # protocol keys whose change adds runs
# top-level keys that change no run
REPORT_ONLY = ("compare", "correction", "report_metrics", "explain", "pretext_check")
OWN = (STUDY_CONFIG, OUTPUTS, ".lock")


def recorded(workdir: str) -> dict[str, Any] | None:
    """The study config recorded in ``workdir`` (as JSON), or None."""
    return rundir.read_json(workdir, STUDY_CONFIG)


def _identity(study: dict[str, Any]) -> dict[str, Any]:
    """What makes a study the same study: all but the extensible, report-only and stage keys."""
    out = {k: v for k, v in study.items() if k not in (*REPORT_ONLY, "stages")}
    out["protocol"] = {k: v for k, v in study["protocol"].items() if k not in EXTENSIBLE}
    return out


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def _union(old: list, new: tuple) -> tuple:
    """Old and new values, each once, in numeric order."""
    return tuple(sorted(dict.fromkeys([*old, *new]), key=float))


def extend(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
    """The study to run in ``workdir``: ``config``, with the budgets, seeds and folds the
    workdir already holds added. Raises when ``workdir`` holds another study."""
    old = recorded(workdir)
    if old is None:
        return config
    new = json.loads(config.to_json_best_effort(sort_keys=True))
    differ = _differences(_identity(old), _identity(new))
    if differ:
        raise ValueError(
            f"{workdir} holds another study ({STUDY_CONFIG} differs at {', '.join(differ)}); "
            "use a new --workdir, or --overwrite to run this study there instead"
        )
    out = copy.deepcopy(config)
    protocol, before = out.protocol, old["protocol"]
    protocol.budgets = _union(before["budgets"], tuple(protocol.budgets))
    protocol.seeds = _union(before["seeds"], tuple(protocol.seeds))
    folds = protocol.folds
    protocol.run_folds = max(protocol.run_folds or folds, before["run_folds"] or folds)
    added = [
        f"{k} {tuple(before[k])} -> {tuple(protocol[k])}"
        for k in ("budgets", "seeds")
        if tuple(before[k]) != tuple(protocol[k])
    ]
    if added:
        print(f"extending the study in {workdir}: {'; '.join(added)}", flush=True)
    return out


def report_outputs(workdir: str) -> list[str]:
    """The report files present in ``workdir`` (paths relative to it)."""
    out = [name for name in REPORT_FILES if os.path.isfile(os.path.join(workdir, name))]
    for folder in REPORT_DIRS:
        for root, _, files in os.walk(os.path.join(workdir, folder)):
            out += [os.path.relpath(os.path.join(root, f), workdir) for f in sorted(files)]
    return out


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check(workdir: str) -> None:
    """Refuse a ``workdir`` that is not new, empty or a study's, or whose report files jaxseg
    did not write as they are now (one line naming the first such file)."""
    found = sorted(set(os.listdir(workdir)) - set(OWN)) if os.path.isdir(workdir) else []
    if not found:
        return
    if recorded(workdir) is None:
        raise ValueError(
            f"--workdir={workdir} is not empty ({', '.join(found[:3])}{', ...' * (len(found) > 3)})"
            f" and holds no jaxseg study ({STUDY_CONFIG}); use a new or empty directory"
        )
    manifest = os.path.join(workdir, OUTPUTS)
    if not os.path.exists(manifest):
        return  # a study written before outputs were recorded: its files are jaxseg's
    with open(manifest) as f:
        written = json.load(f)
    for name in report_outputs(workdir):
        if name not in OWN and written.get(name) != _sha256(os.path.join(workdir, name)):
            raise ValueError(
                f"{os.path.join(workdir, name)} was not written by jaxseg, or was changed since; "
                "move it out of the workdir (jaxseg replaces its report files)"
            )


def record_outputs(workdir: str) -> None:
    """Record the SHA-256 of every report file now in ``workdir`` in ``outputs.json``."""
    digests = {name: _sha256(os.path.join(workdir, name)) for name in report_outputs(workdir)}
    atomic.write_json(os.path.join(workdir, OUTPUTS), digests)
