"""Tests for the ImageNet-style backbones (VGG16, ResNet50, ResNeXt50), the U-Net over a
backbone and DeepLabv3: parameter counts, trees, head kinds, output strides, errors, training.

Shapes and counts come from ``jax.eval_shape`` (nothing compiles); only the two training tests
compile, with XLA's backend optimisation off (a ResNet50 step compiles ~3× faster on a CPU).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxseg.models import backbone_unet, backbones, deeplab

KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)  # an abstract PRNG key for eval_shape
NAMES = sorted(backbones.BACKBONES)

# torchvision: vgg16().features, vgg16_bn().features, resnet50() and resnext50_32x4d() without fc
TORCHVISION_PARAMS = {
    ("vgg16", "none"): 14_714_688,
    ("vgg16", "batch"): 14_723_136,
    ("resnet50", "batch"): 23_508_032,
    ("resnext50", "batch"): 22_979_904,
}


def config(backbone: str = "resnet50", name: str = "unet", **kw) -> ml_collections.ConfigDict:
    cfg = dict(
        name=name,
        backbone=backbone,
        width=4,
        norm="batch",
        dropout=0.0,
        upsample="transpose",
        dtype="float32",
        output_stride=16,
        aspp_rates=(6, 12, 18),
        aspp_width=8,
    )
    return ml_collections.ConfigDict({**cfg, **kw})


def abstract_init(model, shape: tuple[int, ...]) -> dict:
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), KEY, x)


def abstract_apply(model, variables, shape: tuple[int, ...], **kw):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(functools.partial(model.apply, train=False, **kw), variables, x)


def flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    return {
        "/".join(str(k.key) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def count(tree) -> int:
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(tree))


@pytest.mark.parametrize(("name", "norm"), sorted(TORCHVISION_PARAMS))
def test_encoder_parameter_counts_equal_torchvision(name, norm):
    encoder = backbones.BACKBONES[name](norm=norm)
    variables = abstract_init(encoder, (1, 64, 64, 3))
    assert count(variables["params"]) == TORCHVISION_PARAMS[name, norm]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("build", "head", "shape"),
    [
        (backbone_unet.build, "pixels", (2, 32, 32, 3)),
        (backbone_unet.build, "reconstruction", (2, 32, 32, 3)),
        (backbone_unet.build, "pooled", (2, 3)),
        (deeplab.build, "pixels", (2, 32, 32, 3)),
        (deeplab.build, "pooled", (2, 3)),
    ],
)
def test_head_output_shapes_and_float32(name, build, head, shape):
    model = build(config(name, dtype="bfloat16"), head, 3, "")
    out = abstract_apply(model, abstract_init(model, (2, 32, 32, 1)), (2, 32, 32, 1))
    assert out.shape == shape and out.dtype == jnp.float32


@pytest.mark.parametrize("name", NAMES)
def test_reconstruction_has_the_pixels_parameter_shapes(name):
    pixels = abstract_init(backbone_unet.build(config(name), "pixels", 1, ""), (1, 32, 32, 1))
    recon = abstract_init(
        backbone_unet.build(config(name), "reconstruction", 1, ""), (1, 32, 32, 1)
    )
    assert flat_shapes(pixels) == flat_shapes(recon)


def test_resnet_unet_tree():
    """Stem/layers as stage_0..4, bias-free convs, grouped ResNeXt kernels, decoder widths."""
    width = 4
    params = abstract_init(
        backbone_unet.build(config("resnext50"), "pixels", 2, ""), (1, 64, 64, 1)
    )
    p = flat_shapes(params["params"])
    assert sorted(params["params"]) == ["bottleneck", "decoder", "encoder", "head"]
    assert sorted(params["params"]["encoder"]) == [f"stage_{i}" for i in range(5)]
    assert p["encoder/stage_0/conv_0/kernel"] == (7, 7, 1, 64)
    assert "encoder/stage_0/conv_0/bias" not in p
    assert p["encoder/stage_0/norm_0/bn/scale"] == (64,)
    # ResNeXt50-32x4d layer1: width 128 in 32 groups -> 4 input channels per group
    assert p["encoder/stage_1/block_0/conv_1/kernel"] == (3, 3, 4, 128)
    assert p["encoder/stage_1/block_0/proj/kernel"] == (1, 1, 64, 256)
    assert p["encoder/stage_1/block_0/proj_norm/bn/bias"] == (256,)
    assert "encoder/stage_1/block_1/proj/kernel" not in p
    assert p["encoder/stage_4/block_2/conv_2/kernel"] == (1, 1, 1024, 2048)
    assert sorted(params["params"]["encoder"]["stage_3"]) == [f"block_{b}" for b in range(6)]
    # bottleneck width·2^5 on the stride-32 stage; decoder stage i: width·2^i, skip = stage i
    assert p["bottleneck/conv_0/kernel"] == (3, 3, 2048, 32 * width)
    assert sorted(params["params"]["decoder"]) == [f"stage_{i}" for i in range(4)]
    assert p["decoder/stage_3/up/kernel"] == (2, 2, 32 * width, 8 * width)
    assert p["decoder/stage_3/conv_0/kernel"] == (3, 3, 1024 + 8 * width, 8 * width)
    assert p["decoder/stage_0/conv_0/kernel"] == (3, 3, 64 + width, width)
    assert p["head/kernel"] == (1, 1, width, 2)


def test_vgg_unet_tree():
    """2,2,3,3,3 biased convs; pool before the bottleneck; 5 decoder stages to full size."""
    width = 4
    model = backbone_unet.build(config("vgg16", norm="none"), "pixels", 1, "")
    params = abstract_init(model, (1, 32, 32, 3))["params"]
    p = flat_shapes(params)
    convs = [len([k for k in params["encoder"][f"stage_{i}"]]) for i in range(5)]
    assert convs == [2, 2, 3, 3, 3]
    assert p["encoder/stage_0/conv_0/kernel"] == (3, 3, 3, 64)
    assert p["encoder/stage_4/conv_2/bias"] == (512,)
    assert p["bottleneck/conv_0/kernel"] == (3, 3, 512, 32 * width)
    assert sorted(params["decoder"]) == [f"stage_{i}" for i in range(5)]
    assert p["decoder/stage_4/conv_0/kernel"] == (3, 3, 512 + 16 * width, 16 * width)
    assert p["decoder/stage_0/conv_0/kernel"] == (3, 3, 64 + width, width)


def test_deeplab_tree():
    model = deeplab.build(config("resnet50", name="deeplabv3"), "pixels", 2, "")
    p = flat_shapes(abstract_init(model, (1, 32, 32, 1))["params"])
    assert {k.split("/")[0] for k in p} == {"encoder", "decoder", "head"}
    aspp = {k.split("/")[2] for k in p if k.startswith("decoder/aspp/")}
    branches = {f"conv_{j}" for j in range(4)} | {f"norm_{j}" for j in range(4)}
    assert aspp == branches | {"pool", "pool_norm", "project", "project_norm"}
    assert p["decoder/aspp/conv_0/kernel"] == (1, 1, 2048, 8)
    assert p["decoder/aspp/conv_2/kernel"] == (3, 3, 2048, 8)
    assert p["decoder/aspp/project/kernel"] == (1, 1, 5 * 8, 8)
    assert p["decoder/conv/kernel"] == (3, 3, 8, 8)
    assert p["decoder/norm/bn/scale"] == (8,)
    assert p["head/kernel"] == (1, 1, 8, 2)


@pytest.mark.parametrize(
    ("name", "output_stride", "strides"),
    [
        ("resnet50", 16, (2, 4, 8, 16, 16)),
        ("resnext50", 8, (2, 4, 8, 8, 8)),
        ("vgg16", 16, (1, 2, 4, 8, 16)),
        ("vgg16", 8, (1, 2, 4, 8, 8)),
    ],
)
def test_deeplab_output_stride(name, output_stride, strides):
    """Stage feature sizes follow the output stride; the ASPP runs at it; rates scale with it."""
    cfg = config(name, name="deeplabv3", output_stride=output_stride)
    model = deeplab.build(cfg, "pixels", 1, "")
    variables = abstract_init(model, (1, 64, 64, 1))
    out, state = abstract_apply(
        model, variables, (1, 64, 64, 1), capture_intermediates=True, mutable=["intermediates"]
    )
    stages = state["intermediates"]["encoder"]
    sizes = tuple(64 // stages[f"stage_{i}"]["__call__"][0].shape[1] for i in range(5))
    assert sizes == strides
    aspp = state["intermediates"]["decoder"]["aspp"]["__call__"][0]
    assert aspp.shape == (1, 64 // output_stride, 64 // output_stride, 8)
    assert model.rates == {16: (6, 12, 18), 8: (12, 24, 36)}[output_stride]
    assert out.shape == (1, 64, 64, 1)


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"model.backbone='vgg19' is unknown"):
        backbone_unet.build(config("vgg19"), "pixels", 1, "")
    with pytest.raises(ValueError, match=r"model.output_stride=32 .* use one of \(8, 16\)"):
        deeplab.build(config(name="deeplabv3", output_stride=32), "pixels", 1, "")
    with pytest.raises(ValueError, match=r"'deeplabv3' has no head 'reconstruction'"):
        deeplab.build(config(name="deeplabv3"), "reconstruction", 1, "")
    with pytest.raises(ValueError, match=r"no head 'vector'"):
        backbone_unet.build(config(), "vector", 1, "")
    with pytest.raises(ValueError, match=r"model.dtype='float64' is unknown"):
        backbone_unet.build(config(dtype="float64"), "pixels", 1, "")
    model = backbone_unet.build(config(), "pixels", 1, "")
    with pytest.raises(ValueError, match=r"image size 48x48 is not divisible by 32"):
        abstract_init(model, (1, 48, 48, 1))
    model = deeplab.build(config(name="deeplabv3", aspp_rates=(6, 12)), "pixels", 1, "")
    with pytest.raises(ValueError, match=r"aspp_rates=\(6, 12\) must hold 3"):
        abstract_init(model, (1, 32, 32, 1))


def he_init(model, shape: tuple[int, ...], seed: int = 0) -> dict:
    """He-normal kernels, zero biases/means, unit scales/variances, without compiling init."""
    rng = np.random.default_rng(seed)

    def fill(path, s):
        name = str(path[-1].key)
        if name in ("scale", "var"):
            return np.ones(s.shape, np.float32)
        if name in ("bias", "mean"):
            return np.zeros(s.shape, np.float32)
        fan_in = np.prod(s.shape[:-1])
        return (rng.standard_normal(s.shape) * np.sqrt(2 / fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract_init(model, shape))


@pytest.mark.parametrize("build", [backbone_unet.build, deeplab.build])
def test_resnet50_models_train_and_frozen_norms_keep_statistics(build):
    """3 Adam steps of soft Dice on a 2-image 32² batch lower the loss; the BatchNorms of the
    ``frozen`` stem keep their statistics while the others update."""
    model = build(
        config(name="unet" if build is backbone_unet.build else "deeplabv3"),
        "pixels",
        1,
        "encoder/stage_0/",
    )
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 32, 32, 1)), jnp.float32)
    y = (x > 0.3).astype(jnp.float32)
    variables = he_init(model, (2, 32, 32, 1))
    optimizer = optax.adam(1e-3)

    def loss_fn(params, stats):
        logits, state = model.apply(
            {"params": params, "batch_stats": stats},
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": jax.random.key(0)},  # the same ASPP dropout mask every step
        )
        p = jax.nn.sigmoid(logits)
        return 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1), state["batch_stats"]

    def step(params, stats, opt_state):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    params, stats = variables["params"], variables["batch_stats"]
    opt_state = optimizer.init(params)
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    step = jax.jit(step).lower(params, stats, opt_state).compile(fast)
    losses = []
    for _ in range(3):
        params, stats, opt_state, loss = step(params, stats, opt_state)
        losses.append(float(loss))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    before, after = variables["batch_stats"]["encoder"], stats["encoder"]
    np.testing.assert_array_equal(after["stage_0"]["norm_0"]["bn"]["var"], 1.0)
    np.testing.assert_array_equal(after["stage_0"]["norm_0"]["bn"]["mean"], 0.0)
    moved = after["stage_1"]["block_0"]["norm_0"]["bn"]["mean"]
    assert not np.allclose(moved, before["stage_1"]["block_0"]["norm_0"]["bn"]["mean"])
