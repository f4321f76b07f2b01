"""Datasets by name: `load` builds the one a data config names (`SOURCES`) and `prepare` applies
its preprocessing (`pipeline`: from the stored intensities on). `Dataset` and its array contract
live in `jaxseg.data.dataset`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxseg.data import fundus, kidneys, labels, npz, preprocess, stream, tfds_store
from jaxseg.data.dataset import REQUIRED_KEYS, Dataset, check_arrays

SOURCES: dict[str, Callable[..., Dataset]] = {
    "fundus": fundus.generate,
    "kidneys": kidneys.generate,
    "npz": npz.load,
    "tfds": tfds_store.load,
}
# Config fields passed (as keyword arguments of the same name) to each source.
SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "fundus": ("num_images", "image_size", "seed"),
    "kidneys": ("num_images", "image_size", "seed"),
    "npz": ("path", "image_size"),
    "tfds": ("path", "image_size"),
}
# Sources that standardise each image unless told `normalize=False` (`kidneys` never does: HU).
NORMALIZING_SOURCES = ("fundus", "npz", "tfds")
# Generated images whose intensities mean nothing: their pipeline starts standardised, as always.
STANDARDISED_FIRST = ("fundus",)
# Steps after which the images are standardised: a pipeline without one gets `normalize` last.
STANDARDISING_STEPS = ("normalize", "zscore")


def pipeline(source: str, steps: str) -> str:
    """The preprocessing steps from a source's stored intensities (a file's values, Hounsfield
    units) to the network input: `steps` itself when it names `normalize` or `zscore` (so
    `ct_window` before them sees HU), else `steps` then `normalize`; the fundus generator's
    `normalize` then `steps`. `data.load` and `jaxseg predict` both run it."""
    names = [name for name, _ in preprocess.parse(steps)]
    given = [steps.strip()] if names else []
    if source in STANDARDISED_FIRST:
        return ",".join(["normalize", *given])
    if any(name in STANDARDISING_STEPS for name in names):
        return steps.strip()
    return ",".join([*given, "normalize"])


# ... and those passed only when the config has them (configs written before they existed)
OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"fundus": ("num_masked",), "npz": ("pool",)}


def load(config: Any) -> Dataset:
    """Build the dataset named by `config.source` from the config fields in SOURCE_FIELDS.

    `config` is an ml_collections.ConfigDict or any object with attribute access.
    """
    source = getattr(config, "source", None)
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; known sources: {sorted(SOURCES)}")
    check_path(source, getattr(config, "path", ""))
    kwargs = {}
    for field in SOURCE_FIELDS[source]:
        try:
            kwargs[field] = getattr(config, field)
        except (AttributeError, KeyError):
            raise ValueError(
                f"data config for source {source!r} lacks field '{field}'; "
                f"it needs {list(SOURCE_FIELDS[source])}"
            ) from None
    if source in NORMALIZING_SOURCES:
        kwargs["normalize"] = False  # the pipeline standardises where it says
    for field in OPTIONAL_FIELDS.get(source, ()):
        if getattr(config, field, None):
            kwargs[field] = getattr(config, field)
    for field in ("num_masked", "pool"):
        if getattr(config, field, None) and field not in OPTIONAL_FIELDS.get(source, ()):
            raise ValueError(f"data.{field} is not used by data.source={source!r}; leave it unset")
    dataset = keep_classes(SOURCES[source](**kwargs), tuple(getattr(config, "classes", ()) or ()))
    steps = pipeline(source, getattr(config, "preprocess", ""))
    return prepare(dataset, steps, getattr(config, "pad_multiple", 0))


def check_path(source: str, path: str) -> None:
    """A source that reads a file needs ``data.path``; a built-in generator reads none, so a path
    given with one is refused rather than silently ignored (the study would train on the
    generator's images)."""
    readers = [s for s in SOURCES if "path" in SOURCE_FIELDS[s]]
    if source in readers and not path:
        raise ValueError(f"data.source={source!r} reads a file: give data.path")
    if source not in readers and path:
        raise ValueError(
            f"data.path={path!r} is given but data.source={source!r} is a built-in generator "
            f"that reads no file; set data.source to one of {readers} or data.path=''"
        )


def keep_classes(dataset: Dataset, classes: tuple[str, ...]) -> Dataset:
    """The examples whose label is one of the class names ``classes`` (all when empty), class
    names and ids unchanged; an unknown name is an error listing the dataset's classes."""
    if not classes:
        return dataset
    unknown = [c for c in classes if c not in dataset.class_names]
    if unknown:
        raise ValueError(
            f"data.classes names {unknown}, which dataset {dataset.name!r} lacks; its classes "
            f"are {list(dataset.class_names)}"
        )
    ids = [dataset.class_names.index(c) for c in classes]
    return dataset.subset(np.isin(dataset.arrays["label"], ids))


def prepare(dataset: Dataset, steps: str = "", pad_multiple: int = 0) -> Dataset:
    """Apply an image preprocessing pipeline (``preprocess.apply``, e.g. 'clahe,gamma:0.8,
    normalize') and pad every spatial axis to a multiple (masks with 0; centres and boxes shift
    with it). Images [N,H,W,C] and volumes [N,D,H,W,C] alike."""
    if not steps and not pad_multiple:
        return dataset
    arrays = dict(dataset.arrays)
    if steps:
        if isinstance(arrays["image"], stream.Rows) and "zscore" in steps:
            raise ValueError(
                f"{dataset.name}: streams (larger than memory), and 'zscore' needs statistics "
                "of the whole set; use 'normalize' (per image)"
            )
        arrays["image"] = stream.per_batch(arrays["image"], lambda x: preprocess.apply(x, steps))
    if pad_multiple:
        shape = (0, *arrays["image"].shape[1:])
        pads = preprocess.pad_to_multiple(np.zeros(shape, np.float32), pad_multiple)[1]
        for key in ("image", "mask"):
            pad = functools.partial(preprocess.pad_to_multiple, multiple=pad_multiple)
            arrays[key] = stream.per_batch(arrays[key], lambda x, pad=pad: pad(x)[0])
        shift = np.array(pads[::2][::-1], np.float32)  # befores in (x, y[, z]) order
        has = labels.available(arrays, "center")[:, None]
        arrays["center"] = np.where(has, arrays["center"] + shift, 0).astype(np.float32)
        box = arrays["box"] + np.concatenate([shift, shift])
        arrays["box"] = np.where(labels.available(arrays, "box")[:, None], box, 0)
        arrays["box"] = arrays["box"].astype(np.float32)
        if "boxes" in arrays:  # NaN rows stay NaN
            arrays["boxes"] = arrays["boxes"] + np.concatenate([shift, shift])
    return Dataset(arrays, dataset.class_names, dataset.name)


__all__ = [
    "REQUIRED_KEYS",
    "SOURCES",
    "SOURCE_FIELDS",
    "Dataset",
    "check_arrays",
    "load",
    "pipeline",
    "prepare",
]
