"""The best validated state of a run, written with the periodic checkpoint instead of at every
improvement.

A stage validated every 25 steps improves at most of its validations while it learns; writing
each improvement (a synchronous orbax save of the whole state, ~1 s) took 13 % of a study's time
(IDRiD method 1, docs/results.md). ``BestState.keep`` copies the state on its device instead;
``flush`` writes the newest kept state to ``checkpoints_best/`` and is called where the loop
writes its latest checkpoint (every ``checkpoint_every`` steps, the last step, an early stop,
SIGTERM), before the early-stopping record that names it. A run killed between two flushes
resumes from the latest checkpoint with that record and validates again the steps it lost;
training is deterministic, so it finds the same best.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg import checkpoint


@dataclasses.dataclass
class BestState:
    """The ``checkpoints_best`` manager and the best state kept since its last write."""

    manager: Any  # orbax CheckpointManager, max_to_keep=1
    step: int | None = None  # of the kept state; None when nothing waits to be written
    state: Any = None

    def keep(self, step: int, state: Any) -> None:
        """Hold a copy of ``state`` (its own buffers: the training step donates ``state``)."""
        self.step, self.state = step, jax.tree.map(jnp.copy, state)

    def flush(self) -> None:
        """Write the kept state, if any, and release it."""
        if self.step is not None:
            checkpoint.save(self.manager, self.step, self.state)
            self.step, self.state = None, None

    def close(self) -> None:
        self.manager.close()
