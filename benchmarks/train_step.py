"""Images/s of the segmentation train step, with XLA's FLOP count, GFLOP/s and peak memory.

    .venv/bin/python benchmarks/train_step.py --size=128 --batch=8 --depth=4 --width=32 \
        --norm=none --dtype=float32 --steps=12
    .venv/bin/python benchmarks/train_step.py --model=densenet --rank=3 --size=64 --batch=2 \
        --norm=group --remat

Prints one Markdown table row (header with --header). The step is the trainer's own
(``segmentation_step.build``: soft-Dice loss, Adam, data-parallel over all local devices); the
median over ``--steps`` timed steps is reported after compiling (timed apart) and one warm-up
step. Memory: XLA's planned peak for one device (arguments + outputs − donated + temporaries),
and the allocator's measured peak where the backend reports one (GPU/TPU; blank on CPU).
"""

from __future__ import annotations

import statistics
import time

import segmentation_step
from absl import app, flags, logging

import jaxseg  # noqa: F401 (sets the fast XLA CPU flags before jax starts)

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "unet", "Model name (jaxseg.models.MODELS).")
flags.DEFINE_integer("rank", 2, "Spatial dimensions of the images: 2 or 3.")
flags.DEFINE_integer("size", 128, "Image side (every spatial dimension).")
flags.DEFINE_integer("batch", 8, "Global batch size.")
flags.DEFINE_integer("depth", 4, "U-Net depth (number of poolings).")
flags.DEFINE_integer("width", 32, "Channels of the first stage.")
flags.DEFINE_enum("norm", "none", ["none", "batch", "group"], "Normalisation (unet).")
flags.DEFINE_bool("remat", False, "Recompute the dense layers in the backward pass (densenet).")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_integer("steps", 12, "Timed steps.")
flags.DEFINE_string("loss", "dice", "Loss name (jaxseg.losses).")
flags.DEFINE_bool("header", False, "Print the table header first.")


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    import jax

    from jaxseg import models

    cfg = models.config(name=FLAGS.model, depth=FLAGS.depth, width=FLAGS.width, norm=FLAGS.norm,
                        dtype=FLAGS.dtype, remat=FLAGS.remat)  # fmt: skip
    step = segmentation_step.build(
        cfg, size=FLAGS.size, batch=FLAGS.batch, rank=FLAGS.rank, loss=FLAGS.loss
    )
    step()  # warm-up
    times = []
    for _ in range(FLAGS.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    stats = jax.devices()[0].memory_stats() or {}
    measured = f"{stats['peak_bytes_in_use'] / 2**20:.0f}" if "peak_bytes_in_use" in stats else ""
    if FLAGS.header:
        print("| device | n dev | model | rank | size | batch | depth | width | norm | dtype | "
              "remat | params | GFLOP/step | ms/step (median) | images/s | GFLOP/s | "
              "XLA peak MiB | measured peak MiB | compile s |")  # fmt: skip
        print("|---|---:|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---:|---:|"
              "---:|---:|---:|")  # fmt: skip
    flops = step.flops
    print(
        f"| {jax.devices()[0].device_kind} | {step.devices} | {FLAGS.model} | {FLAGS.rank} | "
        f"{FLAGS.size} | {FLAGS.batch} | {FLAGS.depth} | {FLAGS.width} | {FLAGS.norm} | "
        f"{FLAGS.dtype} | {FLAGS.remat} | {step.params:,} | {flops / 1e9:.3g} | "
        f"{median * 1e3:.1f} | {FLAGS.batch / median:.2f} | {flops / median / 1e9:.3g} | "
        f"{step.peak_mib:.0f} | {measured} | {step.compile_s:.1f} |"
    )


if __name__ == "__main__":
    app.run(main)
