"""Tests for jaxseg.surgery: selectors and paths, freeze labels/partition, strict transfer."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg import checkpoint
from jaxseg.models.unet import Localizer, UNet
from jaxseg.surgery import freeze, paths
from jaxseg.surgery.transfer import transfer

KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)
SHAPE = (1, 16, 16, 1)


def numpy_init(model, seed: int, shape=SHAPE) -> dict:
    """Concrete variables from numpy (no jax.random compilation): distinct per ``seed``."""
    abstract = jax.eval_shape(
        functools.partial(model.init, train=False), KEY, jax.ShapeDtypeStruct(shape, jnp.float32)
    )
    rng = np.random.default_rng(seed)
    variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), abstract)
    return {k: dict(v) for k, v in variables.items()}


def save_state(directory: str, variables: dict, step: int = 2) -> str:
    params = variables["params"]
    state = {
        "step": np.asarray(step, np.int32),
        "params": params,
        "batch_stats": variables.get("batch_stats", {}),
        "opt_state": optax.adam(1e-3).init(params),
        "rng": np.asarray([0, 1], np.uint32),
    }
    mngr = checkpoint.manager(directory)
    checkpoint.save(mngr, step, state)
    mngr.close()
    return directory


def _tree() -> dict:
    z = np.zeros
    return {
        "encoder": {
            "stage_0": {"kernel": z((3, 3, 1, 2)), "bias": z(2)},
            "stage_1": {"kernel": z((3, 3, 2, 4))},
        },
        "encoder_extra": {"w": z(3)},
        "bottleneck": {"kernel": z((3, 3, 4, 4))},
        "decoder": {"stage_0": {"kernel": z((3, 3, 4, 2))}, "stage_1": {"kernel": z(5)}},
        "head": {"kernel": z((1, 1, 2, 1)), "bias": z(1)},
    }


# --------------------------------------------------------------------------- paths


def test_selector_matches_subtrees_at_slash_boundary():
    regex = paths.selector("encoder+bottleneck")
    assert paths.matches(regex, "encoder/stage_0/x")
    assert paths.matches(regex, "bottleneck/conv_0/kernel")
    assert paths.matches(regex, "encoder")  # the subtree root itself
    assert not paths.matches(regex, "encoder_extra/x")
    assert not paths.matches(regex, "decoder/x")
    assert not paths.matches(regex, "params_encoder/x")
    assert not paths.matches(regex, "head/encoder/x")  # anchored at the start


def test_selector_regex_parts_and_whitespace():
    regex = paths.selector(" decoder/stage_[01]/ + head ")
    assert paths.matches(regex, "decoder/stage_0/up/kernel")
    assert paths.matches(regex, "decoder/stage_1/conv_0/kernel")
    assert not paths.matches(regex, "decoder/stage_2/conv_0/kernel")
    assert not paths.matches(regex, "decoder/stage_10/conv_0/kernel")
    assert paths.matches(regex, "head/kernel")
    assert not paths.matches(regex, "header/kernel")
    assert not paths.matches(paths.selector("stage_0"), "encoder/stage_0/x")


@pytest.mark.parametrize("spec", ["", "   ", "+", " + "])
def test_empty_selector_matches_nothing(spec):
    regex = paths.selector(spec)
    assert regex == ""
    for p in ("encoder/stage_0/x", "head/kernel", "", "a"):
        assert not paths.matches(regex, p)
    assert paths.select(_tree(), spec) == {}


def test_invalid_regex_raises():
    with pytest.raises(ValueError, match=re.escape("stage_[")):
        paths.selector("encoder+stage_[")
    with pytest.raises(ValueError, match="regex"):
        paths.selector("(")


def test_select_and_unflatten():
    tree = _tree()
    sel = paths.select(tree, "encoder")
    assert set(sel) == {"encoder/stage_0/kernel", "encoder/stage_0/bias", "encoder/stage_1/kernel"}
    assert sel["encoder/stage_1/kernel"] is tree["encoder"]["stage_1"]["kernel"]
    flat = checkpoint.flatten(tree)
    assert len(flat) == 9
    back = paths.unflatten(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    assert back["decoder"]["stage_1"]["kernel"] is tree["decoder"]["stage_1"]["kernel"]


# --------------------------------------------------------------------------- freeze


def test_labels_mark_exactly_the_selected_leaves():
    labels = freeze.labels(_tree(), "encoder+bottleneck")
    F, T = freeze.FROZEN, freeze.TRAIN
    assert labels == {
        "encoder": {"stage_0": {"kernel": F, "bias": F}, "stage_1": {"kernel": F}},
        "encoder_extra": {"w": T},
        "bottleneck": {"kernel": F},
        "decoder": {"stage_0": {"kernel": T}, "stage_1": {"kernel": T}},
        "head": {"kernel": T, "bias": T},
    }
    assert (F, T) == ("frozen", "train")


def test_labels_empty_selector_trains_everything():
    labels = freeze.labels(_tree(), "")
    assert set(jax.tree.leaves(labels)) == {freeze.TRAIN}
    assert len(jax.tree.leaves(labels)) == 9


def test_labels_selector_matching_nothing_raises_listing_top_level():
    with pytest.raises(ValueError, match="encodr") as err:
        freeze.labels(_tree(), "encodr")
    for top in ("bottleneck", "decoder", "encoder", "encoder_extra", "head"):
        assert repr(top) in str(err.value)


def _random_tree(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: rng.normal(size=x.shape).astype(np.float32), _tree())


def test_partition_freezes_bit_identically_with_weight_decay():
    params = jax.tree.map(jnp.asarray, _random_tree(0))
    tx = freeze.partition(optax.adamw(0.1, weight_decay=0.5), params, "encoder+bottleneck")
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    new = params
    for i in range(3):
        new, opt_state = step(new, opt_state, _random_tree(10 + i))
    labels = checkpoint.flatten(freeze.labels(params, "encoder+bottleneck"))
    before, after = checkpoint.flatten(params), checkpoint.flatten(new)
    for p, label in labels.items():
        if label == freeze.FROZEN:
            assert np.array_equal(before[p], after[p]), p
        else:
            assert not np.any(np.asarray(before[p]) == np.asarray(after[p])), p
    assert sorted(p for p, lab in labels.items() if lab == "frozen") == [
        "bottleneck/kernel",
        "encoder/stage_0/bias",
        "encoder/stage_0/kernel",
        "encoder/stage_1/kernel",
    ]

    # Optimizer state: adam's two moments for the trainable leaves only (+ scalar counts).
    trainable = [before[p] for p, lab in labels.items() if lab == freeze.TRAIN]
    moments = [x for x in jax.tree.leaves(opt_state) if np.ndim(x) > 0]
    assert len(moments) == 2 * len(trainable)
    assert sum(x.size for x in moments) == 2 * sum(x.size for x in trainable)
    # Control: without a frozen selector every leaf gets moments.
    full = freeze.partition(optax.adamw(0.1, weight_decay=0.5), params, "").init(params)
    assert len([x for x in jax.tree.leaves(full) if np.ndim(x) > 0]) == 2 * len(labels)


def test_partition_unknown_frozen_selector_raises():
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze.partition(optax.sgd(0.1), _tree(), "decoders")


# --------------------------------------------------------------------------- transfer


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    loc = numpy_init(Localizer(depth=2, width=4, norm="batch"), seed=1)
    wide = numpy_init(Localizer(depth=2, width=8, norm="batch"), seed=3)
    deep = numpy_init(UNet(depth=3, width=4, norm="none"), seed=4)
    plain = numpy_init(Localizer(depth=2, width=4, norm="none"), seed=5)
    return {
        "loc": (save_state(str(root / "loc"), loc), loc),
        "wide": (save_state(str(root / "wide"), wide), wide),
        "deep": (save_state(str(root / "deep"), deep), deep),
        "plain": (save_state(str(root / "plain"), plain), plain),
    }


def test_transfer_encoder_and_bottleneck(ckpts):
    directory, source = ckpts["loc"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="batch"), seed=2)
    new, report = transfer(fresh, directory, "encoder+bottleneck")
    assert set(new) == {"params", "batch_stats"}
    src = checkpoint.flatten(source)
    init = checkpoint.flatten(fresh)
    out = checkpoint.flatten(new)
    assert set(out) == set(init)
    loaded = [p for p in init if p.split("/")[1] in ("encoder", "bottleneck")]
    assert any(p.startswith("batch_stats/encoder/") for p in loaded)  # statistics move too
    assert report["loaded"] == sorted(loaded)
    assert report["kept"] == sorted(set(init) - set(loaded))
    for p in init:
        expected = src[p] if p in loaded else init[p]
        assert np.array_equal(np.asarray(out[p]), expected), p
        assert np.asarray(out[p]).shape == init[p].shape
    # Sanity: the two inits really differ, so the comparison above means something.
    assert not np.array_equal(src[loaded[0]], init[loaded[0]])


def test_transfer_shape_mismatch(ckpts):
    directory, _ = ckpts["wide"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="batch"), seed=2)
    with pytest.raises(ValueError, match="shape mismatch") as err:
        transfer(fresh, directory, "encoder")
    msg = str(err.value)
    assert "shape mismatch none" not in msg
    assert "params/encoder/stage_0/conv_0/kernel (3, 3, 1, 8)->(3, 3, 1, 4)" in msg


def test_transfer_subtree_missing_from_checkpoint(ckpts):
    directory, _ = ckpts["loc"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="batch"), seed=2)
    with pytest.raises(ValueError, match="missing in checkpoint") as err:
        transfer(fresh, directory, "decoder")
    assert "params/decoder/stage_0/up/kernel" in str(err.value)


def test_transfer_extra_paths_in_checkpoint(ckpts):
    directory, _ = ckpts["deep"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="none"), seed=2)
    with pytest.raises(ValueError, match="only in checkpoint") as err:
        transfer(fresh, directory, "encoder")
    assert "params/encoder/stage_2/conv_0/kernel" in str(err.value)


@pytest.mark.parametrize("subtrees", ["", " ", "+"])
def test_transfer_empty_subtrees(ckpts, subtrees):
    directory, _ = ckpts["loc"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="batch"), seed=2)
    with pytest.raises(ValueError, match="empty"):
        transfer(fresh, directory, subtrees)


def test_transfer_selector_matching_nothing_in_new_model(ckpts):
    directory, _ = ckpts["loc"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="batch"), seed=2)
    with pytest.raises(ValueError, match="matches nothing"):
        transfer(fresh, directory, "backbone")


def test_transfer_keeps_empty_batch_stats_collection(ckpts):
    directory, _ = ckpts["plain"]
    fresh = numpy_init(UNet(depth=2, width=4, norm="none"), seed=2)
    fresh.setdefault("batch_stats", {})  # what train.setup.init_variables does before transfer
    new, _ = transfer(fresh, directory, "encoder+bottleneck")
    assert set(new) == {"params", "batch_stats"}
