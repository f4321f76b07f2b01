"""What a study ran on: library versions, Python, platform, CPUs, JAX devices and XLA flags, for
the report and ``machine.json`` (numbers are only comparable on the same machine and versions)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import flax
import jax
import jaxlib
import numpy as np
import optax
import orbax.checkpoint as ocp

LIBRARIES = {"jax": jax, "jaxlib": jaxlib, "flax": flax, "optax": optax, "orbax": ocp, "numpy": np}


def versions() -> dict[str, str]:
    """``__version__`` of each of ``LIBRARIES`` (orbax = orbax-checkpoint)."""
    return {name: str(module.__version__) for name, module in LIBRARIES.items()}


def describe() -> dict[str, Any]:
    """A JSON-ready description of this machine and process (initialises JAX's backend)."""
    devices = jax.devices()
    return {
        **versions(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "device_count": len(devices),
        "devices": [str(d) for d in devices],
        "device_kinds": sorted({d.device_kind for d in devices}),
        "process_count": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def markdown(info: dict[str, Any]) -> str:
    """``info`` as a two-column Markdown table (lists joined by ', ', '|' escaped)."""
    lines = ["| key | value |", "|---|---|"]
    for key, value in info.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        text = text.replace("|", r"\|") or "(empty)"
        lines.append(f"| {key} | {text} |")
    return "\n".join(lines)
