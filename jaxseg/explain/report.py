"""Pictures and tables of what transferred, for several stage runs side by side.

For runs labelled e.g. scratch / pretrained / fine-tuned: activation maps of the selected layers
on the same held-out images (mean and top-k channels), activation maximisation for the first
channels of each selected layer, and per stage the linear CKA of activations and method 5's
weight distance between the first run and each other one. Writes PNGs, ``similarity.md`` and
``index.md`` into ``out_dir``.
"""

from __future__ import annotations

import os
import re

import numpy as np

from jaxseg import data
from jaxseg.eval import weights
from jaxseg.explain import figures, maximize, similarity
from jaxseg.explain.capture import capture, load_run
from jaxseg.surgery.paths import select, unflatten
from jaxseg.train import rundir

STAGE_LAYERS = r"^(encoder/stage_\d+|bottleneck|decoder/stage_\d+)$"


def held_out_images(workdir: str, config, num_images: int) -> np.ndarray:
    """The first ``num_images`` held-out images of a finished run: [n,H,W,C]."""
    result = rundir.read_result(workdir)
    if result is None:
        raise FileNotFoundError(f"{workdir} holds no finished run (no {rundir.RESULT})")
    index = np.asarray(result["test_index"][:num_images], dtype=int)
    return data.load(config.data).arrays["image"][index]


def explain_runs(
    runs: dict[str, str],
    out_dir: str,
    layers: str = r"^(encoder/stage_\d+|bottleneck)$",
    num_images: int = 4,
    channels: int = 8,
    steps: int = 64,
) -> str:
    """Write the figures and tables for ``runs`` ({label: stage workdir}); returns index.md."""
    if not runs:
        raise ValueError("explain needs at least one run directory")
    os.makedirs(out_dir, exist_ok=True)
    loaded = {label: load_run(workdir) for label, workdir in runs.items()}
    first_label = next(iter(runs))
    images = held_out_images(runs[first_label], loaded[first_label].config, num_images)
    acts = {label: capture(r.model, r.variables, images, layers) for label, r in loaded.items()}
    shared = sorted(set.intersection(*(set(a) for a in acts.values())))
    if not shared:
        raise ValueError(f"layers {layers!r} select no module common to all runs {list(runs)}")
    acts = {label: {p: np.asarray(a[p]) for p in shared} for label, a in acts.items()}
    files = [
        figures.activation_grid(images, acts, os.path.join(out_dir, "activations_mean.png")),
        figures.activation_grid(
            images, acts, os.path.join(out_dir, "activations_topk.png"), mode="topk", k=3
        ),
    ]
    for label, run in loaded.items():
        for path in shared:
            n = min(channels, acts[label][path].shape[-1])
            synth, _ = maximize.maximize(
                run.model, run.variables, path, range(n), images.shape[1:], steps
            )
            name = f"maximize_{_slug(label)}_{_slug(path)}.png"
            files.append(
                figures.image_grid(synth, [f"ch {c}" for c in range(n)],
                                   os.path.join(out_dir, name), title=f"{label}: {path}")
            )  # fmt: skip
    tables = []
    stage_acts = {
        label: capture(r.model, r.variables, images, STAGE_LAYERS) for label, r in loaded.items()
    }
    base_params = loaded[first_label].variables["params"]
    for label in list(runs)[1:]:
        params = loaded[label].variables["params"]
        # Compare the stages whose conv kernels both nets have (a localizer has no decoder, and
        # its dense head is no conv kernel).
        groups = {
            g: spec
            for g, spec in weights.stage_groups(base_params).items()
            if set(weights.conv_kernels(unflatten(select(base_params, spec))))
            == set(weights.conv_kernels(unflatten(select(params, spec))))
            != set()
        }
        shared_spec = "+".join(groups.values())
        a, b = (unflatten(select(t, shared_spec)) for t in (base_params, params))
        distance = weights.bidirectional(  # RMS: comparable across stages of other sizes
            weights.weight_distance(a, b, groups, "rms"),
            weights.weight_distance(b, a, groups, "rms"),
        )
        common = set(stage_acts[first_label]) & set(stage_acts[label])
        cka = similarity.activation_cka(
            {p: np.asarray(stage_acts[first_label][p]) for p in common},
            {p: np.asarray(stage_acts[label][p]) for p in common},
        )
        tables.append(
            f"### {first_label} vs {label}\n\n" + similarity.similarity_table(cka, distance)
        )
    tables = tables or ["Only one run: nothing to compare."]
    with open(os.path.join(out_dir, "similarity.md"), "w") as f:
        f.write("\n\n".join(tables) + "\n")
    described = ", ".join(f"{k} = `{v}`" for k, v in runs.items())
    index = [
        "# What transferred",
        "",
        f"Runs: {described}.",
        f"Images: the first {len(images)} held-out images of `{first_label}`; layers `{layers}`.",
        "",
        *tables,
        "",
        *(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in files),
    ]
    path = os.path.join(out_dir, "index.md")
    with open(path, "w") as f:
        f.write("\n".join(index) + "\n")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
