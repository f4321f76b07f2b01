"""A study's held-out predictions in the original images' geometry.

Each example of the arm's test folds is predicted by the fold model(s) that never trained on it
(the seeds of that fold averaged), on the grid the study trained on, and mapped back through the
placement ``jaxseg data import`` stored for it (``importer.unplace``; block-mean downsampling by
``data.image_size`` is folded into the placement's scale). 2-D examples come back as masks of
their original image size; NIfTI volumes on their original voxel grid, orientation and affine
(resampling by ``--spacing`` undone by linear interpolation of the probabilities).
"""

from __future__ import annotations

import numpy as np
from nibabel import orientations
from scipy import ndimage

from jaxseg import data
from jaxseg.data import npz
from jaxseg.data.importer.placement import Placement, unplace
from jaxseg.infer import io, runs
from jaxseg.infer import predict as predict_lib
from jaxseg.train import rundir

RAS = orientations.axcodes2ornt("RAS")


def held_out_probabilities(
    directories: list[str], dataset: data.Dataset, options: predict_lib.Options
) -> dict[int, np.ndarray]:
    """{dataset row: [*grid, K] probabilities}, averaged over the runs that held the row out."""
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for directory in directories:
        networks = runs.load([directory])
        predict = networks.probabilities()
        for i in rundir.read_result(directory)["test_index"]:
            image = dataset.arrays["image"][i]
            p = predict_lib.probabilities(image, predict, networks, options)
            sums[i] = sums.get(i, 0) + p
            counts[i] = counts.get(i, 0) + 1
    return {i: sums[i] / counts[i] for i in sorted(sums)}


def stored_layout(config, dataset: data.Dataset) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """(placements, ids, downsampling factor) of the study's imported .npz; one error line
    when the data cannot be mapped back (no stored placements, padding, slices)."""
    if config.source != "npz":
        raise ValueError(
            f"held-out masks map back through the placements `jaxseg data import` stores in an "
            f".npz; the study's data.source is {config.source!r}"
        )
    placements = npz.read_placements(config.path)
    if not placements:
        raise ValueError(f"{config.path} stores no placements (imported before they were kept)")
    if config.get("pad_multiple"):
        raise ValueError("held-out masks cannot undo data.pad_multiple; train without it")
    with np.load(config.path) as f:
        stored = f["images"].shape[1]
        ids = f["ids"] if "ids" in f else np.arange(len(f["images"])).astype(str)
    rank = dataset.arrays["image"].ndim - 2
    if placements["original_shapes"].shape[-1] != rank:
        raise ValueError("the study trained on slices of volumes; map those back per volume")
    return placements, ids, stored // dataset.arrays["image"].shape[1]


def back(p: np.ndarray, placements: dict[str, np.ndarray], i: int, factor: int) -> np.ndarray:
    """[*grid, K] on the training grid -> [*original, K] (NIfTI: the file's grid, canonical)."""
    where = Placement(
        tuple(int(o) for o in placements["placement_offsets"][i]),
        float(placements["placement_scales"][i]) / factor,
        p.shape[:-1],
    )
    y = unplace(p, where, tuple(int(s) for s in placements["original_shapes"][i]), order=1)
    if "file_shapes" in placements:
        file_shape = tuple(int(s) for s in placements["file_shapes"][i])
        zoom = [f / s for f, s in zip(file_shape, y.shape[:-1], strict=True)] + [1]
        y = ndimage.zoom(y, zoom, order=1, mode="nearest") if zoom != [1] * len(zoom) else y
    return y


def target(placements: dict[str, np.ndarray], name: str, shape: tuple, i: int) -> io.Input:
    """Where example i's mask goes: a PNG of its original size, or its NIfTI file's geometry."""
    placeholder = np.zeros((*shape, 1), np.uint8)  # io writes by the input's shape and kind
    if "affines" not in placements:
        return io.Input(name, placeholder, "png", name)
    affine = placements["affines"][i]
    to_file = orientations.ornt_transform(RAS, orientations.io_orientation(affine))
    return io.Input(name, placeholder, "nifti", name, affine=affine, to_file=to_file)


def held_out(
    study: str,
    arm: str,
    budget: str,
    output: str,
    options: predict_lib.Options | None = None,
    write_probabilities: bool = False,
) -> list[str]:
    """Write the arm's held-out masks (and probabilities) at ``budget`` in each example's
    original geometry under ``output``, named by the import's ids; returns the paths."""
    options = options or predict_lib.Options()
    directories = runs.study_runs(study, arm, budget)
    config = runs.load(directories[:1]).config.data
    dataset = data.load(config)
    placements, ids, factor = stored_layout(config, dataset)
    inputs, masks, probs = [], [], []
    for i, p in held_out_probabilities(directories, dataset, options).items():
        y = back(p, placements, i, factor)
        inputs.append(target(placements, str(ids[i]), y.shape[:-1], i))
        masks.append(predict_lib.label_mask(y, options))
        probs.append(y[..., 0] if y.shape[-1] == 1 else y)
    return io.write_outputs(inputs, masks, output, probs if write_probabilities else None)
