"""Tests for jaxseg.models: the U-Net / Localizer parameter-tree contract, shapes, norms,
dropout, dtypes and the build registry.

Structure and shape checks use ``jax.eval_shape`` (nothing compiles); where real numbers are
needed the variables are filled from numpy instead of ``model.init``, because random-initialiser
compilation is slow on small CPUs.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxseg import models
from jaxseg.models import layers
from jaxseg.models.aspp import ASPP
from jaxseg.models.layers import Norm, pooled_head
from jaxseg.models.unet import Localizer, UNet
from jaxseg.surgery.paths import select, selector

KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)  # an abstract PRNG key for eval_shape


def abstract_init(model: nn.Module, shape: tuple[int, ...]) -> dict:
    """Variables of ``model`` as ShapeDtypeStructs, without compiling anything."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), KEY, x)


def numpy_init(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> dict:
    """Concrete variables of ``model``: N(0, 0.3) params, zero means and unit variances."""
    rng = np.random.default_rng(seed)
    flat = jax.tree_util.tree_flatten_with_path(abstract_init(model, shape))
    leaves = []
    for path, s in flat[0]:
        name = jax.tree_util.keystr(path)
        if "'var'" in name:
            leaves.append(np.ones(s.shape, s.dtype))
        elif "'mean'" in name:
            leaves.append(np.zeros(s.shape, s.dtype))
        else:
            leaves.append((0.3 * rng.standard_normal(s.shape)).astype(s.dtype))
    return jax.tree.unflatten(flat[1], leaves)


def count(tree) -> int:
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(tree))


def conv(k: int, cin: int, cout: int, bias: bool) -> int:
    return k * k * cin * cout + (cout if bias else 0)


def expected_unet_params(depth, width, cin, classes, norm="none", upsample="transpose"):
    """Parameter count of the U-Net computed by hand from the architecture description."""
    bias = norm == "none"
    norm_params = 0 if norm == "none" else 2  # scale + bias per channel (batch and group)

    def block(c_in, f):
        return conv(3, c_in, f, bias) + conv(3, f, f, bias) + 2 * norm_params * f

    total = 0
    c = cin
    for i in range(depth):
        total += block(c, width * 2**i)
        c = width * 2**i
    total += block(c, width * 2**depth)
    for i in range(depth):
        f, c_up = width * 2**i, width * 2 ** (i + 1)
        up = conv(2, c_up, f, True) if upsample == "transpose" else conv(3, c_up, f, True)
        total += up + block(2 * f, f)
    return total + conv(1, width, classes, True)


