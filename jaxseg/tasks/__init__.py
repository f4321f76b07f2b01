"""Task registry: a stage's ``task`` string picks the loss, the head and the metrics; its
``task_options`` are the task factory's keyword options (e.g. the siamese margin)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from jaxseg.tasks.autoencoder import autoencoder
from jaxseg.tasks.base import DataInfo, Task, run_model, task_arrays
from jaxseg.tasks.box_masks import box_segmentation
from jaxseg.tasks.classification import classification, multilabel
from jaxseg.tasks.localization import localization
from jaxseg.tasks.segmentation import segmentation
from jaxseg.tasks.siamese import siamese

TASKS: dict[str, Callable[..., Task]] = {
    "autoencoder": autoencoder,
    "box_segmentation": box_segmentation,
    "classification": classification,
    "localization": localization,
    "multilabel": multilabel,
    "segmentation": segmentation,
    "siamese": siamese,
}


def options_of(name: str) -> list[str]:
    """The option names task ``name`` accepts (its factory's keywords after loss and info)."""
    factory = TASKS[name]
    params = inspect.signature(factory).parameters
    names = [p for p in params if p not in ("loss", "info", "options", "name")]
    if name == "box_segmentation":  # passes the rest on to segmentation
        names += [p for p in options_of("segmentation") if p not in names and p != "name"]
    return names


def build(
    name: str,
    loss: str = "",
    num_classes: int = 1,
    options: Mapping[str, Any] | None = None,
    info: DataInfo | None = None,
) -> Task:
    """The task ``name``; ``loss`` '' takes the task's default loss. ``info`` describes the
    dataset (default: ``num_classes`` mask channels); unknown ``options`` are an error."""
    if name not in TASKS:
        raise ValueError(f"task {name!r} is unknown; use one of {sorted(TASKS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(options_of(name)))
    if unknown:
        raise ValueError(
            f"task {name!r} has no options {unknown}; its task_options are {options_of(name)}"
        )
    info = info if info is not None else DataInfo(mask_channels=num_classes)
    return TASKS[name](loss=loss, info=info, **options)


def for_config(config: Any, arrays: Mapping, class_names: tuple[str, ...]) -> Task:
    """The task of a stage config (``task``, ``loss``, ``task_options``) on a dataset."""
    info = DataInfo.of(arrays, class_names)
    return build(config.task, config.loss, options=stage_options(config), info=info)


def stage_options(config: Any) -> dict[str, Any]:
    """A stage config's ``task_options`` as a plain dict ({} when it has none)."""
    options = config.get("task_options", None)
    if options is None:
        return {}
    return options.to_dict() if hasattr(options, "to_dict") else dict(options)


__all__ = [
    "TASKS",
    "DataInfo",
    "Task",
    "build",
    "for_config",
    "run_model",
    "stage_options",
    "task_arrays",
]
