"""R independent runs trained in one compiled program vs one by one.

    .venv/bin/python benchmarks/many_runs.py --runs=1,2,4,8 --size=64 --depth=3 --width=8 \
        --batch=8 --steps=10

A study's runs (folds, seeds, label budgets) with the same shapes could share one compiled
program: params, optimizer states and metrics stacked on a leading run axis [R,...], each run
with its own batch [R,B,H,W,1]. Two ways of stepping them together, against R calls of the
trainer's single-run step (``jaxseg.train.steps.make_train_step``: soft-Dice loss, Adam):

- ``vmap``: one ``jax.vmap``-ed step (per-run weights make every convolution a grouped one);
- ``program``: R copies of the step unrolled in one program whose run axis is split over a
  ``runs`` mesh axis (``jax.shard_map``) of gcd(R, devices) devices: with several devices (GPUs,
  or ``--xla_force_host_platform_device_count``) each runs its share of the runs side by side.

For each R, checked once before timing: both together-steps give every run r the new params of
run r's own sequential step within 1e-5. Then, after compiling and one warm-up call of each, the
three are timed alternately; the Markdown table gives the medians over ``--steps`` (ms for all R
runs), images/s (R·B images per step) and each together-strategy's throughput over one-by-one
(> 1: training together pays).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import segmentation_step
from absl import app, flags, logging

import jaxseg  # noqa: F401 (sets the fast XLA CPU flags before jax starts)

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", ["1", "2", "4", "8"], "Numbers of runs trained together.")
flags.DEFINE_integer("size", 64, "Image height and width.")
flags.DEFINE_integer("batch", 8, "Batch size of each run.")
flags.DEFINE_integer("depth", 3, "U-Net depth (number of poolings).")
flags.DEFINE_integer("width", 8, "Channels of the first stage.")
flags.DEFINE_integer("steps", 10, "Timed steps (median reported).")

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

    from jaxseg.train.state import TrainMetrics
    from jaxseg.train.steps import make_train_step, new_state

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
    step = make_train_step(model, task, tx)
    vmapped = jax.jit(jax.vmap(step), donate_argnums=(0, 1))
    program = jax.jit(program_of_runs(step, R), donate_argnums=(0, 1))

    def copy(tree):
        return jax.tree.map(lambda x: x.copy(), tree)

    # the same new params, run by run (copies: every step donates its inputs)
    sequential = [
        single(copy(s), copy(a), b)[0]["params"]
        for s, a, b in zip(states, accs, batches, strict=True)
    ]
    compiled, compile_s, diffs, stacked = {}, {}, {}, {}
    for name, fn in (("vmap", vmapped), ("program", program)):
        t0 = time.perf_counter()
        compiled[name] = fn.lower(stack(states), stack(accs), stacked_batch).compile()
        compile_s[name] = time.perf_counter() - t0
        together = unstack(
            compiled[name](stack(states), stack(accs), stacked_batch)[0]["params"], R
        )
        diffs[name] = max(max_abs_diff(t, s) for t, s in zip(together, sequential, strict=True))
        if not diffs[name] <= TOLERANCE:
            raise AssertionError(
                f"R={R}: {name} params differ from the sequential runs' by {diffs[name]:.2e} "
                f"(tolerance {TOLERANCE:g})"
            )
        stacked[name] = (stack(states), stack(accs))

    def run_together(name: str):
        def call() -> None:
            stacked[name] = compiled[name](*stacked[name], stacked_batch)
            jax.block_until_ready(stacked[name])

        return call

    def one_by_one() -> None:
        for r in range(R):
            states[r], accs[r] = single(states[r], accs[r], batches[r])
        jax.block_until_ready(states)

    calls = (run_together("vmap"), run_together("program"), one_by_one)
    for call in calls:  # warm-up
        call()
    times: tuple[list[float], ...] = ([], [], [])
    for _ in range(FLAGS.steps):
        for call, t in zip(calls, times, strict=True):
            t0 = time.perf_counter()
            call()
            t.append(time.perf_counter() - t0)
    t_vmap, t_program, t_seq = (statistics.median(t) for t in times)
    return {
        "runs": R,
        "vmap ms": t_vmap * 1e3,
        "program ms": t_program * 1e3,
        "sequential ms": t_seq * 1e3,
        "sequential images/s": R * B / t_seq,
        "vmap ratio": t_seq / t_vmap,
        "program ratio": t_seq / t_program,
        "max |Δparams|": max(diffs.values()),
        "compile s": compile_s,
    }


def program_of_runs(step, R: int):
    """``step`` for R runs stacked on a leading axis: R unrolled copies in one program, the run
    axis split over a ``runs`` mesh of gcd(R, devices) devices."""
    import math

    import jax
    from jax.sharding import Mesh, PartitionSpec

    devices = jax.devices()[: math.gcd(R, jax.device_count())]
    mesh = Mesh(np.array(devices), ("runs",))

    def local(state, acc, batch):
        n = jax.tree.leaves(state)[0].shape[0]  # this device's runs
        return stack([step(*run) for run in unstack((state, acc, batch), n)])

    runs = PartitionSpec("runs")
    return jax.shard_map(local, mesh=mesh, in_specs=runs, out_specs=runs)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    import jax
    import optax

    from jaxseg import models, tasks
    from jaxseg.train.steps import make_train_step

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
        "| runs | size | batch/run | devices | sequential ms | vmap ms | program ms "
        "| sequential images/s | vmap/sequential | program/sequential | max abs Δparams "
        "| compile s (vmap, program) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['runs']} | {FLAGS.size} | {FLAGS.batch} | {jax.device_count()} | "
            f"{r['sequential ms']:.2f} | {r['vmap ms']:.2f} | {r['program ms']:.2f} | "
            f"{r['sequential images/s']:.4g} | {r['vmap ratio']:.3f} | "
            f"{r['program ratio']:.3f} | {r['max |Δparams|']:.1e} | "
            f"{r['compile s']['vmap']:.1f}, {r['compile s']['program']:.1f} |"
        )


if __name__ == "__main__":
    app.run(main)
