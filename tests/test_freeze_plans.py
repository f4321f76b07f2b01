"""Freeze plans, presets and schedules (jaxseg.surgery.freeze / presets / schedule)."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg import models
from jaxseg.models.unet import UNet
from jaxseg.surgery import freeze, presets, schedule
from jaxseg.surgery.paths import flatten, matches, unflatten


@pytest.fixture(scope="module")
def params():
    """Real-valued params of a depth-2, width-4 U-Net with BatchNorm (numpy, no init compile)."""
    shapes = jax.eval_shape(
        lambda: UNet(depth=2, width=4).init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    )
    rng = np.random.default_rng(0)
    flat = {
        p: rng.standard_normal(s.shape).astype(np.float32)
        for p, s in flatten(shapes["params"]).items()
    }
    return unflatten(flat)


def rules(resolved, prefix):
    return {r for p, r in resolved.items() if p.startswith(prefix)}


# --- plans ----------------------------------------------------------------------------------


def test_parse_reads_regex_rule_pairs_and_normalises_rules():
    plan = freeze.parse(" encoder/=frozen, decoder/stage_0/=0.1 ,head/=1, .*=train")
    assert plan == [
        ("encoder/", "frozen"),
        ("decoder/stage_0/", 0.1),
        ("head/", "train"),
        (".*", "train"),
    ]


@pytest.mark.parametrize(
    "spec,match",
    [
        ("encoder/", "not 'regex=rule'"),
        ("", "empty"),
        ("x=fast", "not 'frozen'"),
        ("x=0", "must be > 0"),
    ],
)
def test_parse_rejects_bad_plans(spec, match):
    with pytest.raises(ValueError, match=match):
        freeze.parse(spec)


def test_first_matching_rule_wins(params):
    resolved = freeze.resolve(
        params, [("encoder/stage_0/", 0.5), ("encoder/", "frozen"), (".*", "train")]
    )
    assert rules(resolved, "encoder/stage_0/") == {0.5}
    assert rules(resolved, "encoder/stage_1/") == {"frozen"}
    assert (
        rules(resolved, "decoder/")
        == rules(resolved, "head/")
        == rules(resolved, "bottleneck/")
        == {"train"}
    )
    assert set(resolved) == set(flatten(params))


def test_unmatched_parameters_are_listed(params):
    with pytest.raises(ValueError, match=r"unmatched: \[.*'bottleneck/conv_0/kernel'") as err:
        freeze.resolve(params, [("encoder/", "frozen"), ("decoder/", "train"), ("head/", "train")])
    assert "encoder/" not in str(err.value).split("unmatched:")[1]


def test_a_rule_matching_nothing_is_an_error(params):
    with pytest.raises(ValueError, match=r"\['encodr/'\]: matches no parameter"):
        freeze.resolve(params, [("encodr/", "frozen"), (".*", "train")])


def test_invalid_regex_is_named(params):
    with pytest.raises(ValueError, match=r"regex 'enc\(' is invalid"):
        freeze.resolve(params, [("enc(", "frozen")])


def test_format_plan_prints_block_rules(params):
    text = freeze.format_plan(freeze.resolve(params, presets.static("encoder", params)))
    assert re.search(r"encoder/stage_0/\*\s+frozen\s+6", text)
    assert re.search(r"bottleneck/\*\s+frozen", text) and re.search(
        r"decoder/stage_1/\*\s+train", text
    )
    mixed = freeze.format_plan(freeze.resolve(params, "head/kernel=frozen,.*=train"))
    assert re.search(r"head/kernel\s+frozen\s+1", mixed) and re.search(
        r"head/bias\s+train\s+1", mixed
    )


def test_lr_multipliers_scale_sgd_updates_proportionally(params):
    plan = [("encoder/", 0.25), ("decoder/", 3.0), (".*", "train")]
    tx = freeze.partition(optax.sgd(0.1), params, plan)
    grads = jax.tree.map(np.ones_like, params)
    updates = flatten(tx.update(grads, tx.init(params), params)[0])
    for path, u in updates.items():
        m = 0.25 if path.startswith("encoder/") else 3.0 if path.startswith("decoder/") else 1.0
        np.testing.assert_allclose(np.asarray(u), -0.1 * m * np.ones_like(u), rtol=1e-6)


def test_frozen_leaves_stay_bit_identical_under_adamw_with_weight_decay(params):
    tx = freeze.partition(
        optax.adamw(0.1, weight_decay=0.5), params, presets.static("decoder", params)
    )
    state, p = tx.init(params), params
    for i in range(3):
        grads = jax.tree.map(lambda x, i=i: np.full_like(x, i + 1.0), p)
        updates, state = tx.update(grads, state, p)
        p = optax.apply_updates(p, updates)
    before, after = flatten(params), flatten(p)
    for path in before:
        same = np.array_equal(before[path], np.asarray(after[path]))
        assert same == (path.startswith(("decoder/", "head/"))), path
    moments = [x for x in jax.tree.leaves(state) if np.ndim(x) > 0]
    n_train = sum(1 for q in before if not q.startswith(("decoder/", "head/")))
    assert len(moments) == 2 * n_train  # mu and nu for trainable leaves only


def test_frozen_regex_selects_modules_inside_fully_frozen_subtrees(params):
    resolved = freeze.resolve(params, presets.static("encoder", params))
    regex = freeze.frozen_regex(resolved)
    frozen = [
        "encoder/stage_1/norm_0/bn/",  # a BatchNorm: stored statistics
        "bottleneck/norm_1/bn/",
        "encoder/stage_0/",  # the block applying a dropout: dropout off
        "encoder/stage_0/Dropout_0/",
    ]
    assert all(re.match(regex, p) for p in frozen)
    assert not any(re.match(regex, p) for p in ("decoder/stage_0/norm_0/bn/", "decoder/stage_0/"))
    assert not re.match(regex, "encoder_x/stage_0/")  # whole names only
    assert freeze.frozen_regex(freeze.resolve(params, ".*=train")) == ""


def test_frozen_regex_needs_every_parameter_of_a_subtree_frozen(params):
    """Training one conv of a block leaves the block (its dropout) live; its BatchNorms, fully
    frozen, still use stored statistics."""
    resolved = freeze.resolve(params, "encoder/stage_0/conv_1/=train, encoder/=frozen, .*=train")
    regex = freeze.frozen_regex(resolved)
    assert re.match(regex, "encoder/stage_0/norm_1/bn/") and re.match(regex, "encoder/stage_1/")
    assert not re.match(regex, "encoder/stage_0/") and not re.match(regex, "encoder/")
    scale_only = freeze.resolve(params, r"encoder/stage_0/norm_0/bn/bias=train, .*=frozen")
    assert not re.match(freeze.frozen_regex(scale_only), "encoder/stage_0/norm_0/bn/")


def test_frozen_regex_adapt_leaves_batchnorms_out(params):
    resolved = freeze.resolve(params, presets.static("encoder", params))
    regex = freeze.frozen_regex(resolved, "adapt")
    assert re.match(regex, "encoder/stage_0/") and re.match(regex, "bottleneck/")
    assert not re.match(regex, "encoder/stage_1/norm_0/bn/")
    assert not re.match(regex, "decoder/stage_0/")
    with pytest.raises(ValueError, match=r"frozen_norm='adpt' is unknown"):
        freeze.frozen_regex(resolved, "adpt")


@pytest.mark.parametrize("direction", presets.PROGRESSIVE)
def test_frozen_regex_follows_each_progressive_plan(params, direction):
    """Plan k's regex selects exactly the blocks still frozen in plan k: a block's dropout turns
    on in the plan that unfreezes it."""
    blocks = presets.blocks(params)
    plans = presets.progressive(direction, params)
    for plan in plans:
        resolved = freeze.resolve(params, plan)
        regex = freeze.frozen_regex(resolved)
        for block in blocks:
            leaves = [p for p in resolved if re.match(block, p + "/")]
            block_frozen = all(resolved[p] == freeze.FROZEN for p in leaves)
            module = leaves[0].rsplit("/", 2)[0]  # e.g. 'encoder/stage_0'
            assert matches(regex, module) == block_frozen, (plan, module)


# --- presets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,frozen",
    [
        ("none", ()),
        ("all", ("encoder/", "bottleneck/", "decoder/")),
        ("encoder", ("encoder/", "bottleneck/")),
        ("decoder", ("decoder/", "head/")),
    ],
)
def test_static_presets_freeze_exactly_their_part(params, name, frozen):
    resolved = freeze.resolve(params, presets.static(name, params))
    assert {p for p, r in resolved.items() if r == "frozen"} == {
        p for p in resolved if p.startswith(frozen)
    }
    assert {r for r in resolved.values()} <= {"frozen", "train"}


def test_depth_lr_is_geometric_in_depth(params):
    resolved = freeze.resolve(params, presets.static("depth_lr:0.3", params))
    assert rules(resolved, "encoder/stage_0/") == rules(resolved, "decoder/stage_0/") == {"train"}
    assert rules(resolved, "encoder/stage_1/") == rules(resolved, "decoder/stage_1/") == {0.3}
    (bottleneck,) = rules(resolved, "bottleneck/")
    assert bottleneck == pytest.approx(0.09)
    assert rules(resolved, "head/") == {"train"}
    assert rules(freeze.resolve(params, presets.static("depth_lr", params)), "bottleneck/") == {
        0.25
    }


def test_unknown_preset_is_an_error(params):
    with pytest.raises(ValueError, match="unknown"):
        presets.static("contracting", params)


def test_blocks_follow_the_longest_path_with_the_head_last(params):
    assert presets.blocks(params) == [
        "encoder/stage_0/", "encoder/stage_1/", "bottleneck/", "decoder/stage_1/",
        "(?:decoder/stage_0/|head/)",
    ]  # fmt: skip


@pytest.mark.parametrize("direction", ["shallow_to_deep", "deep_to_shallow"])
def test_progressive_plans_add_one_block_at_a_time(params, direction):
    order = [
        "encoder/stage_0/",
        "encoder/stage_1/",
        "bottleneck/",
        "decoder/stage_1/",
        ("decoder/stage_0/", "head/"),
    ]
    if direction == "deep_to_shallow":
        order = order[::-1]
    plans = presets.progressive(direction, params)
    assert len(plans) == 5  # 2·depth + 1
    for k, plan in enumerate(plans):
        trainable = {p for p, r in freeze.resolve(params, plan).items() if r == "train"}
        assert trainable == {
            p for p in flatten(params) if p.startswith(tuple(_flat(order[: k + 1])))
        }


ENCODER_5 = [f"encoder/stage_{i}/" for i in range(5)]
DECODER_HEAD = "(?:decoder/stage_0/|head/)"
DENSE = dict(name="densenet", width=4, growth=4, dense_layers=(1, 1), groups=2, reconstruct=True)
REGISTRY = {  # model fields, input, blocks shallow -> deep, some depth_lr:0.5 rules
    "unet": (
        dict(depth=2, width=4), (16, 16, 1),
        ["encoder/stage_0/", "encoder/stage_1/", "bottleneck/", "decoder/stage_1/", DECODER_HEAD],
        {"encoder/stage_1/": 0.5, "bottleneck/": 0.25, "head/": "train"},
    ),
    "unet-vgg16": (
        dict(backbone="vgg16", width=4), (32, 32, 3),
        [*ENCODER_5, "bottleneck/", *(f"decoder/stage_{i}/" for i in (4, 3, 2, 1)), DECODER_HEAD],
        {"encoder/stage_4/": 0.5**4, "bottleneck/": 0.5**5, "decoder/stage_4/": 0.5**4},
    ),
    "unet-resnet50": (
        dict(backbone="resnet50", width=4), (32, 32, 3),
        [*ENCODER_5, "bottleneck/", *(f"decoder/stage_{i}/" for i in (3, 2, 1)), DECODER_HEAD],
        {"bottleneck/": 0.5**5, "decoder/stage_3/": 0.125, "decoder/stage_0/": "train"},
    ),
    "deeplabv3": (
        dict(name="deeplabv3", backbone="resnet50", aspp_width=8), (32, 32, 3),
        [*ENCODER_5, "(?:decoder/aspp/|decoder/conv/|decoder/norm/|head/)"],
        {"encoder/stage_4/": 0.5**4, "decoder/": 0.5**5, "head/": "train"},
    ),
    "densenet": (
        DENSE, (16, 16, 1),
        ["encoder/stage_0/", "encoder/stage_1/", "bottleneck/",
         "(?:decoder/stage_1/|reconstruction/stage_1/)",
         "(?:decoder/stage_0/|head/|reconstruction/head/|reconstruction/stage_0/)"],
        {"reconstruction/stage_1/": 0.5, "decoder/stage_1/": 0.5, "bottleneck/": 0.25,
         "reconstruction/head/": "train"},
    ),
}  # fmt: skip


@functools.cache
def registry_params(name: str):
    """Abstract params (shapes only) of a tiny ``REGISTRY`` model with a 'pixels' head."""
    fields, shape, _, _ = REGISTRY[name]
    model = models.build(models.config(**fields), "pixels", 1)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *shape))))[
        "params"
    ]


def test_registry_cases_cover_every_model():
    assert {fields.get("name", "unet") for fields, *_ in REGISTRY.values()} == set(models.MODELS)


@pytest.mark.parametrize("name", REGISTRY)
def test_every_registry_model_has_blocks_from_shallow_to_deep(name):
    assert presets.blocks(registry_params(name)) == REGISTRY[name][2]


@pytest.mark.parametrize("name", REGISTRY)
def test_block_presets_give_every_parameter_of_every_registry_model_a_rule(name):
    params = registry_params(name)
    blocks, paths = presets.blocks(params), list(flatten(params))
    in_block = [{p for p in paths if re.match(rx, p + "/")} for rx in blocks]
    assert sorted(p for block in in_block for p in block) == sorted(paths)  # a partition
    for direction, order in [("shallow_to_deep", in_block), ("deep_to_shallow", in_block[::-1])]:
        for k, plan in enumerate(presets.progressive(direction, params)):
            trained = {p for p, r in freeze.resolve(params, plan).items() if r == "train"}
            assert trained == set().union(*order[: k + 1])
    resolved = freeze.resolve(params, presets.static("depth_lr:0.5", params))
    for prefix, rule in REGISTRY[name][3].items():
        assert rules(resolved, prefix) == {rule}, prefix


def test_block_presets_refuse_paths_outside_the_blocks():
    params = {"encoder": {"stage_0": {"k": 0}, "proj": {"k": 0}}, "head": {"k": 0}}
    with pytest.raises(
        ValueError, match=r"^freeze presets by block cannot place \['encoder/proj/'\]"
    ):
        presets.progressive("shallow_to_deep", params)


def _flat(items):
    for item in items:
        yield from (item if isinstance(item, tuple) else (item,))


# --- schedules ------------------------------------------------------------------------------


def test_schedule_every_epochs_and_at_steps(params):
    every = schedule.build("shallow_to_deep", params, steps_per_epoch=3, every_epochs=2)
    assert every.starts == (0, 6, 12, 18, 24)
    assert [every.index_at(s) for s in (0, 5, 6, 17, 18, 1000)] == [0, 0, 1, 2, 3, 4]
    at = schedule.build("deep_to_shallow", params, steps_per_epoch=3, at=(2, 4, 7, 9))
    assert at.starts == (0, 2, 4, 7, 9)
    static = schedule.build("encoder", params, steps_per_epoch=3)
    assert static.starts == (0,) and static.index_at(10**6) == 0
    assert "freeze plan 2/5 from step 2" in at.describe(1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(spec="shallow_to_deep"), "needs unfreeze_every"),
        (dict(spec="shallow_to_deep", at=(2, 4)), "must list 4 increasing steps"),
        (dict(spec="shallow_to_deep", at=(4, 2, 6, 8)), "must list 4 increasing steps"),
        (dict(spec="encoder", every_epochs=1), "need a progressive freeze preset"),
    ],
)
def test_schedule_errors(params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        schedule.build(params=params, steps_per_epoch=2, **kwargs)


def test_steps_per_epoch_rounds_up():
    assert schedule.steps_per_epoch(10, 4) == 3 and schedule.steps_per_epoch(3, 8) == 1


def test_labels_group_leaves_by_when_their_rule_began(params):
    sched = schedule.build("shallow_to_deep", params, steps_per_epoch=1, every_epochs=1)
    labels = flatten(sched.labels(2))
    assert labels["encoder/stage_0/conv_0/kernel"] == "train@0"
    assert labels["encoder/stage_1/conv_0/kernel"] == "train@1"
    assert labels["bottleneck/conv_0/kernel"] == "train@2"
    assert labels["decoder/stage_1/conv_0/kernel"] == "frozen"


def test_carry_state_keeps_old_groups_and_starts_new_ones_fresh(params):
    sched = schedule.build("shallow_to_deep", params, steps_per_epoch=1, every_epochs=1)
    base = optax.adam(0.01)
    tx0 = freeze.partition_labels(base, sched.labels(0))
    state, p = tx0.init(params), params
    for _ in range(3):
        updates, state = tx0.update(jax.tree.map(np.ones_like, p), state, p)
        p = optax.apply_updates(p, updates)
    tx1 = freeze.partition_labels(base, sched.labels(1))
    carried = schedule.carry_state(state, sched.labels(0), tx1.init(p), sched.labels(1))
    old0 = state.inner_states["train@0"].inner_state[0]
    new0 = carried.inner_states["train@0"].inner_state[0]
    assert int(new0.count) == 3
    k = ("encoder", "stage_0", "conv_0", "kernel")
    assert np.array_equal(_get(new0.mu, k), _get(old0.mu, k))
    fresh = carried.inner_states["train@1"].inner_state[0]
    assert int(fresh.count) == 0
    assert not np.any(_get(fresh.mu, ("encoder", "stage_1", "conv_0", "kernel")))
    # the carried state drives the new partition without shape errors
    tx1.update(jax.tree.map(np.ones_like, p), carried, p)


def _get(tree, keys):
    for k in keys:
        tree = tree[k]
    return np.asarray(tree)
