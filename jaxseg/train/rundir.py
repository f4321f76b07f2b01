"""A run directory: what one stage run writes, how it is recognised and read back.

Layout of ``<run>/``: ``config.json`` (the run's config; a run of another config is refused),
``checkpoints/`` and ``checkpoints_best/`` (orbax), ``early_stopping.json``, ``metrics.jsonl`` and
``tb/``, ``transfer.json`` (what was loaded from the parent run), ``timing.json`` (seconds per
phase, ``train.timing``, summed over the run's attempts), ``result.json`` (present only
when the run finished) or ``failed.json`` (the run stopped on a non-finite loss), and ``.lock``
(held by the process training it). The trainer, the studies and every reader of finished runs
go through this module, so the layout is written down once. With several processes every one
reads and process 0 alone writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any

import ml_collections

from jaxseg import atomic, checkpoint, locking
from jaxseg.train import distributed, timing

CONFIG = "config.json"
RESULT = "result.json"
TRANSFER = "transfer.json"
EARLY_STOPPING = "early_stopping.json"
FAILED = "failed.json"
TIMING = "timing.json"
CHECKPOINTS = checkpoint.LATEST
BEST = checkpoint.BEST
# Everything a run writes: ``clear`` deletes these (other files in the directory stay).
OUTPUTS = (
    CHECKPOINTS, BEST, RESULT, FAILED, "metrics.jsonl", EARLY_STOPPING, "tb", TRANSFER, TIMING,
    CONFIG,
)  # fmt: skip


def config_text(config: ml_collections.ConfigDict) -> str:
    """The canonical JSON a run records of its config (sorted keys)."""
    return config.to_json_best_effort(sort_keys=True, indent=1)


def differs(config: ml_collections.ConfigDict, run: str) -> bool:
    """Whether ``run`` records a config other than ``config``."""
    path = os.path.join(run, CONFIG)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        return f.read() != config_text(config)


def check(config: ml_collections.ConfigDict, run: str) -> None:
    """Raise if ``run`` holds a run of a different config, unless that run failed (a run that
    stopped on a non-finite loss is started over under the new config: see ``record``)."""
    if differs(config, run) and not os.path.exists(os.path.join(run, FAILED)):
        raise ValueError(
            f"{run} holds a run with a different config ({os.path.join(run, CONFIG)}); "
            "use a new --workdir, or delete that one to start over"
        )


def record(config: ml_collections.ConfigDict, run: str) -> None:
    """Refuse a directory holding a run of another config, else record ``config`` in it. A
    failed run of another config (``failed.json``: e.g. its loss became NaN and the user
    lowered the learning rate, as the error advised) is cleared first, with one line."""
    check(config, run)
    if differs(config, run):
        print(f"{run}: the failed run's outputs are cleared; starting it over with the new config")
        clear(run)
    elif os.path.exists(os.path.join(run, FAILED)) and distributed.is_primary():
        os.remove(os.path.join(run, FAILED))  # tried again as it was: failed only if it fails again
    if distributed.is_primary():
        os.makedirs(run, exist_ok=True)
        atomic.write_text(os.path.join(run, CONFIG), config_text(config))


def mark_failed(run: str, reason: str) -> None:
    """Record that the run stopped on ``reason`` (it may then be restarted with another
    config; with the same config it resumes from its last checkpoint)."""
    write_json(run, FAILED, {"reason": reason})


def lock(run: str) -> contextlib.AbstractContextManager:
    """Hold the run's lock while training it (process 0; the others follow its lead)."""
    if not distributed.is_primary():
        return contextlib.nullcontext()
    return locking.hold(run, f"run {run}")


def clear(run: str) -> None:
    """Delete what a run wrote into ``run`` (``OUTPUTS``; other files stay)."""

    def delete() -> None:
        for name in OUTPUTS:
            path = os.path.join(run, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)

    checkpoint.on_process_0(delete, f"clear {run}")


def read_json(run: str, name: str) -> Any | None:
    """``<run>/<name>`` parsed, or None when absent; a damaged file is one error naming it."""
    path = os.path.join(run, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); restore or delete it") from None


def write_json(run: str, name: str, obj: Any) -> None:
    """Write ``<run>/<name>`` atomically, from process 0 only."""
    if distributed.is_primary():
        atomic.write_json(os.path.join(run, name), obj)


def read_result(run: str) -> dict[str, Any] | None:
    """The result of a finished run, or None."""
    return read_json(run, RESULT)


def add_timing(run: str, seconds: dict[str, float]) -> None:
    """Add one attempt's seconds per phase to the run's ``timing.json``."""
    write_json(run, TIMING, timing.add(read_json(run, TIMING) or {}, seconds))


def checkpoints(run: str) -> str:
    """The run's checkpoint folder (the latest steps; ``best`` holds the best validated one)."""
    return os.path.join(run, CHECKPOINTS)


def best(run: str) -> str:
    """The folder of the run's best validation checkpoint (kept only with a validation split)."""
    return os.path.join(run, BEST)


def weights(run: str) -> tuple[str, str]:
    """(folder, 'best' | 'latest'): where later readers take the finished run's weights from
    (``checkpoint.run_weights``: the best validated step when the run kept one)."""
    return checkpoint.run_weights(run)
