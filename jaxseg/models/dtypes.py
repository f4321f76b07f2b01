"""Compute dtypes by name (``model.dtype``); parameters stay float32."""

from __future__ import annotations

import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def dtype(name: str) -> jnp.dtype:
    """The compute dtype called ``name``; an unknown name is a ValueError listing DTYPES."""
    if name not in DTYPES:
        raise ValueError(f"model.dtype={name!r} is unknown; use one of {sorted(DTYPES)}")
    return DTYPES[name]
