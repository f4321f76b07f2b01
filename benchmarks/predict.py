"""Images/s of ``jaxseg predict``'s inference: one window per image (the training size), with
and without flip TTA, and sliding windows over a larger image or volume.

    .venv/bin/python benchmarks/predict.py --header --window=64 --image=64
    .venv/bin/python benchmarks/predict.py --window=64 --image=64 --tta
    .venv/bin/python benchmarks/predict.py --window=128 --image=512
    .venv/bin/python benchmarks/predict.py --model=densenet --rank=3 --window=64 --image=128

Prints one Markdown table row. The network gets random numpy weights (speed does not depend on
them) and is wrapped as ``infer.runs.Networks.probabilities`` wraps a trained one (jitted
sigmoid of the logits); the timed call is ``infer.window.sliding_window`` (with
``infer.tta.flip_tta`` for --tta) on one standardised image, median over --repeats after a
warm-up call that compiles.
"""

from __future__ import annotations

import statistics
import time
import zlib

from absl import app, flags, logging

import jaxseg  # noqa: F401 (sets the fast XLA CPU flags before jax starts)

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "unet", "Model name (jaxseg.models.MODELS).")
flags.DEFINE_integer("rank", 2, "Spatial dimensions: 2 or 3.")
flags.DEFINE_integer("window", 64, "Window side (the training size).")
flags.DEFINE_integer("image", 64, "Image side (every spatial dimension).")
flags.DEFINE_integer("depth", 3, "U-Net depth.")
flags.DEFINE_integer("width", 8, "Channels of the first stage (the demo's U-Net: 8).")
flags.DEFINE_integer("batch", 4, "Windows per device call.")
flags.DEFINE_float("overlap", 0.5, "Of neighbouring windows.")
flags.DEFINE_bool("tta", False, "Average over every flip of the spatial axes.")
flags.DEFINE_integer("repeats", 5, "Timed calls.")
flags.DEFINE_bool("header", False, "Print the table header first.")


def initial(path, leaf):
    """A numpy value for one parameter or statistic, shaped and scaled as flax initialises it."""
    import numpy as np

    name = str(path[-1].key)
    if name == "kernel":
        fan_in = int(np.prod(leaf.shape[:-1]))
        rng = np.random.default_rng(zlib.crc32(str(path).encode()))
        return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
    return np.full(leaf.shape, 1.0 if name in ("scale", "var") else 0.0, leaf.dtype)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    import jax
    import numpy as np

    from jaxseg import models
    from jaxseg.infer import tta, window

    extra = dict(dense_layers=(2, 2, 4), growth=8, groups=4) if FLAGS.model == "densenet" else {}
    cfg = models.config(name=FLAGS.model, depth=FLAGS.depth, width=FLAGS.width, **extra)
    model = models.build(cfg, "pixels", 1)
    shape = (FLAGS.window,) * FLAGS.rank
    # numpy weights as flax initialises them (kernels lecun-normal, biases 0, BatchNorm scale and
    # variance 1): compiling flax's initialisers takes longer than the measurement at small sizes
    abstract = jax.eval_shape(
        lambda: model.init(jax.random.PRNGKey(0), np.zeros((1, *shape, 1), np.float32))
    )
    variables = jax.tree_util.tree_map_with_path(initial, abstract)
    predict = jax.jit(lambda x: jax.nn.sigmoid(model.apply(variables, x, train=False)))
    if FLAGS.tta:
        predict = tta.flip_tta(predict, FLAGS.rank)
    image = np.random.default_rng(0).normal(size=(FLAGS.image,) * FLAGS.rank + (1,))
    image = image.astype(np.float32)

    def run() -> np.ndarray:
        return window.sliding_window(predict, image, shape, FLAGS.overlap, FLAGS.batch)

    run()  # compiles
    times = []
    for _ in range(FLAGS.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    tiles = int(np.prod([len(window.tile_starts(FLAGS.image, FLAGS.window, FLAGS.overlap))]
                        * FLAGS.rank))  # fmt: skip
    if FLAGS.header:
        print("| device | model | rank | window | image | windows | TTA | s/image (median) | "
              "images/s |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    print(
        f"| {jax.devices()[0].device_kind} | {FLAGS.model} | {FLAGS.rank} | {FLAGS.window} | "
        f"{FLAGS.image} | {tiles} | {FLAGS.tta} | {median:.3f} | {1 / median:.2f} |"
    )


if __name__ == "__main__":
    app.run(main)