def flat_paths(tree) -> dict[str, tuple[int, ...]]:
    return {
        "/".join(str(k.key) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def unet_cfg(**kw) -> ml_collections.ConfigDict:
    cfg = dict(name="unet", depth=2, width=4, norm="none", dropout=0.0, upsample="transpose")
    cfg["dtype"] = "float32"
    cfg.update(kw)
    return ml_collections.ConfigDict(cfg)


# --------------------------------------------------------------------------- parameter tree


def test_reference_unet_has_7_759_521_params():
    variables = abstract_init(UNet(depth=4, width=32, norm="none"), (1, 128, 128, 1))
    assert set(variables) == {"params"}
    assert count(variables["params"]) == 7_759_521
    assert expected_unet_params(4, 32, 1, 1) == 7_759_521


@pytest.mark.parametrize(
    "depth,width,cin,classes,norm,upsample",
    [
        (2, 4, 1, 1, "none", "transpose"),
        (3, 4, 3, 2, "batch", "transpose"),
        (2, 8, 1, 3, "group", "resize"),
        (3, 4, 1, 1, "none", "resize"),
    ],
)
def test_unet_param_count_matches_hand_count(depth, width, cin, classes, norm, upsample):
    model = UNet(depth=depth, width=width, norm=norm, upsample=upsample, num_classes=classes)
    params = abstract_init(model, (1, 32, 32, cin))["params"]
    assert count(params) == expected_unet_params(depth, width, cin, classes, norm, upsample)


@pytest.mark.parametrize("depth", [2, 3])
def test_unet_tree_follows_contract(depth):
    width = 4
    params = abstract_init(UNet(depth=depth, width=width, norm="batch"), (1, 32, 32, 1))["params"]
    stages = {f"stage_{i}" for i in range(depth)}
    assert set(params) == {"encoder", "bottleneck", "decoder", "head"}
    assert set(params["encoder"]) == stages
    assert set(params["decoder"]) == stages
    for i in range(depth):
        enc = params["encoder"][f"stage_{i}"]
        f = width * 2**i
        cin = 1 if i == 0 else f // 2
        assert set(enc) == {"conv_0", "conv_1", "norm_0", "norm_1"}
        assert enc["conv_0"]["kernel"].shape == (3, 3, cin, f)
        assert "bias" not in enc["conv_0"]  # BatchNorm follows, so the conv has no bias
        dec = params["decoder"][f"stage_{i}"]
        assert set(dec) == {"up", "conv_0", "conv_1", "norm_0", "norm_1"}
        assert dec["up"]["kernel"].shape == (2, 2, 2 * f, f)
        assert dec["conv_0"]["kernel"].shape == (3, 3, 2 * f, f)
    bottleneck = params["bottleneck"]["conv_0"]["kernel"].shape
    assert bottleneck == (3, 3, width * 2 ** (depth - 1), width * 2**depth)
    assert params["head"]["kernel"].shape == (1, 1, width, 1)


def test_batch_stats_only_with_batchnorm():
    for norm, has_stats in [("batch", True), ("group", False), ("none", False)]:
        variables = abstract_init(UNet(depth=2, width=4, norm=norm), (1, 16, 16, 1))
        assert ("batch_stats" in variables) == has_stats, norm
    stats = abstract_init(UNet(depth=2, width=4, norm="batch"), (1, 16, 16, 1))["batch_stats"]
    assert set(stats) == {"encoder", "bottleneck", "decoder"}
    assert stats["encoder"]["stage_1"]["norm_0"]["bn"]["mean"].shape == (8,)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_localizer_encoder_and_bottleneck_identical_to_unet(norm):
    shape = (1, 32, 32, 1)
    unet = abstract_init(UNet(depth=3, width=4, norm=norm), shape)
    loc = abstract_init(Localizer(depth=3, width=4, norm=norm), shape)
    for col in unet:
        u, lo = flat_paths(unet[col]), flat_paths(loc[col])
        keep = ("encoder/", "bottleneck/")
        u_sub = {p: s for p, s in u.items() if p.startswith(keep)}
        l_sub = {p: s for p, s in lo.items() if p.startswith(keep)}
        assert u_sub and u_sub == l_sub
    assert set(loc["params"]) == {"encoder", "bottleneck", "head"}
    # Dense head on the flattened bottleneck: (32/8)² positions × 32 channels -> 2 outputs.
    assert loc["params"]["head"]["kernel"].shape == (4 * 4 * 32, 2)


# --------------------------------------------------------------------------- output shapes


@pytest.mark.parametrize("depth", [2, 3])
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_unet_output_shapes(depth, norm, upsample):
    model = UNet(depth=depth, width=4, norm=norm, upsample=upsample, num_classes=3)
    x = jax.ShapeDtypeStruct((2, 32, 16, 1), jnp.float32)

    def run(key, x):
        return model.init_with_output(key, x, train=False, capture_intermediates=True)

    out, variables = jax.eval_shape(run, KEY, x)
    assert out.shape == (2, 32, 16, 3) and out.dtype == jnp.float32
    inter = variables["intermediates"]
    for i in range(depth):
        f = 4 * 2**i
        (enc,) = inter["encoder"][f"stage_{i}"]["__call__"]
        assert enc.shape == (2, 32 // 2**i, 16 // 2**i, f)
        (dec,) = inter["decoder"][f"stage_{i}"]["__call__"]
        assert dec.shape == (2, 32 // 2**i, 16 // 2**i, f)
    (bott,) = inter["bottleneck"]["__call__"]
    assert bott.shape == (2, 32 // 2**depth, 16 // 2**depth, 4 * 2**depth)


def test_localizer_output_shape():
    model = Localizer(depth=2, width=4, norm="batch", num_outputs=5)
    out, _ = jax.eval_shape(
        lambda k, x: model.init_with_output(k, x, train=False),
        KEY,
        jax.ShapeDtypeStruct((3, 16, 16, 2), jnp.float32),
    )
    assert out.shape == (3, 5) and out.dtype == jnp.float32


@pytest.mark.parametrize("model_cls", [UNet, Localizer])
@pytest.mark.parametrize("shape", [(1, 20, 16, 1), (1, 16, 12, 1), (1, 12, 12, 1)])
def test_size_not_divisible_by_two_to_depth_raises(model_cls, shape):
    with pytest.raises(ValueError, match="divisible"):
        abstract_init(model_cls(depth=3, width=4), shape)


# --------------------------------------------------------------------------- norm / freezing


class _Wrap(nn.Module):
    """A Norm named 'enc' inside a parent, so its path is 'enc/'."""

    frozen: str

    @nn.compact
    def __call__(self, x, train):
        return Norm("batch", frozen=self.frozen, name="enc")(x, train)


def _norm_step(frozen: str):
    x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 3)).astype(np.float32)
    model = _Wrap(frozen)
    variables = model.init(jax.random.key(0), x, train=False)
    out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    return x, variables, out, updates


def test_frozen_norm_keeps_batch_stats_and_uses_running_averages():
    x, variables, out, updates = _norm_step(selector("enc"))
    before = variables["batch_stats"]["enc"]["bn"]
    after = updates["batch_stats"]["enc"]["bn"]
    np.testing.assert_array_equal(after["mean"], before["mean"])
    np.testing.assert_array_equal(after["var"], before["var"])
    # Running mean 0 / var 1, scale 1 / bias 0: the output is x / sqrt(1 + eps).
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5), rtol=1e-5)


def test_unfrozen_norm_updates_batch_stats():
    x, _, out, updates = _norm_step(selector("dec"))
    after = updates["batch_stats"]["enc"]["bn"]
    # momentum 0.9: new mean = 0.9·0 + 0.1·batch mean.
    np.testing.assert_allclose(after["mean"], 0.1 * x.mean(axis=(0, 1, 2)), rtol=1e-4)
    # Batch statistics were used: the output is standardised per channel.
    np.testing.assert_allclose(np.asarray(out).mean(axis=(0, 1, 2)), 0.0, atol=1e-4)


def test_norm_none_is_identity_and_unknown_kind_raises():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    out = Norm("none").apply({}, x, train=True)
    np.testing.assert_array_equal(out, x)
    with pytest.raises(ValueError, match="norm"):
        Norm("layer").init(jax.random.key(0), x, train=False)


def test_unet_frozen_encoder_batch_stats_are_bit_identical():
    shape = (4, 16, 16, 1)
    model = UNet(depth=2, width=4, norm="batch", frozen=selector("encoder"))
    variables = numpy_init(model, shape)
    x = np.random.default_rng(1).normal(2.0, 1.5, shape).astype(np.float32)
    _, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    before, after = variables["batch_stats"], updates["batch_stats"]
    for a, b in zip(
        jax.tree.leaves(before["encoder"]), jax.tree.leaves(after["encoder"]), strict=True
    ):
        assert np.array_equal(a, b)
    for part in ("bottleneck", "decoder"):
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(
                jax.tree.leaves(before[part]), jax.tree.leaves(after[part]), strict=True
            )
        ]
        assert all(changed), part


