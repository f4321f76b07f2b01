"""Data parallelism over all local devices: batch sharded on axis 'data', state replicated."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_mesh() -> Mesh:
    """A 1-D mesh over every local device.

    On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N splits it into N devices.
    """
    return Mesh(np.array(jax.local_devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec("data"))


def check_batch_size(batch_size: int, mesh: Mesh, key: str = "batch_size") -> None:
    """Raise unless the batch splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"{key}={batch_size} is not divisible by the {n} devices of the mesh; "
            f"use a multiple of {n}"
        )


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, Any]:
    """Host batch -> device arrays split along the batch axis."""
    return jax.device_put(batch, batch_sharded(mesh))
