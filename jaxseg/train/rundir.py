"""A run directory: what one stage run writes, how it is recognised and read back.

Layout of ``<run>/``: ``config.json`` (the run's config; a run of another config is refused),
``checkpoints/`` and ``checkpoints_best/`` (orbax), ``early_stopping.json``, ``metrics.jsonl`` and
``tb/``, ``transfer.json`` (what was loaded from the parent run) and ``result.json`` (present only
when the run finished). The trainer, the studies and every reader of finished runs go through
this module, so the layout is written down once. With several processes every one reads and
process 0 alone writes.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import ml_collections

from jaxseg import atomic, checkpoint
from jaxseg.train import distributed

CONFIG = "config.json"
RESULT = "result.json"
TRANSFER = "transfer.json"
EARLY_STOPPING = "early_stopping.json"
CHECKPOINTS = "checkpoints"
BEST = "checkpoints_best"
# Everything a run writes: ``clear`` deletes these (other files in the directory stay).
OUTPUTS = (CHECKPOINTS, BEST, RESULT, "metrics.jsonl", EARLY_STOPPING, "tb", TRANSFER, CONFIG)


def config_text(config: ml_collections.ConfigDict) -> str:
    """The canonical JSON a run records of its config (sorted keys)."""
    return config.to_json_best_effort(sort_keys=True, indent=1)


def check(config: ml_collections.ConfigDict, run: str) -> None:
    """Raise if ``run`` holds a run of a different config."""
    path = os.path.join(run, CONFIG)
    if os.path.exists(path):
        with open(path) as f:
            if f.read() != config_text(config):
                raise ValueError(
                    f"{run} holds a run with a different config ({path}); "
                    "use a new --workdir, or delete that one to start over"
                )


def record(config: ml_collections.ConfigDict, run: str) -> None:
    """Refuse a directory holding a run of another config, else record ``config`` in it."""
    check(config, run)
    if distributed.is_primary():
        os.makedirs(run, exist_ok=True)
        atomic.write_text(os.path.join(run, CONFIG), config_text(config))


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
            message = f"{path} is not valid JSON ({err}); delete it to redo the run"
            raise ValueError(message) from None


def write_json(run: str, name: str, obj: Any) -> None:
    """Write ``<run>/<name>`` atomically, from process 0 only."""
    if distributed.is_primary():
        atomic.write_json(os.path.join(run, name), obj)


def read_result(run: str) -> dict[str, Any] | None:
    """The result of a finished run, or None."""
    return read_json(run, RESULT)


def checkpoints(run: str) -> str:
    """The run's checkpoint folder (the latest steps; ``best`` holds the best validated one)."""
    return os.path.join(run, CHECKPOINTS)


def best(run: str) -> str:
    """The folder of the run's best validation checkpoint (kept only with a validation split)."""
    return os.path.join(run, BEST)
