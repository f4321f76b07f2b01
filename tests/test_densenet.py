"""Tests for jaxseg.models.densenet: method 4's rank-generic dense U-Net."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax.traverse_util import flatten_dict

from jaxseg.models import densenet
from jaxseg.models.conv import Conv
from jaxseg.models.resample import UpConv

LAYERS = (2, 2, 4, 8)  # method 4's dense blocks (the default)
# Units (GroupNorm + conv) per part: encoder = stem + dense layers + down + reduce per stage.
ENCODER, BOTTLENECK, DECODER = 1 + sum(LAYERS) + 2 * len(LAYERS), 2, 3 * len(LAYERS)
UNITS = ENCODER + BOTTLENECK + DECODER + 1  # + head


def _cfg(**kw):
    base = dict(width=4, growth=4, dropout=0.0, dtype="float32", groups=8)
    return ml_collections.ConfigDict({**base, **kw})


def _shapes(model, x):
    """(param shapes {path: shape}, output shapes) without computing anything."""
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    flat = flatten_dict(variables["params"], sep="/")
    return {k: v.shape for k, v in flat.items()}, jax.tree_util.tree_map(lambda a: a.shape, out)


@pytest.mark.parametrize("spatial", [(16, 16), (16, 16, 16)])
def test_forward_shapes_for_every_head(spatial):
    x = jnp.zeros((2, *spatial, 3))
    assert _shapes(densenet.build(_cfg(), "pixels", 5), x)[1] == (2, *spatial, 5)
    assert _shapes(densenet.build(_cfg(), "pooled", 7), x)[1] == (2, 7)
    assert _shapes(densenet.build(_cfg(), "reconstruction", 2), x)[1] == (2, *spatial, 2)
    out = _shapes(densenet.build(_cfg(reconstruct=True), "pixels", 5), x)[1]
    assert out == {"logits": (2, *spatial, 5), "reconstruction": (2, *spatial, 3)}


def test_half_precision_compute_still_returns_float32():
    model = densenet.build(_cfg(reconstruct=True, dtype="bfloat16"), "pixels", 2)
    x = jnp.zeros((1, 16, 16, 16, 1))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    assert out["logits"].dtype == out["reconstruction"].dtype == jnp.float32


def test_tree_names_and_widths():
    w, g = 4, 4
    params, _ = _shapes(
        densenet.build(_cfg(reconstruct=True), "pixels", 3), jnp.zeros((1, 16, 16, 2))
    )
    tops = {p.split("/")[0] for p in params}
    assert tops == {"encoder", "bottleneck", "decoder", "head", "reconstruction"}
    assert params["encoder/stage_0/stem/conv/kernel"] == (3, 3, 2, w)
    for i, n in enumerate(LAYERS):
        stage = f"encoder/stage_{i}"
        layers = {m.group(1) for p in params if (m := re.match(rf"{stage}/layer_(\d+)/", p))}
        assert layers == {str(j) for j in range(n)}
        # Dense layer j sees the stage input plus j·growth channels and adds growth channels.
        for j in range(n):
            assert params[f"{stage}/layer_{j}/conv/kernel"] == (3, 3, w * 2**i + j * g, g)
        skip = w * 2**i + n * g
        assert params[f"{stage}/down/conv/kernel"] == (3, 3, skip, skip)
        assert params[f"{stage}/reduce/conv/kernel"] == (1, 1, skip, w * 2 ** (i + 1))
        dec = f"decoder/stage_{i}"
        assert params[f"{dec}/up/conv/kernel"] == (2, 2, w * 2 ** (i + 1), w * 2**i)
        assert params[f"{dec}/unit_0/conv/kernel"] == (3, 3, skip + w * 2**i, w * 2**i)
        assert params[f"{dec}/unit_1/conv/kernel"] == (3, 3, w * 2**i, w * 2**i)
        rec = f"reconstruction/stage_{i}"
        assert params[f"{rec}/unit_0/conv/kernel"] == (3, 3, w * 2**i, w * 2**i)  # no skip
    assert not any(p.startswith("encoder/stage_1/stem") for p in params)
    assert params["bottleneck/unit_0/conv/kernel"] == (3, 3, w * 16, w * 16)
    assert params["head/conv/kernel"] == (1, 1, w, 3)
    assert params["reconstruction/head/conv/kernel"] == (1, 1, w, 2)  # the input's channels


def test_heads_share_the_encoder_and_reconstruction_names():
    x = jnp.zeros((1, 16, 16, 1))
    seg, _ = _shapes(densenet.build(_cfg(reconstruct=True), "pixels", 1), x)
    auto, _ = _shapes(densenet.build(_cfg(), "reconstruction", 1), x)
    pooled, _ = _shapes(densenet.build(_cfg(), "pooled", 6), x)
    assert {p.split("/")[0] for p in auto} == {"encoder", "bottleneck", "reconstruction"}
    assert {p.split("/")[0] for p in pooled} == {"encoder", "bottleneck", "head"}
    assert pooled["head/kernel"] == (4 * 16, 6)  # Dense on the pooled bottleneck
    # encoder + bottleneck + reconstruction of the autoencoder transfer by name and shape.
    assert all(seg[p] == shape for p, shape in auto.items())
    assert all(seg[p] == shape for p, shape in pooled.items() if not p.startswith("head"))


def test_plain_model_has_no_reconstruction_branch():
    params, _ = _shapes(densenet.build(_cfg(), "pixels", 1), jnp.zeros((1, 16, 16, 1)))
    assert {p.split("/")[0] for p in params} == {"encoder", "bottleneck", "decoder", "head"}


def test_2d_and_3d_nets_have_the_same_leaves_with_kernels_of_rank_4_and_5():
    model = densenet.build(_cfg(reconstruct=True), "pixels", 2)
    p2, _ = _shapes(model, jnp.zeros((1, 16, 16, 1)))
    p3, _ = _shapes(model, jnp.zeros((1, 16, 16, 16, 1)))
    assert p2.keys() == p3.keys() and len(p2) == 4 * (UNITS + DECODER + 1)  # 4 leaves a unit
    for path, shape in p2.items():
        if path.endswith("kernel"):
            assert len(shape) == 4 and len(p3[path]) == 5, path
            assert p3[path][:3] == shape[:1] * 3 and p3[path][3:] == shape[2:], path
        else:
            assert p3[path] == shape, path


@pytest.mark.parametrize("head", ["pixels", "reconstruction"])
def test_group_norm_precedes_every_conv(head):
    """Record the call order: each conv's latest preceding norm-or-conv call is the GroupNorm of
    its own unit (a conv applied without one would be preceded by another conv or unit)."""
    calls = []

    def record(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, Conv | UpConv | nn.GroupNorm):
            calls.append((type(module).__name__, module.path))
        return next_fun(*args, **kwargs)

    model = densenet.build(_cfg(reconstruct=True), head, 1)
    x = jnp.zeros((1, 16, 16, 16, 1))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    with nn.intercept_methods(record):
        jax.eval_shape(model.apply, variables, x)
    convs = [i for i, (kind, _) in enumerate(calls) if kind != "GroupNorm"]
    expected = UNITS + DECODER + 1 if head == "pixels" else ENCODER + BOTTLENECK + DECODER + 1
    assert len(convs) == expected and len(calls) == 2 * expected
    for i in convs:
        kind, path = calls[i - 1]
        assert kind == "GroupNorm" and path == (*calls[i][1][:-1], "norm", "gn"), calls[i]


def _params(model, x, seed=0):
    """Random parameters for ``model`` (numpy, from the abstract shapes: no init compile)."""
    rng = np.random.default_rng(seed)
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)["params"]

    def fill(path, leaf):
        if path[-1].key == "scale":
            return jnp.ones(leaf.shape)
        fan_in = int(np.prod(leaf.shape[:-1])) if path[-1].key == "kernel" else 16
        return jnp.asarray(rng.normal(0, fan_in**-0.5, leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract)


def test_remat_gives_the_same_outputs_and_gradients():
    x = jax.random.normal(jax.random.key(2), (2, 8, 8, 1))
    mask = (x > 0.5).astype(jnp.float32)
    plain, remat = (densenet.build(_cfg(remat=r, dense_layers=(3,)), "pixels", 1) for r in (0, 1))
    params = _params(plain, x)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(_params(remat, x))

    def value_and_grad(model):
        def loss(params):
            logits = model.apply({"params": params}, x)
            return optax.sigmoid_binary_cross_entropy(logits, mask).mean(), logits

        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (l0, y0), g0 = value_and_grad(plain)
    (l1, y1), g1 = value_and_grad(remat)
    np.testing.assert_allclose(y0, y1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l0, l1, rtol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    layer = g0["encoder"]["stage_0"]["layer_2"]["conv"]["kernel"]
    assert float(jnp.abs(layer).max()) > 0  # the remat'ed layers get gradients

    def flops(model):
        def loss(params):
            return model.apply({"params": params}, x).mean()

        cost = jax.jit(jax.grad(loss)).lower(params).compile().cost_analysis()
        return (cost[0] if isinstance(cost, list) else cost)["flops"]

    # the backward pass recomputes every stage's forward convolutions instead of keeping them
    assert flops(remat) > 1.15 * flops(plain)


def test_a_few_adam_steps_lower_the_loss_on_a_3d_batch():
    """Segmentation BCE + reconstruction MSE (method 4's regulariser) on a bright ball."""
    zz, yy, xx = np.mgrid[:8, :8, :8]
    ball = ((zz - 4) ** 2 + (yy - 3) ** 2 + (xx - 4) ** 2 < 7).astype(np.float32)[..., None]
    noise = np.random.default_rng(0).normal(0, 0.3, (2, 8, 8, 8, 1)).astype(np.float32)
    x, mask = jnp.asarray(noise + 2 * ball), jnp.asarray(np.stack([ball, ball]))
    model = densenet.build(_cfg(reconstruct=True, dense_layers=(1, 2)), "pixels", 1)
    params = _params(model, x)

    def loss_fn(params):
        out = model.apply({"params": params}, x, train=True)
        bce = optax.sigmoid_binary_cross_entropy(out["logits"], mask).mean()
        return bce + jnp.mean((out["reconstruction"] - x) ** 2), out

    tx = optax.adam(3e-3)

    @jax.jit
    def step(params, opt):
        (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss, out

    opt, losses = tx.init(params), []
    for _ in range(8):
        params, opt, loss, out = step(params, opt)
        losses.append(float(loss))
    assert out["logits"].shape == mask.shape and out["reconstruction"].shape == x.shape
    assert out["logits"].dtype == jnp.float32 and np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


def test_dropout_acts_in_training_only():
    x = jax.random.normal(jax.random.key(4), (1, 8, 8, 1))
    model = densenet.build(_cfg(dropout=0.5, dense_layers=(1,)), "pixels", 1)
    variables = {"params": _params(model, x)}
    apply = jax.jit(model.apply, static_argnames="train")
    np.testing.assert_array_equal(apply(variables, x), apply(variables, x))
    a = apply(variables, x, train=True, rngs={"dropout": jax.random.key(1)})
    b = apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, b) and not np.allclose(a, apply(variables, x))


def test_group_count_is_clipped_to_divide_the_channels():
    assert densenet.divisor_groups(8, 12) == 6
    assert densenet.divisor_groups(8, 64) == 8
    assert densenet.divisor_groups(8, 1) == 1
    assert densenet.divisor_groups(4, 7) == 1


def test_errors():
    x = jnp.zeros((1, 24, 24, 1))
    with pytest.raises(ValueError, match=r"not divisible by 2\^len\(dense_layers\)=16"):
        _shapes(densenet.build(_cfg(), "pixels", 1), x)
    _shapes(densenet.build(_cfg(dense_layers=(1, 1, 1)), "pixels", 1), x)  # 24 = 3·2^3
    with pytest.raises(ValueError, match="head kind 'vector'"):
        densenet.build(_cfg(), "vector", 1)
    with pytest.raises(ValueError, match=r"model\.dtype='float64'"):
        densenet.build(_cfg(dtype="float64"), "pixels", 1)
    with pytest.raises(ValueError, match=r"model\.growth"):
        densenet.build(_cfg(growth=0), "pixels", 1)
    with pytest.raises(ValueError, match="dense_layers"):
        densenet.build(_cfg(dense_layers=()), "pixels", 1)
    with pytest.raises(ValueError, match="spatial axes, expected 3"):
        _shapes(densenet.DenseUNet(rank=3, width=4, growth=4), jnp.zeros((1, 16, 16, 1)))
    with pytest.raises(ValueError, match="spatial axes"):
        _shapes(densenet.build(_cfg(), "pixels", 1), jnp.zeros((1, 16, 1)))
