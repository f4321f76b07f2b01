"""R independent runs trained together (``jax.vmap`` of the train step) vs one by one.

    .venv/bin/python benchmarks/many_runs.py --runs=1,2,4,8 --size=64 --depth=3 --width=8 \
        --batch=8 --steps=10

A study's runs (folds, seeds, label budgets) with the same shapes could share one compiled
program: params, optimizer states and metrics stacked on a leading run axis [R,...], each run
with its own batch [R,B,H,W,1], one ``jax.vmap``-ed call of the trainer's step
(``jaxseg.train.loop.make_train_step``: soft-Dice loss, Adam) per step. The alternative is R
calls of the single-run step. Runs differ by init seed and data.

For each R, checked once before timing: the vmapped step's new params of every run r equal those
of run r's own sequential step within 1e-5. Then, after compiling and one warm-up call of each,
one vmapped call and R sequential calls are timed alternately; the Markdown table gives the
medians over ``--steps``, images/s of both (R·B images per step) and the throughput ratio
together/one-by-one (> 1: vmap pays).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import segmentation_step
from absl import app, flags, logging

from jaxseg.xla_flags import set_fast_cpu_flags

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", ["1", "2", "4", "8"], "Numbers of runs trained together.")
flags.DEFINE_integer("size", 64, "Image height and width.")
flags.DEFINE_integer("batch", 8, "Batch size of each run.")
flags.DEFINE_integer("depth", 3, "U-Net depth (number of poolings).")
flags.DEFINE_integer("width", 8, "Channels of the first stage.")
flags.DEFINE_integer("steps", 10, "Timed steps (median reported).")
flags.DEFINE_bool("fast_cpu", True, "Set the XLA CPU convolution flag (jaxseg.xla_flags).")

TOLERANCE = 1e-5


def stack(trees: list):
    """Pytrees of equal structure -> one pytree whose leaves gain a leading run axis [R,...]."""
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack(tree, n: int) -> list:
    """Inverse of ``stack``: run r's pytree for r in 0..n-1."""
    import jax

    return [jax.tree.map(lambda x, r=r: x[r], tree) for r in range(n)]


def max_abs_diff(a, b) -> float:
    """Largest |a − b| over all leaves of two pytrees of equal structure."""
    import jax

    diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b)
    return max(jax.tree.leaves(diffs), default=0.0)


def bench_runs(R: int, model, task, tx, single) -> dict:
    """One table row for R runs (see the module docstring)."""
    import jax

    from jaxseg.train.loop import make_train_step, new_state
    from jaxseg.train.state import TrainMetrics

    B, size = FLAGS.batch, FLAGS.size
    states, batches = [], []
    for r in range(R):
        batches.append(segmentation_step.random_batch(B, size, 2, seed=r))
        variables = dict(model.init(jax.random.PRNGKey(r), batches[-1]["image"][:1]))
        variables.setdefault("batch_stats", {})
        states.append(new_state(variables, tx, seed=r))
    accs = [TrainMetrics.empty() for _ in range(R)]
    batches = jax.device_put(batches)
    stacked_batch = stack(batches)
    together = jax.jit(jax.vmap(make_train_step(model, task, tx)), donate_argnums=(0, 1))

    def copy(tree):
        return jax.tree.map(lambda x: x.copy(), tree)

    # the same new params, run by run (copies: both steps donate their inputs)
    sequential = [
        single(copy(s), copy(a), b)[0]["params"]
        for s, a, b in zip(states, accs, batches, strict=True)
    ]
    t0 = time.perf_counter()
    compiled = together.lower(stack(states), stack(accs), stacked_batch).compile()
    compile_s = time.perf_counter() - t0
    vmapped = unstack(compiled(stack(states), stack(accs), stacked_batch)[0]["params"], R)
    diff = max(max_abs_diff(v, s) for v, s in zip(vmapped, sequential, strict=True))
    if not diff <= TOLERANCE:
        raise AssertionError(
            f"R={R}: vmapped params differ from the sequential runs' by {diff:.2e} "
            f"(tolerance {TOLERANCE:g})"
        )

    stacked_state, stacked_acc = stack(states), stack(accs)

    def run_together() -> None:
        nonlocal stacked_state, stacked_acc
        stacked_state, stacked_acc = compiled(stacked_state, stacked_acc, stacked_batch)
        jax.block_until_ready(stacked_state)

    def one_by_one() -> None:
        for r in range(R):
            states[r], accs[r] = single(states[r], accs[r], batches[r])
        jax.block_until_ready(states)

    run_together()  # warm-up
    one_by_one()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(FLAGS.steps):
        for call, t in zip((run_together, one_by_one), times, strict=True):
            t0 = time.perf_counter()
            call()
            t.append(time.perf_counter() - t0)
    t_vmap, t_seq = (statistics.median(t) for t in times)
    return {
        "runs": R,
        "vmap ms": t_vmap * 1e3,
        "sequential ms": t_seq * 1e3,
        "vmap images/s": R * B / t_vmap,
        "sequential images/s": R * B / t_seq,
        "ratio": t_seq / t_vmap,
        "max |Δparams|": diff,
        "vmap compile s": compile_s,
    }


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.fast_cpu:
        set_fast_cpu_flags()
    import jax
    import optax

    from jaxseg import models, tasks
    from jaxseg.train.loop import make_train_step

    runs = [int(r) for r in FLAGS.runs]
    if min(runs) < 1 or FLAGS.steps < 1 or FLAGS.batch < 1:
        raise ValueError(
            f"--runs={','.join(FLAGS.runs)}, --steps={FLAGS.steps}, --batch={FLAGS.batch}: "
            "use positive values"
        )
    task = tasks.build("segmentation", "dice")
    cfg = models.config(depth=FLAGS.depth, width=FLAGS.width, norm="none")
    model = models.build(cfg, "pixels", 1)
    tx = optax.adam(1e-4)
    single = jax.jit(make_train_step(model, task, tx), donate_argnums=(0, 1))
    print(
        f"jax {jax.__version__} ({jax.devices()[0].device_kind}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}); U-Net depth {FLAGS.depth} width "
        f"{FLAGS.width}, {FLAGS.size}², batch {FLAGS.batch} per run"
    )
    rows = [bench_runs(R, model, task, tx, single) for R in runs]
    print(
        "| runs | size | batch/run | vmap ms | sequential ms | vmap images/s "
        "| sequential images/s | vmap/sequential | max abs Δparams | vmap compile s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['runs']} | {FLAGS.size} | {FLAGS.batch} | {r['vmap ms']:.2f} | "
            f"{r['sequential ms']:.2f} | {r['vmap images/s']:.4g} | "
            f"{r['sequential images/s']:.4g} | {r['ratio']:.3f} | {r['max |Δparams|']:.1e} | "
            f"{r['vmap compile s']:.1f} |"
        )


if __name__ == "__main__":
    app.run(main)
