"""Images/s of the U-Net segmentation train step, with XLA's FLOP count and achieved GFLOP/s.

    .venv/bin/python benchmarks/train_step.py --size=128 --batch=8 --depth=4 --width=32 \
        --norm=none --dtype=float32 --steps=12

Prints one Markdown table row (header with --header). The step is the trainer's own
(``jaxseg.train.loop.make_train_step``: soft-Dice loss, Adam, data-parallel over all local
devices); the median over ``--steps`` timed steps is reported after compiling (timed apart)
and one warm-up step.
"""

from __future__ import annotations

import statistics
import time

from absl import app, flags, logging

from jaxseg.xla_flags import set_fast_cpu_flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 128, "Image height and width.")
flags.DEFINE_integer("batch", 8, "Global batch size.")
flags.DEFINE_integer("depth", 4, "U-Net depth (number of poolings).")
flags.DEFINE_integer("width", 32, "Channels of the first stage.")
flags.DEFINE_enum("norm", "none", ["none", "batch", "group"], "Normalisation.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_integer("steps", 12, "Timed steps.")
flags.DEFINE_string("loss", "dice", "Loss name (jaxseg.losses).")
flags.DEFINE_bool("fast_cpu", True, "Set the XLA CPU convolution flag (jaxseg.xla_flags).")
flags.DEFINE_bool("header", False, "Print the table header first.")


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.fast_cpu:
        set_fast_cpu_flags()
    import jax
    import jax.numpy as jnp
    import ml_collections
    import numpy as np
    import optax

    from jaxseg import models, tasks
    from jaxseg.train import mesh as mesh_lib
    from jaxseg.train.loop import make_train_step
    from jaxseg.train.state import TrainMetrics

    cfg = ml_collections.ConfigDict(
        dict(name="unet", depth=FLAGS.depth, width=FLAGS.width, norm=FLAGS.norm, dropout=0.0,
             upsample="transpose", dtype=FLAGS.dtype)
    )  # fmt: skip
    task = tasks.build("segmentation", FLAGS.loss)
    model = models.build(cfg, task.head, task.outputs)
    mesh = mesh_lib.data_mesh()
    mesh_lib.check_batch_size(FLAGS.batch, mesh, "--batch")
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.standard_normal((FLAGS.batch, FLAGS.size, FLAGS.size, 1), np.float32),
        "mask": (rng.random((FLAGS.batch, FLAGS.size, FLAGS.size, 1)) > 0.5).astype(np.float32),
        "weight": np.ones(FLAGS.batch, np.float32),
    }
    variables = model.init(jax.random.PRNGKey(0), batch["image"][:1])
    tx = optax.adam(1e-4)
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": variables["params"],
        "batch_stats": variables.get("batch_stats", {}),
        "opt_state": tx.init(variables["params"]),
        "rng": jax.random.PRNGKey(1),
    }
    n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    replicated = mesh_lib.replicated(mesh)
    step = jax.jit(
        make_train_step(model, task, tx),
        in_shardings=(replicated, replicated, mesh_lib.batch_sharded(mesh)),
        out_shardings=(replicated, replicated),
        donate_argnums=(0, 1),
    )
    state = jax.device_put(state, replicated)
    acc = jax.device_put(TrainMetrics.empty(), replicated)
    batch = mesh_lib.put_batch(batch, mesh)
    t0 = time.perf_counter()
    compiled = step.lower(state, acc, batch).compile()
    compile_s = time.perf_counter() - t0
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    # XLA counts one device's share of a sharded program: the step's FLOPs are that × devices
    per_device = float(cost.get("flops", float("nan"))) if cost else float("nan")
    flops = per_device * mesh.devices.size
    state, acc = compiled(state, acc, batch)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(FLAGS.steps):
        t0 = time.perf_counter()
        state, acc = compiled(state, acc, batch)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    if FLAGS.header:
        print("| device | n dev | size | batch | depth | width | norm | dtype | params | "
              "GFLOP/step | ms/step (median) | images/s | GFLOP/s | compile s |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    device = jax.devices()[0].device_kind
    print(
        f"| {device} | {mesh.devices.size} | {FLAGS.size} | {FLAGS.batch} | {FLAGS.depth} | "
        f"{FLAGS.width} | {FLAGS.norm} | {FLAGS.dtype} | {n_params:,} | {flops / 1e9:.3g} | "
        f"{median * 1e3:.1f} | {FLAGS.batch / median:.2f} | {flops / median / 1e9:.3g} | "
        f"{compile_s:.1f} |"
    )


if __name__ == "__main__":
    app.run(main)
