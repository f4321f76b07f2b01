"""Metric writing without TensorFlow: TensorBoard event files (tensorboardX) plus a JSON-lines
file that scripts and studies read back."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tensorboardX import SummaryWriter


class MetricWriter:
    """Writes {name: scalar} at a step to ``<workdir>/tb`` and ``<workdir>/metrics.jsonl``."""

    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self._tb = SummaryWriter(os.path.join(workdir, "tb"))
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self._tb.add_scalar(name, float(value), step)
        self._jsonl.write(json.dumps({"step": step, **{k: float(v) for k, v in scalars.items()}}))
        self._jsonl.write("\n")
        self._jsonl.flush()

    def close(self) -> None:
        self._tb.close()
        self._jsonl.close()


class NullMetricWriter:
    """A MetricWriter that writes nothing: that of the processes other than process 0 of a
    multi-process run (process 0 writes the shared workdir's metrics)."""

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def read_jsonl(path: str) -> list[dict]:
    """All records of a metrics.jsonl file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