# --------------------------------------------------------------------------- dropout, dtype


def test_dropout_only_in_train_mode():
    shape = (2, 16, 16, 1)
    model = UNet(depth=2, width=4, norm="none", dropout=0.5)
    variables = numpy_init(model, shape)
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    apply = jax.jit(model.apply, static_argnames="train")
    k1, k2 = jax.random.key(1), jax.random.key(2)
    eval_a = apply(variables, x, train=False, rngs={"dropout": k1})
    eval_b = apply(variables, x, train=False, rngs={"dropout": k2})
    np.testing.assert_array_equal(eval_a, eval_b)
    train_a = apply(variables, x, train=True, rngs={"dropout": k1})
    train_a2 = apply(variables, x, train=True, rngs={"dropout": k1})
    train_b = apply(variables, x, train=True, rngs={"dropout": k2})
    np.testing.assert_array_equal(train_a, train_a2)
    assert not np.allclose(train_a, train_b)
    assert not np.allclose(train_a, eval_a)


class _TwoASPP(nn.Module):
    """Two ASPPs (each ends in dropout 0.5), named like the parts a freeze plan selects."""

    frozen: str = ""

    @nn.compact
    def __call__(self, x, train):
        for name in ("encoder", "decoder"):
            x = ASPP((1, 2, 3), features=4, frozen=self.frozen, name=name)(x, train)
        return x


def _dense(frozen: str) -> nn.Module:
    cfg = ml_collections.ConfigDict(
        dict(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=2, dropout=0.5,
             dtype="float32")
    )  # fmt: skip
    return models.build(cfg, "pixels", 1, frozen=frozen)


