"""Child process of the cross-device transfer test, run with 2 CPU devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/_transfer_worker.py OUT SRC

1. saves a Localizer(depth=2, width=4) state replicated over a 2-device mesh to
   ``OUT/checkpoints`` (step 4) and its values to ``OUT/saved.npz``;
2. transfers 'encoder+bottleneck' from ``SRC`` (a checkpoint the 1-device parent saved) into a
   fresh UNet(depth=2, width=4) here and writes the result to ``OUT/restored.npz``.

Prints one line "RESULT {json}": device count, devices of the saved arrays' sharding, report.
``random_variables`` is shared with tests/test_transfer.py.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from jaxseg import checkpoint  # noqa: E402
from jaxseg.models.unet import Localizer, UNet  # noqa: E402
from jaxseg.surgery.transfer import transfer  # noqa: E402

SHAPE = (1, 16, 16, 1)


def random_variables(model, seed: int, shape=SHAPE) -> dict:
    """The model's variables with every leaf (biases, BatchNorm statistics too) drawn from
    N(0, 1) with ``jax.random.PRNGKey(seed)``: two seeds differ in every leaf."""
    abstract = jax.eval_shape(
        functools.partial(model.init, train=False),
        jax.random.PRNGKey(0),
        jax.ShapeDtypeStruct(shape, jnp.float32),
    )
    leaves, treedef = jax.tree.flatten(abstract)
    # One draw for all leaves (one tiny compilation per model size), cut into the leaves.
    sizes = [int(np.prod(s.shape)) for s in leaves]
    values = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (sum(sizes),)))
    cuts = np.split(values, np.cumsum(sizes)[:-1])
    arrays = [
        jnp.asarray(c.reshape(s.shape).astype(s.dtype)) for c, s in zip(cuts, leaves, strict=True)
    ]
    variables = jax.tree.unflatten(treedef, arrays)
    return {k: dict(v) for k, v in variables.items()}


def save_state(directory: str, variables: dict, step: int) -> str:
    """Save a trainer-like state {'step', 'params', 'batch_stats', 'rng'} at ``step``."""
    state = {
        "step": jnp.asarray(step, jnp.int32),
        "params": variables["params"],
        "batch_stats": variables.get("batch_stats", {}),
        "rng": jax.random.PRNGKey(step),
    }
    mngr = checkpoint.manager(directory)
    checkpoint.save(mngr, step, state)
    mngr.close()
    return directory


def flat_numpy(variables: dict) -> dict[str, np.ndarray]:
    return {p: np.asarray(v) for p, v in checkpoint.flatten(variables).items()}


def savez(path: str, variables: dict) -> None:
    np.savez(path, **{p.replace("/", "|"): v for p, v in flat_numpy(variables).items()})


def loadz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k.replace("|", "/"): f[k] for k in f.files}


def main(out: str, source: str) -> None:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    assert jax.device_count() == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    replicated = NamedSharding(mesh, PartitionSpec())
    variables = random_variables(Localizer(depth=2, width=4), seed=11)
    variables = jax.device_put(variables, replicated)
    sharded = {len(x.sharding.device_set) for x in jax.tree.leaves(variables)}
    save_state(os.path.join(out, "checkpoints"), variables, step=4)
    savez(os.path.join(out, "saved.npz"), variables)

    fresh = random_variables(UNet(depth=2, width=4), seed=12)
    merged, report = transfer(fresh, source, "encoder+bottleneck")
    savez(os.path.join(out, "restored.npz"), merged)
    result = {"devices": jax.device_count(), "saved_devices": sorted(sharded), "report": report}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
