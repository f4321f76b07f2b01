"""Multi-process (multi-host) JAX from environment variables: N processes run the same config.

Every process runs the same program on the same data: each computes the same global batch from
(seed, step) and feeds only its own devices' shard of it (``mesh.put_batch``); parameters are
replicated over every device of every process. ``initialize_from_env()`` joins the processes
into one JAX system and must run before anything touches a JAX backend (``jax.devices()``,
``jax.device_put``, any computation). Variables read:

``JAXSEG_COORDINATOR`` (host:port of process 0), ``JAXSEG_NUM_PROCESSES``, ``JAXSEG_PROCESS_ID``
    an explicit setup (launch/local_multiprocess.sh, or any launcher): all three, or none.
``JAXSEG_LOCAL_DEVICE_IDS`` (optional, e.g. ``0`` or ``0,1``)
    the accelerators this process drives, when several processes share a machine.
``JAXSEG_DISTRIBUTED=auto``
    let JAX detect the cluster instead: SLURM (``srun``), Open MPI, Cloud TPU VMs, Kubernetes.
``JAXSEG_DISTRIBUTED=off``
    stay one process whatever else is set.
``JAXSEG_INIT_TIMEOUT`` (seconds, default 300)
    how long a process waits for the others to join before it gives up.

With none of them set, nothing happens and jaxseg runs as one process, as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax

COORDINATOR = "JAXSEG_COORDINATOR"
NUM_PROCESSES = "JAXSEG_NUM_PROCESSES"
PROCESS_ID = "JAXSEG_PROCESS_ID"
LOCAL_DEVICE_IDS = "JAXSEG_LOCAL_DEVICE_IDS"
MODE = "JAXSEG_DISTRIBUTED"
INIT_TIMEOUT = "JAXSEG_INIT_TIMEOUT"
_EXPLICIT = (COORDINATOR, NUM_PROCESSES, PROCESS_ID)


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise ValueError(f"{key}={env[key]!r} is not an integer") from None


def settings_from_env(env: Mapping[str, str] | None = None) -> dict | None:
    """The keyword arguments of ``jax.distributed.initialize`` that ``env`` asks for, or None
    for a single process. Raises ValueError on an incomplete or inconsistent setup."""
    env = os.environ if env is None else env
    mode = env.get(MODE, "").strip().lower()
    if mode in ("off", "0", "false", "no"):
        return None
    if mode not in ("", "auto", "on", "1", "true", "yes"):
        raise ValueError(f"{MODE}={env[MODE]!r}: use 'auto' (detect SLURM/MPI/TPU) or 'off'")
    present = [k for k in _EXPLICIT if env.get(k)]
    timeout = _int(env, INIT_TIMEOUT) if env.get(INIT_TIMEOUT) else 300
    kwargs: dict = {"initialization_timeout": timeout}
    if env.get(LOCAL_DEVICE_IDS):
        ids = env[LOCAL_DEVICE_IDS].replace(" ", "").split(",")
        if not all(i.isdigit() for i in ids):
            raise ValueError(f"{LOCAL_DEVICE_IDS}={env[LOCAL_DEVICE_IDS]!r}: use e.g. '0' or '0,1'")
        kwargs["local_device_ids"] = [int(i) for i in ids]
    if present:
        missing = [k for k in _EXPLICIT if k not in present]
        if missing:
            raise ValueError(
                f"multi-process setup needs {', '.join(_EXPLICIT)} together; "
                f"{', '.join(present)} set but {', '.join(missing)} missing"
            )
        num, pid = _int(env, NUM_PROCESSES), _int(env, PROCESS_ID)
        if num < 1 or not 0 <= pid < num:
            raise ValueError(f"{PROCESS_ID}={pid} must lie in 0..{NUM_PROCESSES}-1 (= {num - 1})")
        if ":" not in env[COORDINATOR]:
            raise ValueError(f"{COORDINATOR}={env[COORDINATOR]!r} must be host:port")
        kwargs.update(coordinator_address=env[COORDINATOR], num_processes=num, process_id=pid)
        return kwargs
    if mode:  # auto: jax reads SLURM_*, OMPI_*, the TPU metadata server, ...
        return kwargs
    return None


def _configure_cpu_collectives() -> None:
    """Cross-process collectives for the CPU backend (a no-op for GPU/TPU, whose collectives are
    NCCL/ICI). jax 0.10 defaults to gloo over TCP already; older versions defaulted to none,
    which makes every multi-process CPU computation fail. A user's choice (e.g. 'mpi') stays."""
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def initialize_from_env(env: Mapping[str, str] | None = None) -> bool:
    """Join the multi-process JAX system described by the environment (see the module doc).

    Returns True when this process is one of several (also when already initialised, so it is
    safe to call twice), False for a plain single-process run. Must run before any JAX use.
    """
    if jax.distributed.is_initialized():
        return True
    kwargs = settings_from_env(env)
    if kwargs is None:
        return False
    _configure_cpu_collectives()
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as err:
        if "must be called before" in str(err):
            raise RuntimeError(
                "jaxseg.train.distributed.initialize_from_env() must run before anything uses "
                "JAX devices (jax.devices(), device_put, any computation) in this process"
            ) from err
        raise
    return True


def is_primary() -> bool:
    """True in process 0 (also in a single-process run): the one that writes shared files."""
    return jax.process_index() == 0


__all__ = ["initialize_from_env", "is_primary", "settings_from_env"]
