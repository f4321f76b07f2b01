"""Tests for jaxseg.surgery.inspect against hand-counted parameter numbers of tiny U-Nets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import freeze

from jaxseg.checkpoint import flatten
from jaxseg.models.unet import Localizer, UNet
from jaxseg.surgery import inspect

KEY = jax.ShapeDtypeStruct((2,), jnp.uint32)

# UNet(depth=1, width=2, norm='none') on 1-channel inputs, counted by hand (3×3 convs with bias):
ENC = (3 * 3 * 1 * 2 + 2) + (3 * 3 * 2 * 2 + 2)  # encoder/stage_0: 1->2, 2->2 = 58
BOTTLENECK_CONV = (3 * 3 * 2 * 4 + 4, 3 * 3 * 4 * 4 + 4)  # width·2 = 4 channels: 76, 148
BOTTLENECK = sum(BOTTLENECK_CONV)  # 224
UP = 2 * 2 * 4 * 2 + 2  # 2×2 transposed conv 4->2 = 34
DEC = UP + (3 * 3 * 4 * 2 + 2) + (3 * 3 * 2 * 2 + 2)  # concat(skip 2, up 2) -> 2, 2->2 = 146
HEAD = 1 * 1 * 2 * 1 + 1  # 1×1 conv 2->1 = 3
TOTAL = ENC + BOTTLENECK + DEC + HEAD  # 431


def abstract_params(model, size: int = 16) -> dict:
    """The params tree of ``model`` as ShapeDtypeStructs (no compilation, no weights)."""
    x = jax.ShapeDtypeStruct((1, size, size, 1), jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), KEY, x)["params"]


@pytest.fixture(scope="module")
def tiny() -> dict:
    """Tiny U-Net params with top-level keys in creation order (eval_shape sorts them)."""
    p = abstract_params(UNet(depth=1, width=2, norm="none"))
    return {k: p[k] for k in ("encoder", "bottleneck", "decoder", "head")}


@pytest.fixture(scope="module")
def tiny_loc() -> dict:
    return abstract_params(Localizer(depth=1, width=2, norm="none"))


def test_hand_counts_are_the_numbers_we_think():
    assert (ENC, BOTTLENECK, UP, DEC, HEAD, TOTAL) == (58, 224, 34, 146, 3, 431)


def test_list_paths_in_tree_order(tiny):
    paths = inspect.list_paths(tiny)
    assert len(paths) == 16  # 2 convs × (kernel, bias) ×3 blocks + up (2) + head (2)
    assert len(set(paths)) == 16
    assert paths[:4] == [
        "encoder/stage_0/conv_0/bias",
        "encoder/stage_0/conv_0/kernel",
        "encoder/stage_0/conv_1/bias",
        "encoder/stage_0/conv_1/kernel",
    ]
    assert paths[4].startswith("bottleneck/")
    assert paths[-2:] == ["head/bias", "head/kernel"]


def test_count_total_and_selectors(tiny):
    assert inspect.count(tiny) == TOTAL
    assert inspect.count(tiny, "encoder") == ENC
    assert inspect.count(tiny, "bottleneck") == BOTTLENECK
    assert inspect.count(tiny, "encoder+bottleneck") == ENC + BOTTLENECK
    assert inspect.count(tiny, "decoder + head") == DEC + HEAD
    assert inspect.count(tiny, "decoder/stage_0/up") == UP
    assert inspect.count(tiny, "bottleneck/conv_[01]/kernel") == BOTTLENECK - 8
    assert inspect.count(tiny, "") == 0
    assert inspect.count(tiny, "stage_0") == 0  # selectors are anchored at the start
    assert inspect.count(tiny, "encode") == 0  # ... and end at a '/' boundary


def test_count_by_prefix_keys_in_order_and_sums(tiny):
    by_top = inspect.count_by_prefix(tiny)
    assert list(by_top.items()) == [
        ("encoder", ENC),
        ("bottleneck", BOTTLENECK),
        ("decoder", DEC),
        ("head", HEAD),
    ]
    assert inspect.count_by_prefix(tiny, depth=2) == {
        "encoder/stage_0": ENC,
        "bottleneck/conv_0": BOTTLENECK_CONV[0],
        "bottleneck/conv_1": BOTTLENECK_CONV[1],
        "decoder/stage_0": DEC,
        "head/bias": 1,
        "head/kernel": 2,
    }
    assert list(inspect.count_by_prefix(tiny, depth=2))[:3] == [
        "encoder/stage_0",
        "bottleneck/conv_0",
        "bottleneck/conv_1",
    ]
    for depth in range(1, 6):
        assert sum(inspect.count_by_prefix(tiny, depth).values()) == TOTAL, depth
    # Deeper than any path: one group per leaf.
    assert inspect.count_by_prefix(tiny, depth=9) == {
        p: int(np.prod(v.shape)) for p, v in flatten(tiny).items()
    }


@pytest.mark.parametrize("depth", [0, -1])
def test_count_by_prefix_bad_depth(tiny, depth):
    with pytest.raises(ValueError, match="depth"):
        inspect.count_by_prefix(tiny, depth)


def _rows(table: str) -> dict[str, tuple[int, int, str]]:
    """{'name selector': (leaves, params, pct)} of a summary table (separators skipped)."""
    rows = {}
    for line in table.splitlines()[1:]:
        if set(line) == {"-"}:
            continue
        label, leaves, params, pct = line.rsplit(None, 3)
        rows[" ".join(label.split())] = (int(leaves), int(params.replace(",", "")), pct)
    return rows


def test_summary_default_groups(tiny):
    table = inspect.summary(tiny)
    lines = table.splitlines()
    assert lines[0].split() == ["group", "selector", "leaves", "params", "%"]
    assert len({len(line) for line in lines}) == 1  # fixed width
    assert _rows(table) == {
        "contracting encoder+bottleneck": (8, 282, "65.4"),
        "expanding decoder+head": (8, 149, "34.6"),
        "total": (16, TOTAL, "100.0"),
    }
    assert "(unassigned)" not in table
    assert list(_rows(table))[-1] == "total"


def test_summary_overlapping_groups_and_unassigned(tiny):
    table = inspect.summary(tiny, {"enc": "encoder", "both": "encoder+bottleneck"})
    assert list(_rows(table).items()) == [
        ("enc encoder", (4, ENC, "13.5")),  # 58 / 431
        ("both encoder+bottleneck", (8, ENC + BOTTLENECK, "65.4")),  # overlaps 'enc'
        ("(unassigned) -", (8, DEC + HEAD, "34.6")),
        ("total", (16, TOTAL, "100.0")),
    ]


def test_summary_group_matching_nothing_and_empty_tree(tiny):
    rows = _rows(inspect.summary(tiny, {"typo": "decodr"}))
    assert rows["typo decodr"] == (0, 0, "0.0")
    assert rows["(unassigned) -"] == (16, TOTAL, "100.0")
    assert _rows(inspect.summary({})) == {
        "contracting encoder+bottleneck": (0, 0, "0.0"),
        "expanding decoder+head": (0, 0, "0.0"),
        "total": (0, 0, "0.0"),
    }


def test_summary_full_size_unet_matches_design_doc():
    params = abstract_params(UNet(depth=4, width=32, norm="none"))
    table = inspect.summary(params)
    assert "7,759,521" in table  # docs/design.md §2
    rows = _rows(table)
    contracting = rows["contracting encoder+bottleneck"][1]
    expanding = rows["expanding decoder+head"][1]
    assert contracting + expanding == 7_759_521
    assert contracting == inspect.count(params, "encoder+bottleneck")


def test_diff_localizer_vs_unet(tiny, tiny_loc):
    d = inspect.diff(tiny_loc, tiny)
    decoder = [p for p in inspect.list_paths(tiny) if p.startswith("decoder/")]
    assert d["added"] == sorted(decoder)
    assert len(d["added"]) == 6
    assert d["removed"] == []
    # Localizer head: dense on the flattened 8×8×4 bottleneck -> 2; U-Net head: 1×1 conv 2->1.
    assert d["changed"] == [
        ("head/bias", (2,), (1,)),
        ("head/kernel", (256, 2), (1, 1, 2, 1)),
    ]
    assert d["unchanged"] == 8  # encoder + bottleneck
    back = inspect.diff(tiny, tiny_loc)
    assert back["removed"] == d["added"] and back["added"] == []
    assert back["changed"] == [(p, b, a) for p, a, b in d["changed"]]

    text = inspect.format_diff(d)
    lines = text.splitlines()
    assert lines[0] == "added 6, removed 0, changed 2, unchanged 8"
    assert lines[1:7] == [f"+ {p}" for p in sorted(decoder)]
    assert lines[7:] == [
        "~ head/bias (2,) -> (1,)",
        "~ head/kernel (256, 2) -> (1, 1, 2, 1)",
    ]


def test_diff_identical_and_disjoint():
    a = {"x": {"w": np.zeros((2, 3))}, "y": np.zeros(4)}
    assert inspect.diff(a, a) == {"added": [], "removed": [], "changed": [], "unchanged": 2}
    assert inspect.format_diff(inspect.diff(a, a)) == "added 0, removed 0, changed 0, unchanged 2"
    b = {"z": np.zeros(1), "b": np.zeros(1)}
    d = inspect.diff(a, b)
    assert d == {"added": ["b", "z"], "removed": ["x/w", "y"], "changed": [], "unchanged": 0}
    assert "- x/w" in inspect.format_diff(d)


def test_select_regex_anchors(tiny):
    unanchored = inspect.select_regex(tiny, "conv_0/kernel")
    assert sorted(unanchored) == [
        "bottleneck/conv_0/kernel",
        "decoder/stage_0/conv_0/kernel",
        "encoder/stage_0/conv_0/kernel",
    ]
    assert sorted(inspect.select_regex(tiny, r"^decoder/.*/up/")) == [
        "decoder/stage_0/up/bias",
        "decoder/stage_0/up/kernel",
    ]
    assert inspect.select_regex(tiny, r"^stage_0") == {}  # anchored: no path starts so
    assert len(inspect.select_regex(tiny, "stage_0")) == 10  # unanchored: search anywhere
    assert len(inspect.select_regex(tiny, r"bias$")) == 8
    assert inspect.select_regex(tiny, "^kernel$") == {}
    leaf = inspect.select_regex(tiny, r"^head/kernel$")["head/kernel"]
    assert leaf is tiny["head"]["kernel"]


def test_select_regex_invalid_names_it(tiny):
    with pytest.raises(ValueError, match=r"stage_\[") as err:
        inspect.select_regex(tiny, "encoder/stage_[")
    assert "not valid" in str(err.value)


def test_concrete_arrays_and_shape_structs_agree(tiny, tiny_loc):
    concrete = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), tiny)
    assert isinstance(concrete["head"]["kernel"], np.ndarray)
    assert inspect.count(concrete) == TOTAL
    assert inspect.count_by_prefix(concrete, 2) == inspect.count_by_prefix(tiny, 2)
    assert inspect.summary(concrete) == inspect.summary(tiny)
    assert inspect.diff(tiny_loc, concrete) == inspect.diff(tiny_loc, tiny)
    as_jax = jax.tree.map(jnp.asarray, concrete)
    assert inspect.count(as_jax, "decoder") == DEC
    assert inspect.count(freeze(concrete), "encoder+bottleneck") == ENC + BOTTLENECK


def test_scalar_leaves_count_one_and_empty_arrays_zero():
    tree = {"a": {"step": np.int32(3), "lr": 0.5}, "b": jax.ShapeDtypeStruct((), jnp.float32)}
    assert inspect.count(tree) == 3
    assert inspect.count({"empty": np.zeros((0, 3)), "x": np.zeros(2)}) == 2
    assert inspect.diff(tree, tree)["unchanged"] == 3