@pytest.mark.parametrize(
    "build,shape",
    [
        (lambda frozen: UNet(depth=2, width=4, norm="batch", dropout=0.5, frozen=frozen),
         (2, 16, 16, 1)),
        (_dense, (2, 8, 8, 1)),
        (lambda frozen: _TwoASPP(frozen), (2, 4, 4, 3)),
    ],
    ids=["unet", "densenet", "aspp"],
)  # fmt: skip
def test_frozen_subtree_runs_in_inference_mode_while_the_rest_keeps_dropout(build, shape):
    """With ``encoder`` frozen, its training-mode output is the same for any dropout key and
    equals the eval-mode output (dropout off, stored statistics); the decoder's still varies.
    Unfrozen, the encoder's output varies too, so the equality is dropout being off."""
    model = build(selector("encoder"))
    variables = numpy_init(model, shape)
    x = np.random.default_rng(3).normal(1.0, 2.0, shape).astype(np.float32)

    def part(model, name: str, train: bool, key: int):
        _, state = model.apply(variables, x, train=train, rngs={"dropout": jax.random.key(key)},
                               mutable=True, capture_intermediates=True)  # fmt: skip
        return jax.tree.leaves(state["intermediates"][name]["__call__"])

    def same(a, b) -> bool:
        return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))

    encoder = part(model, "encoder", True, 1)
    assert same(encoder, part(model, "encoder", True, 2))
    assert same(encoder, part(model, "encoder", False, 1))
    assert not same(part(model, "decoder", True, 1), part(model, "decoder", True, 2))
    live = model.clone(frozen="")
    assert not same(part(live, "encoder", True, 1), part(live, "encoder", True, 2))


def test_no_dropout_layer_when_rate_is_zero():
    shape = (2, 16, 16, 1)
    model = UNet(depth=2, width=4, norm="none", dropout=0.0)
    variables = numpy_init(model, shape)
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    # No 'dropout' rng is needed in train mode, and train == eval without batch norm.
    np.testing.assert_allclose(
        model.apply(variables, x, train=True), model.apply(variables, x, train=False)
    )


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_compute_dtype_and_float32_logits(dtype):
    model = UNet(depth=2, width=4, norm="batch", dtype=dtype)
    variables = abstract_init(model, (1, 16, 16, 1))
    # Parameters stay float32 whatever the compute dtype.
    assert {leaf.dtype for leaf in jax.tree.leaves(variables["params"])} == {np.dtype(np.float32)}
    out, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=False, capture_intermediates=True, mutable=True),
        variables,
        jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32),
    )
    inter = state["intermediates"]
    assert inter["bottleneck"]["__call__"][0].dtype == dtype
    assert inter["decoder"]["stage_0"]["__call__"][0].dtype == dtype
    assert inter["head"]["__call__"][0].dtype == dtype
    assert out.dtype == jnp.float32


def test_localizer_bfloat16_returns_float32():
    model = models.build(unet_cfg(dtype="bfloat16"), "vector", 2)
    out, state = jax.eval_shape(
        lambda k, x: model.init_with_output(k, x, train=False, capture_intermediates=True),
        KEY,
        jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32),
    )
    assert state["intermediates"]["bottleneck"]["__call__"][0].dtype == jnp.bfloat16
    assert out.dtype == jnp.float32 and out.shape == (1, 2)


# --------------------------------------------------------------------------- registry


def test_build_pixels_and_vector_heads():
    seg = models.build(unet_cfg(depth=3, width=8, norm="group", upsample="resize"), "pixels", 3)
    assert isinstance(seg, UNet)
    assert (seg.depth, seg.width, seg.norm, seg.upsample, seg.num_classes) == (
        3,
        8,
        "group",
        "resize",
        3,
    )
    loc = models.build(unet_cfg(dtype="bfloat16", dropout=0.2), "vector", 2, frozen="enc/")
    assert isinstance(loc, Localizer)
    assert (loc.num_outputs, loc.dtype, loc.dropout, loc.frozen) == (2, jnp.bfloat16, 0.2, "enc/")


def test_build_errors():
    with pytest.raises(ValueError, match="resnet"):
        models.build(unet_cfg(name="resnet"), "pixels", 1)
    with pytest.raises(ValueError, match="float8"):
        models.build(unet_cfg(dtype="float8"), "pixels", 1)
    with pytest.raises(ValueError, match="boxes"):
        models.build(unet_cfg(), "boxes", 1)


