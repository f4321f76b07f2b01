"""jaxseg's U-Net train step against the same U-Net in PyTorch, alternated in one process.

    .venv/bin/python benchmarks/vs_pytorch.py --sizes=128,256 --batch=8 --depth=4 --width=32 \
        --steps=12 --threads=0

The network: depth-L U-Net, base width w, two 3×3 conv + ReLU per block, no norm, 2×2 max-pool,
2×2 stride-2 transposed-conv up-sampling, skip concatenated before the up-sampled features, 1×1
head; sigmoid soft-Dice loss (mean over the batch), Adam(1e-4). JAX side: the trainer's own step
(``jaxseg.train.steps.make_train_step`` on ``models.build(config(norm='none'), 'pixels', 1)``,
data-parallel over the local devices as in ``benchmarks/train_step.py``); PyTorch side: eager
``torch.nn`` (torch is an optional extra, imported in ``main``).

Checked before timing: both parameter counts equal the hand count (7,759,521 at depth 4, width
32), and at every size torch, loaded with jax's initial weights, gives jax's forward loss within
1e-4 (so both then train the same weights). Timed after compiling and warm-up, alternating torch
and jax call by call: the train step, the forward pass (loss only, no gradient) and forward +
backward (gradient of the loss); backward = grad − forward, update = step − grad. Prints the
machine's f32 matmul peak (jitted n×n matmul, 2·n³ FLOP, median), then a Markdown table with the
medians over ``--steps``: images/s, jax/torch ratio of images/s, XLA's FLOP count of the jax step
compiled for one device (the same arithmetic serves both rows) and the GFLOP/s and % of peak it
implies.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import segmentation_step
from absl import app, flags, logging

import jaxseg  # noqa: F401 (sets the fast XLA CPU flags before jax starts)

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["128", "256"], "Image heights (= widths), comma-separated.")
flags.DEFINE_integer("batch", 8, "Batch size.")
flags.DEFINE_integer("depth", 4, "U-Net depth (number of poolings).")
flags.DEFINE_integer("width", 32, "Channels of the first stage.")
flags.DEFINE_integer("steps", 12, "Timed calls of each kind per framework (median reported).")
flags.DEFINE_integer("threads", 0, "torch.set_num_threads (0: torch's default).")
flags.DEFINE_bool("channels_last", False, "Run torch in channels_last memory format.")
flags.DEFINE_integer("peak_n", 2048, "Matrix size of the f32 matmul peak measurement.")
flags.DEFINE_integer("peak_reps", 10, "Timed matmuls of the peak measurement (median).")

LOSS_TOLERANCE = 1e-4
LEARNING_RATE = 1e-4
WARMUP = 2  # untimed calls of each kind after compiling


def expected_params(depth: int, width: int, in_channels: int = 1, classes: int = 1) -> int:
    """Hand count of the U-Net's parameters: 3×3 convs, 2×2 transposed convs, 1×1 head."""
    c = [width * 2**i for i in range(depth + 1)]

    def block(cin: int, cout: int) -> int:
        return 9 * cin * cout + cout + 9 * cout * cout + cout

    encoder = sum(block(in_channels if i == 0 else c[i - 1], c[i]) for i in range(depth))
    decoder = sum(4 * c[i + 1] * c[i] + c[i] + block(2 * c[i], c[i]) for i in range(depth))
    return encoder + block(c[depth - 1], c[depth]) + decoder + c[0] * classes + classes


