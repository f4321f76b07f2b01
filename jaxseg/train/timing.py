"""Where a run's wall time goes: seconds per phase, summed over the run's attempts.

Phases: ``startup`` (data arrays, model initialisation, checkpoint managers), ``compile`` (XLA
compilation of the train and eval steps), ``train`` (optimizer steps, waited for), ``evaluate``
(validation and held-out evaluation on the device), ``host_metrics`` (the task's metrics that
are computed on the host from the predictions: Hausdorff distances, boundaries),
``checkpoint_write`` and ``checkpoint_read`` (orbax, checksums included; the parent's subtrees
are a read), and ``other`` (the rest of the run's wall time: logging, result files). Only
``train`` is training; a study reports the sums (``studies.time_report``) so its non-training
share is visible.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

PHASES = (
    "startup", "compile", "train", "evaluate", "host_metrics", "checkpoint_write",
    "checkpoint_read",
)  # fmt: skip
OTHER = "other"


class Clock:
    """Seconds per phase of one run attempt; ``with clock("train"): ...`` adds the block's wall
    time to that phase (nested blocks count once, in the innermost phase)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._open: list[str] = []  # the phases entered, innermost last
        self._since = self.start  # the last phase boundary

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if phase not in self.seconds:
            raise ValueError(f"unknown phase {phase!r}; phases are {PHASES}")
        self._pause()
        self._open.append(phase)
        self._since = time.perf_counter()
        try:
            yield
        finally:
            self._pause()
            self._open.pop()
            self._since = time.perf_counter()

    def _pause(self) -> None:
        """Credit the time since the last boundary to the innermost open phase."""
        if self._open:
            self.seconds[self._open[-1]] += time.perf_counter() - self._since

    def totals(self) -> dict[str, float]:
        """{phase: seconds} with ``other`` = wall time since creation − the phases."""
        wall = time.perf_counter() - self.start
        return {**self.seconds, OTHER: max(wall - sum(self.seconds.values()), 0.0)}


def add(*timings: Mapping[str, float]) -> dict[str, float]:
    """The phase-wise sum of timing dicts (a phase missing from one counts 0)."""
    out: dict[str, float] = {}
    for timing in timings:
        for phase, seconds in timing.items():
            out[phase] = out.get(phase, 0.0) + float(seconds)
    return out
