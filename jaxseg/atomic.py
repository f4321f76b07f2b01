"""Atomic file writes: a reader (or a process killed mid-write) sees the old file or the new one,
never half of one. The lowest layer: imports nothing of jaxseg, so data, train and studies all
write through it.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any


def temporary_path(path: str) -> str:
    """A sibling of ``path`` private to this process (same folder, so ``os.replace`` is atomic;
    two processes writing the same path never share it)."""
    return f"{path}.tmp-{os.getpid()}"


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling renamed over it."""
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode())


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=1))


def replace(tmp: str, output: str) -> None:
    """Move the finished file or folder ``tmp`` to ``output``, removing an old ``output`` only
    after the new one is in place (a folder cannot be renamed over atomically: the old one is
    first moved aside)."""
    if os.path.isdir(output) and not os.path.islink(output):
        old = f"{output}.old-{os.getpid()}"
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output)