def torch_unet(depth: int, width: int, in_channels: int = 1, classes: int = 1):
    """The U-Net in ``torch.nn``: [B,C,H,W] -> logits [B,classes,H,W]; names mirror jaxseg's
    tree (``encoder[i]``, ``bottleneck``, ``up[i]`` + ``decoder[i]``, ``head``)."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(),
        )

    c = [width * 2**i for i in range(depth + 1)]

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.ModuleList(
                block(in_channels if i == 0 else c[i - 1], c[i]) for i in range(depth)
            )
            self.bottleneck = block(c[depth - 1], c[depth])
            self.up = nn.ModuleList(
                nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2) for i in range(depth)
            )
            self.decoder = nn.ModuleList(block(2 * c[i], c[i]) for i in range(depth))
            self.head = nn.Conv2d(c[0], classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for stage in self.encoder:
                x = stage(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for i in reversed(range(depth)):
                x = self.decoder[i](torch.cat([skips[i], self.up[i](x)], dim=1))
            return self.head(x)

    return UNet()


def load_jax_params(net, params: dict, depth: int) -> None:
    """Copy jaxseg U-Net ``params`` into ``torch_unet``'s ``net``: conv kernels HWIO -> OIHW,
    transposed-conv kernels HWIO -> IOHW flipped in space (flax does not flip, torch does)."""
    import torch

    def put(conv, p: dict, transposed: bool = False) -> None:
        k = np.asarray(p["kernel"])
        k = k.transpose(2, 3, 0, 1)[:, :, ::-1, ::-1] if transposed else k.transpose(3, 2, 0, 1)
        if tuple(k.shape) != tuple(conv.weight.shape):
            raise ValueError(f"kernel {k.shape} does not fit torch weight {conv.weight.shape}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(k.copy()))
            conv.bias.copy_(torch.from_numpy(np.array(p["bias"])))

    def put_block(seq, p: dict) -> None:
        put(seq[0], p["conv_0"])
        put(seq[2], p["conv_1"])

    for i in range(depth):
        put_block(net.encoder[i], params["encoder"][f"stage_{i}"])
        put(net.up[i], params["decoder"][f"stage_{i}"]["up"], transposed=True)
        put_block(net.decoder[i], params["decoder"][f"stage_{i}"])
    put_block(net.bottleneck, params["bottleneck"])
    put(net.head, params["head"])


def torch_dice_loss(logits, mask, smooth: float):
    """Mean over the batch of 1 − soft Dice of sigmoid(logits), as ``jaxseg.losses.dice_loss``."""
    import torch

    prob = torch.sigmoid(logits).flatten(1)
    mask = mask.flatten(1)
    dice = (2 * (prob * mask).sum(1) + smooth) / (prob.sum(1) + mask.sum(1) + smooth)
    return (1 - dice).mean()


def matmul_peak(n: int, reps: int) -> float:
    """Achieved f32 GFLOP/s of a jitted n×n @ n×n matmul (2·n³ FLOP), median of ``reps``."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    matmul = jax.jit(jnp.dot)
    jax.block_until_ready(matmul(a, b))
    return 2 * n**3 / seconds([lambda: jax.block_until_ready(matmul(a, b))], reps)[0] / 1e9


