"""Paths of a parameter tree and the selector syntax that configs use to name subtrees.

A path joins nested dict keys with '/', e.g. 'encoder/stage_1/conv_0/kernel'. A selector is
'+'-joined subtree names or regexes ('encoder', 'encoder+bottleneck', 'decoder/stage_[01]'); it
matches a path that starts with one of them at a '/' boundary. '' selects nothing.
"""

from __future__ import annotations

import re
from typing import Any

from jaxseg.checkpoint import flatten, unflatten

__all__ = ["flatten", "matches", "select", "selector", "unflatten"]


def selector(spec: str) -> str:
    """Compile a '+'-joined selector to one regex for ``re.match`` on 'path/' ('' if empty)."""
    parts = [p.strip().strip("/") for p in spec.split("+") if p.strip()]
    if not parts:
        return ""
    for part in parts:
        try:
            re.compile(part)
        except re.error as err:
            raise ValueError(f"selector {spec!r}: {part!r} is not a valid regex ({err})") from err
    return "(?:" + "|".join(f"(?:{p})" for p in parts) + ")/"


def matches(regex: str, path: str) -> bool:
    """Whether ``path`` lies in a subtree selected by a compiled ``selector`` regex."""
    return bool(regex) and re.match(regex, path + "/") is not None


def select(tree: Any, spec: str) -> dict[str, Any]:
    """The flat {path: leaf} of the leaves of ``tree`` inside the selected subtrees."""
    regex = selector(spec)
    return {p: v for p, v in flatten(tree).items() if matches(regex, p)}
