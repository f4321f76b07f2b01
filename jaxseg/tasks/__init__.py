"""Task registry: a stage's ``task`` string picks the loss, the head and the metrics."""

from __future__ import annotations

from collections.abc import Callable

from jaxseg.tasks.base import Task
from jaxseg.tasks.localization import localization
from jaxseg.tasks.segmentation import segmentation

TASKS: dict[str, Callable[..., Task]] = {
    "localization": localization,
    "segmentation": segmentation,
}


def build(name: str, loss: str = "", num_classes: int = 1) -> Task:
    """The task ``name``; ``loss`` '' takes the task's default loss."""
    if name not in TASKS:
        raise ValueError(f"task {name!r} is unknown; use one of {sorted(TASKS)}")
    return TASKS[name](loss=loss, num_classes=num_classes)


__all__ = ["TASKS", "Task", "build"]