def seconds(calls: list[Callable[[], object]], reps: int) -> list[float]:
    """Median wall time of each call, the calls alternated (call 0, call 1, ..., call 0, ...)."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(reps):
        for call, t in zip(calls, times, strict=True):
            t0 = time.perf_counter()
            call()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def bench_size(size: int, peak: float) -> tuple[dict, dict, float, float]:
    """(torch row, jax row, jax loss, torch loss) at ``size``² (see the module docstring)."""
    import jax
    import jax.numpy as jnp
    import torch

    from jaxseg import losses, models

    B, depth = FLAGS.batch, FLAGS.depth
    cfg = models.config(depth=depth, width=FLAGS.width, norm="none")
    jax_step = segmentation_step.build(
        cfg, size=size, batch=B, learning_rate=LEARNING_RATE, seed=size
    )
    model, task, host, batch = jax_step.model, jax_step.task, jax_step.host, jax_step.batch
    flops = jax_step.flops

    # jax: the loss alone / with its gradient for the split
    def loss_of(params: dict, batch: dict) -> jax.Array:
        logits = model.apply({"params": params}, batch["image"], train=True)
        return jnp.mean(task.loss(logits, batch))

    params = jax_step.state["params"]
    forward = jax.jit(loss_of).lower(params, batch).compile()
    grad = jax.jit(jax.value_and_grad(loss_of)).lower(params, batch).compile()
    jax_loss = float(forward(params, batch))

    # torch: same weights, same batch (NCHW)
    net = torch_unet(depth, FLAGS.width)
    load_jax_params(net, jax.device_get(params), depth)
    x = torch.from_numpy(host["image"].transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(host["mask"].transpose(0, 3, 1, 2).copy())
    if FLAGS.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x, y = (t.contiguous(memory_format=torch.channels_last) for t in (x, y))
    with torch.no_grad():
        torch_loss = float(torch_dice_loss(net(x), y, losses.SMOOTH))
    if abs(torch_loss - jax_loss) > LOSS_TOLERANCE:
        raise AssertionError(
            f"size {size}: torch loss {torch_loss:.7f} != jax loss {jax_loss:.7f} for the same "
            f"weights (tolerance {LOSS_TOLERANCE}): the two networks differ"
        )
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)

    def torch_step() -> None:
        opt.zero_grad(set_to_none=True)
        torch_dice_loss(net(x), y, losses.SMOOTH).backward()
        opt.step()

    def torch_forward() -> None:
        with torch.no_grad():
            torch_dice_loss(net(x), y, losses.SMOOTH)

    def torch_grad() -> None:
        net.zero_grad(set_to_none=True)
        torch_dice_loss(net(x), y, losses.SMOOTH).backward()

    def jax_forward() -> None:
        jax.block_until_ready(forward(jax_step.state["params"], batch))

    def jax_grad() -> None:
        jax.block_until_ready(grad(jax_step.state["params"], batch))

    calls = [torch_step, jax_step, torch_forward, jax_forward, torch_grad, jax_grad]
    seconds(calls, WARMUP)
    t_step, j_step, t_fwd, j_fwd, t_grad, j_grad = seconds(calls, FLAGS.steps)

    def row(name: str, step_s: float, fwd_s: float, grad_s: float) -> dict:
        return {
            "framework": name,
            "size": size,
            "ms/step": step_s * 1e3,
            "images/s": B / step_s,
            "GFLOP/s": flops / step_s / 1e9,
            "% peak": 100 * flops / step_s / 1e9 / peak,
            "forward ms": fwd_s * 1e3,
            "backward ms": (grad_s - fwd_s) * 1e3,
            "update ms": (step_s - grad_s) * 1e3,
            "GFLOP/step": flops / 1e9,
        }

    return (
        row("torch" + (" channels_last" if FLAGS.channels_last else ""), t_step, t_fwd, t_grad),
        row("jax", j_step, j_fwd, j_grad),
        jax_loss,
        torch_loss,
    )


def count_params(depth: int, width: int) -> tuple[int, int]:
    """(jax, torch) parameter counts of the two U-Nets (jax via ``eval_shape``: no compute)."""
    import jax

    from jaxseg import models

    model = models.build(models.config(depth=depth, width=width, norm="none"), "pixels", 1)
    size = 2**depth
    shapes = jax.eval_shape(
        model.init, jax.random.PRNGKey(0), jax.ShapeDtypeStruct((1, size, size, 1), "float32")
    )
    n_jax = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))
    n_torch = sum(p.numel() for p in torch_unet(depth, width).parameters())
    return n_jax, n_torch


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    sizes = [int(s) for s in FLAGS.sizes]
    counts = (FLAGS.steps, FLAGS.batch, FLAGS.peak_n, FLAGS.peak_reps, *sizes)
    if min(counts) < 1 or FLAGS.threads < 0:
        raise ValueError(
            f"--sizes={','.join(FLAGS.sizes)} --batch={FLAGS.batch} --steps={FLAGS.steps} "
            f"--peak_n={FLAGS.peak_n} --peak_reps={FLAGS.peak_reps} --threads={FLAGS.threads}: "
            "use positive values (--threads 0 = torch's default)"
        )
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install failing inside its import
        sys.exit(
            f"benchmarks/vs_pytorch.py needs torch ({type(e).__name__}: {e}); install the CPU "
            "wheel: pip install torch --index-url https://download.pytorch.org/whl/cpu"
        )
    import jax

    if FLAGS.threads:
        torch.set_num_threads(FLAGS.threads)
    n_jax, n_torch = count_params(FLAGS.depth, FLAGS.width)
    n_hand = expected_params(FLAGS.depth, FLAGS.width)
    if not n_jax == n_torch == n_hand:
        raise AssertionError(
            f"parameter counts differ: jax {n_jax:,}, torch {n_torch:,}, by hand {n_hand:,}"
        )
    print(
        f"jax {jax.__version__} ({jax.devices()[0].device_kind}, {jax.device_count()} devices, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )
    print(f"params: jax {n_jax:,}, torch {n_torch:,}, by hand {n_hand:,}")
    peak = matmul_peak(FLAGS.peak_n, FLAGS.peak_reps)
    print(
        f"f32 matmul peak: {peak:.4g} GFLOP/s ({FLAGS.peak_n}² matmul, median of {FLAGS.peak_reps})"
    )
    rows = []
    for size in sizes:
        torch_row, jax_row, jax_loss, torch_loss = bench_size(size, peak)
        print(
            f"loss check {size}²: jax {jax_loss:.7f}, torch {torch_loss:.7f}, "
            f"|diff| {abs(jax_loss - torch_loss):.2e} <= {LOSS_TOLERANCE:g}"
        )
        jax_row["jax/torch"] = jax_row["images/s"] / torch_row["images/s"]
        rows += [torch_row, jax_row]
    print(
        "| framework | size | batch | ms/step | images/s | jax/torch | XLA GFLOP/step | GFLOP/s "
        "| % peak | forward ms | backward ms | update ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r['jax/torch']:.3f}" if "jax/torch" in r else ""
        print(
            f"| {r['framework']} | {r['size']} | {FLAGS.batch} | {r['ms/step']:.2f} | "
            f"{r['images/s']:.4g} | {ratio} | {r['GFLOP/step']:.4g} | {r['GFLOP/s']:.4g} | "
            f"{r['% peak']:.3g} | {r['forward ms']:.2f} | {r['backward ms']:.2f} | "
            f"{r['update ms']:.2f} |"
        )


if __name__ == "__main__":
    app.run(main)
