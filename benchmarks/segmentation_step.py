"""The trainer's segmentation step on random data, compiled once: what the benchmarks time.

``build`` gives jaxseg's own train step (``jaxseg.train.steps.make_train_step``: the task's loss,
Adam, data-parallel over all local devices, state donated) for a model config, with XLA's FLOP
count and buffer plan, so ``train_step.py`` and ``vs_pytorch.py`` time the same thing.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np


def random_batch(batch: int, size: int, rank: int, seed: int) -> dict[str, np.ndarray]:
    """Images [B,*(size,)*rank,1] ~ N(0,1), binary masks of the same shape, unit weights."""
    rng = np.random.default_rng(seed)
    shape = (batch, *(size,) * rank, 1)
    return {
        "image": rng.standard_normal(shape, np.float32),
        "mask": (rng.random(shape) > 0.5).astype(np.float32),
        "weight": np.ones(batch, np.float32),
    }


def peak_bytes(compiled: Any) -> int:
    """XLA's planned peak of one device: arguments + outputs − donated aliases + temporaries."""
    m = compiled.memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
    )


@dataclasses.dataclass
class Step:
    """A compiled train step with its state; calling it runs one step and waits for it."""

    model: Any
    task: Any
    tx: Any
    host: dict[str, np.ndarray]  # the batch on the host
    batch: dict  # the batch on the devices
    state: dict
    acc: Any
    compiled: Any
    flops: float  # XLA's count for the whole step (all devices)
    compile_s: float
    devices: int

    def __call__(self) -> None:
        import jax

        self.state, self.acc = self.compiled(self.state, self.acc, self.batch)
        jax.block_until_ready(self.state)

    @property
    def params(self) -> int:
        import jax

        return sum(int(x.size) for x in jax.tree.leaves(self.state["params"]))

    @property
    def peak_mib(self) -> float:
        return peak_bytes(self.compiled) / 2**20


def build(
    model_cfg: Any,
    *,
    size: int,
    batch: int,
    rank: int = 2,
    loss: str = "dice",
    learning_rate: float = 1e-4,
    seed: int = 0,
) -> Step:
    """The step of ``models.build(model_cfg, 'pixels', 1)`` on a random batch, compiled."""
    import jax
    import optax

    from jaxseg import models, tasks
    from jaxseg.train import mesh as mesh_lib
    from jaxseg.train.state import TrainMetrics
    from jaxseg.train.steps import make_train_step, new_state

    task = tasks.build("segmentation", loss)
    model = models.build(model_cfg, task.head, task.outputs)
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(batch, mesh, "--batch")
    host = random_batch(batch, size, rank, seed)
    variables = dict(model.init(jax.random.PRNGKey(seed), host["image"][:1]))
    variables.setdefault("batch_stats", {})
    tx = optax.adam(learning_rate)
    replicated = mesh_lib.replicated(mesh)
    step = jax.jit(
        make_train_step(model, task, tx),
        in_shardings=(replicated, replicated, mesh_lib.batch_sharded(mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=(0, 1),
    )
    state = jax.device_put(new_state(variables, tx, seed=seed), replicated)
    acc = jax.device_put(TrainMetrics.empty(), replicated)
    device_batch = mesh_lib.put_batch(host, mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, acc, device_batch).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA counts one device's share of a sharded program: the step's FLOPs are that × devices
    flops = float(cost.get("flops", float("nan"))) * mesh.devices.size if cost else float("nan")
    return Step(
        model=model,
        task=task,
        tx=tx,
        host=host,
        batch=device_batch,
        state=state,
        acc=acc,
        compiled=compiled,
        flops=flops,
        compile_s=compile_s,
        devices=mesh.devices.size,
    )
