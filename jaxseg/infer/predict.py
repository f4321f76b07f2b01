"""``predict``: segment new images with trained runs, in each image's own geometry.

Per input: the run's preprocessing (``data.pipeline`` of the run's ``data.source`` and
``data.preprocess``, from the stored intensities as the loader does; RGB becomes luminance for a
one-channel network)
→ probabilities at the input's own pixel grid by windows of the training size: one window
(zero-padded) when the image fits, else overlapping Gaussian-weighted windows → optional flip
test-time augmentation and fold ensemble (probabilities averaged) → threshold, optional largest
connected component → a label mask [*S] (0 background, k for channel k) written in the input's
own format and geometry (``infer.io``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxseg.data import pipeline, preprocess
from jaxseg.data.importer.placement import place, placement, unplace
from jaxseg.infer import postprocess, tta, window
from jaxseg.infer.io import Input, read_inputs, write_outputs
from jaxseg.infer.runs import Networks, load, resolve


@dataclasses.dataclass(frozen=True)
class Options:
    """How to predict (defaults: one pass, threshold 0.5, no post-processing)."""

    threshold: float = 0.5
    tta: bool = False  # average over every flip of the spatial axes
    largest_component: bool = False  # keep each channel's largest connected component
    overlap: float = 0.5  # of neighbouring windows
    batch_size: int = 4  # windows per device call
    window: tuple[int, ...] = ()  # () = the training image size (data.image_size)
    resize: str = ""  # '' = the input's own pixel grid; 'pad' / 'crop': onto the training grid


def run_pipeline(config: Any) -> str:
    """The preprocessing steps of a run's config (``data.pipeline``): stored intensities ->
    network input."""
    return pipeline(config.data.get("source", "npz"), config.data.get("preprocess", ""))


def standardize(pixels: np.ndarray, steps: str, channels: int) -> np.ndarray:
    """[*S,C] as read -> [*S,channels] float32 as a loader hands images to training: the
    pipeline ``steps`` (``run_pipeline``) on the stored intensities; RGB becomes luminance for
    a one-channel network."""
    x = preprocess.apply(pixels[None].astype(np.float32), steps)
    if x.shape[-1] == 3 and channels == 1:
        x = preprocess.grayscale(x)
    if x.shape[-1] != channels:
        raise ValueError(f"the networks take {channels} channel(s); this input has {x.shape[-1]}")
    return x[0]


def training_window(networks: Networks, rank: int, options: Options) -> tuple[int, ...]:
    """The window side per spatial axis: ``options.window`` or the run's ``data.image_size``."""
    if options.window:
        if len(options.window) not in (1, rank):
            raise ValueError(f"--window has {len(options.window)} sizes; give 1 or {rank}")
        sizes = tuple(options.window) * (rank // len(options.window))
    elif networks.config.data.get("image_size"):
        sizes = (int(networks.config.data.image_size),) * rank
    else:
        raise ValueError("the run was trained at its data's stored size; give --window")
    if any(s % networks.multiple for s in sizes):
        raise ValueError(f"--window={sizes} must be multiples of {networks.multiple}")
    return sizes


def probabilities(
    image: np.ndarray, predict: Callable, networks: Networks, options: Options
) -> np.ndarray:
    """[*S,C] model input -> [*S,K] foreground probabilities (see the module docstring)."""
    rank = image.ndim - 1
    if options.tta:
        predict = tta.flip_tta(predict, rank)
    sizes = training_window(networks, rank, options)
    return window.sliding_window(predict, image, sizes, options.overlap, options.batch_size)


def label_mask(probs: np.ndarray, options: Options) -> np.ndarray:
    """[*S,K] probabilities -> [*S] uint8 labels (channel k -> k + 1; later channels win)."""
    masks = postprocess.binarize(probs, options.threshold)
    if options.largest_component:
        masks = postprocess.largest_component(masks)
    labels = np.zeros(masks.shape[:-1], np.uint8)
    for k in range(masks.shape[-1]):
        labels[masks[..., k] > 0] = k + 1
    return labels


def on_training_grid(
    pixels: np.ndarray, predict_grid: Callable[[np.ndarray], np.ndarray], policy: str, side: int
) -> np.ndarray:
    """Probabilities of a 2-D image placed as ``jaxseg data import --resize policy --size side``
    places it (pad or crop to a square, then resize), mapped back to the image's own grid:
    for runs trained on imported images whose pixel scale new images do not share."""
    if pixels.ndim != 3:
        raise ValueError("--resize places 2-D images; volumes keep their voxel grid")
    where = placement(pixels.shape[:-1], policy, side, ())
    probs = predict_grid(place(pixels.astype(np.float32), where, is_mask=False))
    return unplace(probs, where, pixels.shape[:-1], order=1)


def predict_inputs(
    networks: Networks, inputs: list[Input], options: Options
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(label masks [*S], probabilities [*S] for one channel else [*S,K]) per input."""
    predict = networks.probabilities()
    steps = run_pipeline(networks.config)

    def on_grid(pixels: np.ndarray) -> np.ndarray:
        return probabilities(
            standardize(pixels, steps, networks.channels), predict, networks, options
        )

    masks, probs = [], []
    for item in inputs:
        try:
            if options.resize:
                side = training_window(networks, 2, options)[0]
                p = on_training_grid(item.pixels, on_grid, options.resize, side)
            else:
                p = on_grid(item.pixels)
        except ValueError as err:
            raise ValueError(f"{item.source}: {err}") from None
        masks.append(label_mask(p, options))
        probs.append(p[..., 0] if p.shape[-1] == 1 else p)
    return masks, probs


def predict(
    source: str,
    input_path: str,
    output: str,
    options: Options | None = None,
    *,
    arm: str = "",
    budget: str = "",
    write_probabilities: bool = False,
) -> list[str]:
    """Segment every image under ``input_path`` with the run(s) of ``source`` (``resolve``) and
    write the masks (and probability maps) under ``output``; returns the written paths."""
    networks = load(resolve(source, arm, budget))
    inputs = read_inputs(input_path)
    masks, probs = predict_inputs(networks, inputs, options or Options())
    return write_outputs(inputs, masks, output, probs if write_probabilities else None)
