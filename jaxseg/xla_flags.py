"""XLA flags that must be in the environment before jax initialises its backend.

``import jaxseg`` sets them (``jaxseg/__init__.py``), so every entry point — the CLI, a notebook,
a test — gets them without the user remembering an environment variable. ``JAXSEG_FAST_CPU=0``
leaves XLA_FLAGS as it is (to time XLA's default CPU path).
"""

from __future__ import annotations

import logging
import os
import sys

# jaxlib 0.10.x sends CPU convolutions to YNNPACK fusions, which keep ~1.4 of 2 cores busy; an
# empty fusion list falls back to XLA's own convolutions: 1.8x faster U-Net steps (DESIGN.md §7).
CPU_CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def _backend_started() -> bool:
    """Whether jax is imported and has created its backends (XLA_FLAGS were read then)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
    except ImportError:  # a jax without this module: assume the flags still count
        return False
    return bool(xla_bridge.backends_are_initialized())


def set_fast_cpu_flags() -> None:
    """Add the CPU convolution flag to XLA_FLAGS unless the user set that flag already.

    Warns (once, through ``logging``) when jax's backend already started without it: XLA reads
    XLA_FLAGS once, so CPU convolutions then run the slow path until the process restarts.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags or os.environ.get("JAXSEG_FAST_CPU") == "0":
        return
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_CONV_FLAG}".strip()
    if _backend_started():
        logging.getLogger("jaxseg").warning(
            "jax started before jaxseg was imported, without XLA_FLAGS=%s: CPU convolutions run "
            "~1.8x slower; import jaxseg before using jax, or set that flag",
            CPU_CONV_FLAG,
        )