@pytest.mark.parametrize("field,value", [("norm", "layer"), ("upsample", "pixelshuffle")])
def test_unknown_norm_or_upsample_raises(field, value):
    model = models.build(unet_cfg(**{field: value}), "pixels", 1)
    with pytest.raises(ValueError, match=value):
        abstract_init(model, (1, 16, 16, 1))


def test_frozen_selector_naming_the_batchnorm_subtree_keeps_its_statistics():
    spec = "encoder/stage_0/norm_0/bn"
    shape = (4, 16, 16, 1)
    model = UNet(depth=2, width=4, norm="batch", frozen=selector(spec))
    variables = numpy_init(model, shape)
    # The selector is valid for parameters: it names that BatchNorm's scale and bias.
    assert sorted(select(variables["params"], spec)) == [f"{spec}/bias", f"{spec}/scale"]
    x = np.random.default_rng(1).normal(2.0, 1.5, shape).astype(np.float32)
    _, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x
    )
    before = variables["batch_stats"]["encoder"]["stage_0"]["norm_0"]["bn"]
    after = updates["batch_stats"]["encoder"]["stage_0"]["norm_0"]["bn"]
    np.testing.assert_array_equal(after["mean"], before["mean"])
    np.testing.assert_array_equal(after["var"], before["var"])


@pytest.mark.parametrize("shape", [(2, 4, 6, 3), (2, 4, 4, 2, 3)])
def test_pooled_head_is_a_float32_spatial_mean_then_dense(shape):
    class Head(nn.Module):
        @nn.compact
        def __call__(self, x):
            return pooled_head(x, 5, jnp.bfloat16)

    x = jax.random.normal(jax.random.key(0), shape).astype(jnp.bfloat16)
    variables = Head().init(jax.random.key(1), x)
    kernel, bias = variables["params"]["head"]["kernel"], variables["params"]["head"]["bias"]
    assert kernel.shape == (3, 5) and kernel.dtype == jnp.float32
    y = Head().apply(variables, x)
    mean = x.astype(jnp.float32).reshape(shape[0], -1, shape[-1]).mean(axis=1)
    expected = (mean.astype(jnp.bfloat16) @ kernel.astype(jnp.bfloat16)).astype(jnp.float32) + bias
    assert y.shape == (shape[0], 5) and y.dtype == jnp.float32
    np.testing.assert_allclose(y, expected, rtol=2e-2, atol=2e-2)


# --------------------------------------------------------------------------- kernel init


@pytest.mark.parametrize(("name", "gain"), [("he", 2.0), ("lecun", 1.0)])
def test_kernel_init_variance_is_gain_over_fan_in(name, gain):
    shape = (3, 3, 64, 32)  # fan_in = 3·3·64 = 576; 18,432 draws
    kernel = np.asarray(layers.kernel_initializer(name)(jax.random.PRNGKey(0), shape))
    assert kernel.var() * 576 == pytest.approx(gain, rel=0.04)
    assert abs(kernel.mean()) < 0.01


@pytest.mark.parametrize("head", ["pixels", "vector"])
def test_kernel_init_reaches_every_conv_kernel(monkeypatch, head):
    """``model.kernel_init='he'`` initialises every conv kernel of the plain U-Net (blocks,
    up-sampling, 1×1 head) and nothing else; the default initialises none of them so."""
    drawn = []

    def recorder(key, shape, dtype=jnp.float32):
        drawn.append(tuple(shape))
        return jnp.zeros(shape, dtype)

    monkeypatch.setitem(layers.KERNEL_INITS, "he", recorder)
    cfg = unet_cfg(depth=2, width=4, norm="batch", kernel_init="he")
    params = abstract_init(models.build(cfg, head, 2), (1, 16, 16, 1))["params"]
    kernels = [s for p, s in flat_paths(params).items() if p.endswith("kernel") and len(s) == 4]
    assert len(kernels) == (13 if head == "pixels" else 6)
    assert sorted(drawn) == sorted(kernels)
    drawn.clear()
    abstract_init(models.build(unet_cfg(depth=2, width=4), head, 2), (1, 16, 16, 1))
    assert drawn == []


def test_kernel_init_errors():
    with pytest.raises(ValueError, match=r"model.kernel_init='xavier' is unknown; use one of"):
        models.build(unet_cfg(kernel_init="xavier"), "pixels", 1)
    with pytest.raises(ValueError, match="kernel_init='he' is implemented for the plain U-Net"):
        models.build(unet_cfg(kernel_init="he", backbone="vgg16"), "pixels", 1)
    assert models.config().kernel_init == "lecun"
