"""One training stage: jit-compiled sharded step, loop, logging, checkpoints."""
