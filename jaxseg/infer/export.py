"""``export``: the inference function of one run or a fold ensemble as a serialized
``jax.export`` artefact, with its preprocessing beside it, runnable without jaxseg's configs.

``<out>/model.jaxexport`` holds the StableHLO of ``[B, *window, C] -> [B, *window, K]``
foreground probabilities (B symbolic; the fold models averaged inside); ``<out>/predict.json``
holds what a caller needs around it: window, channels, preprocessing steps, threshold, overlap.
``Exported.probabilities(pixels)`` applies exactly ``predict``'s steps around the artefact (per-
image standardisation, preprocessing, Gaussian-weighted windows), so a fresh process reproduces
``jaxseg predict``'s probability maps from the two files alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from jaxseg import atomic
from jaxseg.data import pipeline
from jaxseg.infer import predict as predict_lib
from jaxseg.infer import window
from jaxseg.infer.runs import load, resolve

ARTEFACT = "model.jaxexport"
PARAMETERS = "predict.json"


def export(
    source: str, output: str, options: predict_lib.Options | None = None, *, arm="", budget=""
) -> list[str]:
    """Serialize the networks of ``source`` (``runs.resolve``) into ``output``; returns the two
    paths. An existing artefact in ``output`` is refused, never overwritten."""
    options = options or predict_lib.Options()
    networks = load(resolve(source, arm, budget))
    sizes = predict_lib.training_window(networks, networks.rank, options)
    paths = [os.path.join(output, ARTEFACT), os.path.join(output, PARAMETERS)]
    for path in paths:
        if os.path.exists(path):
            raise ValueError(f"{path} exists; export into a new or empty folder")
    (batch,) = jax_export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((batch, *sizes, networks.channels), jnp.float32)
    exported = jax_export.export(networks.probabilities())(spec)
    parameters = {
        "window": list(sizes),
        "channels": networks.channels,
        "preprocess": networks.config.data.get("preprocess", ""),
        "pipeline": predict_lib.run_pipeline(networks.config),
        "threshold": options.threshold,
        "overlap": options.overlap,
        "batch_size": options.batch_size,
        "runs": [os.path.relpath(d, output) for d in networks.directories],
    }
    os.makedirs(output, exist_ok=True)
    atomic.write_bytes(paths[0], bytes(exported.serialize()))
    atomic.write_json(paths[1], parameters)
    return paths


@dataclasses.dataclass(frozen=True)
class Exported:
    """A loaded artefact and its parameters."""

    call: Any  # [B, *window, C] -> [B, *window, K]
    parameters: dict[str, Any]

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """[*S,C] as read -> [*S,K] foreground probabilities, as ``predict`` computes them."""
        p = self.parameters
        # artefacts written before "pipeline" standardised first, as the fundus pipeline does
        steps = p.get("pipeline", pipeline("fundus", p["preprocess"]))
        x = predict_lib.standardize(pixels, steps, p["channels"])
        return window.sliding_window(
            self.call, x, tuple(p["window"]), p["overlap"], p["batch_size"]
        )


def load_exported(folder: str) -> Exported:
    """The artefact and parameters written by ``export`` into ``folder``."""
    with open(os.path.join(folder, ARTEFACT), "rb") as f:
        exported = jax_export.deserialize(bytearray(f.read()))
    with open(os.path.join(folder, PARAMETERS)) as f:
        parameters = json.load(f)
    return Exported(exported.call, parameters)
