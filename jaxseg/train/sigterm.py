"""SIGTERM during training: the trainer checkpoints the current step and raises ``Preempted``,
so a scheduler's preemption costs at most the step in flight and the same command resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np


class Preempted(RuntimeError):  # noqa: N818 (the event, not a failure of the run)
    """``train_and_evaluate`` got SIGTERM during its loop: the state of ``step`` (the step being
    trained when the signal came; with several processes, the next logging step) is
    checkpointed in ``<workdir>/checkpoints`` and nothing else was written (no ``result.json``);
    the same call resumes the run. A launcher should exit with ``EXIT_CODE`` (143 = 128 +
    SIGTERM), as a process killed by SIGTERM would, so that schedulers requeue the job
    (``jaxseg.main``'s part)."""

    EXIT_CODE = 143

    def __init__(self, step: int, workdir: str):
        super().__init__(
            f"preempted (SIGTERM) at step {step}: checkpoint saved under "
            f"{os.path.join(workdir, 'checkpoints')}; run the same command again to resume"
        )
        self.step = step
        self.workdir = workdir


class SigtermFlag:
    """Whether SIGTERM arrived while ``catch_sigterm`` was active."""

    def __init__(self) -> None:
        self.received = False

    def handler(self, signum: int, frame: Any) -> None:
        self.received = True

    def agreed(self, sync_point: bool) -> bool:
        """Whether to stop now: SIGTERM arrived. With several processes, every process must
        stop at the same step, so they only agree (a collective: any process got it) at sync
        points, the logging steps, where the host waits for the device anyway."""
        if jax.process_count() == 1:
            return self.received
        if not sync_point:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.received))
        return bool(np.max(flags))


@contextlib.contextmanager
def catch_sigterm() -> Iterator[SigtermFlag]:
    """Within the block SIGTERM only sets the yielded flag; the previous handler is restored on
    exit (one installed outside Python, e.g. by JAX's multi-process runtime, cannot be: the
    default action is restored then). Outside the main thread, where handlers cannot be
    installed, nothing is and the flag stays False."""
    flag = SigtermFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, flag.handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
