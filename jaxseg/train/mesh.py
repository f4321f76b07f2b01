"""Data parallelism over every device of every process: batch sharded on axis 'data', state
replicated.

One process (the usual case) uses its local devices; N processes joined by
``jaxseg.train.distributed.initialize_from_env`` share one global mesh. Every process computes
the same global host batch (its indices depend only on (seed, step)) and ``put_batch`` moves
only the rows of this process's devices, so the step sees the same global batch either way.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, process-major: process 0's devices take
    the first rows of each batch, process 1's the next, ... (in one process: its local devices,
    in their usual order).

    On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N splits a process into N devices.
    """
    devices = sorted(jax.devices(), key=lambda d: d.process_index)  # stable: keeps local order
    return Mesh(np.array(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "batch_size") -> None:
    """Raise unless the batch splits evenly over the mesh's devices (of all processes)."""
    n = mesh.devices.size
    if batch_size % n:
        where = f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""
        raise ValueError(
            f"{key}={batch_size} is not divisible by the {n} devices of the mesh{where}; "
            f"use a multiple of {n}"
        )


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Host values or arrays -> arrays replicated on every device of the mesh.

    In one process this is ``jax.device_put(tree, replicated(mesh))``. With several processes
    an array committed to one local device (e.g. a leaf restored from a checkpoint onto it)
    cannot be device_put onto other processes' devices; every process holds the same value
    (same seed, same checkpoint), so each builds its own replicas from its host copy.
    """
    sharding = replicated(mesh)
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def put(x: Any) -> Any:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return jax.device_put(x, sharding)  # already global: at most a reshard
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx], host.dtype)

    return jax.tree.map(put, tree)


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, Any]:
    """Global host batch (the same in every process) -> device arrays split along the batch
    axis; each process transfers only the rows of its own devices."""
    sharding = batch_sharded(mesh)
    if sharding.is_fully_addressable:  # one process: one batched transfer, as always
        return jax.device_put(batch, sharding)
    return {
        k: jax.make_array_from_callback(v.shape, sharding, lambda idx, v=v: v[idx], dtype=v.dtype)
        for k, v in batch.items()
    }
