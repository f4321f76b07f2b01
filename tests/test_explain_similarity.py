"""Linear CKA, per-stage conv-kernel distance, stage groups and the similarity table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import checkpoint
from jaxseg.explain.similarity import (
    activation_cka,
    bidirectional,
    linear_cka,
    similarity_table,
    stage_groups,
    weight_distance,
)
from jaxseg.models.unet import Localizer, UNet

RNG = np.random.default_rng(0)


def naive_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA through HSIC with the centring matrix H = I - 11^T/n on K = XX^T, L = YY^T."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    hsic = np.trace(k @ h @ l_ @ h)
    return hsic / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """Related features of 40 examples: y = a noisy non-linear map of x."""
    x = RNG.normal(size=(40, 6))
    y = np.tanh(x @ RNG.normal(size=(6, 9))) + 0.3 * RNG.normal(size=(40, 9))
    return x, y


# ---- linear CKA ------------------------------------------------------------------------------


def test_cka_of_identical_inputs_is_one(xy):
    x, y = xy
    assert abs(linear_cka(x, x) - 1) < 1e-12
    assert abs(linear_cka(y, y) - 1) < 1e-12
    assert 0 < linear_cka(x, y) < 1
    assert isinstance(linear_cka(x.astype(np.float32), y), float)


@pytest.mark.parametrize(("n", "p", "q"), [(40, 6, 9), (5, 30, 20), (3, 2, 50)])
def test_cka_matches_naive_hsic(n, p, q):
    # (5, 30, 20) and (3, 2, 50) take the Gram-matrix route, (40, 6, 9) the feature route
    x, y = RNG.normal(size=(n, p)), RNG.normal(size=(n, q)) + 2.0
    y[:, 0] += x[:, 0]
    assert linear_cka(x, y) == pytest.approx(naive_cka(x, y), abs=1e-12)


def test_cka_invariant_to_rotation_scaling_and_shift(xy):
    x, y = xy
    q, _ = np.linalg.qr(RNG.normal(size=(9, 9)))
    ref = linear_cka(x, y)
    assert linear_cka(x, y @ q) == pytest.approx(ref, abs=1e-12)
    assert linear_cka(7.5 * x, y) == pytest.approx(ref, abs=1e-12)
    assert linear_cka(x + 3.0, y - 1.0) == pytest.approx(ref, abs=1e-12)


def test_cka_not_invariant_to_general_invertible_maps(xy):
    x, y = xy
    a = np.diag([10.0, 1, 1, 1, 0.1, 1]) + 0.5 * RNG.normal(size=(6, 6))
    assert abs(np.linalg.det(a)) > 1e-3
    assert abs(linear_cka(x @ a, y) - linear_cka(x, y)) > 1e-3


def test_cka_errors_and_constant_input():
    with pytest.raises(ValueError, match="same examples: 4 rows vs 5"):
        linear_cka(np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="at least 2 examples"):
        linear_cka(np.ones((1, 2)), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"\[n,p\]"):
        linear_cka(np.ones((4, 2, 2)), np.ones((4, 2)))
    assert np.isnan(linear_cka(np.ones((4, 2)), RNG.normal(size=(4, 3))))


def test_activation_cka_flattens_each_path():
    a = {
        "encoder/stage_0": RNG.normal(size=(6, 4, 4, 2)),
        "bottleneck": RNG.normal(size=(6, 1, 1, 8)),
    }
    b = {"bottleneck": RNG.normal(size=(6, 1, 1, 3)), "encoder/stage_0": a["encoder/stage_0"]}
    out = activation_cka(a, b)
    assert list(out) == ["encoder/stage_0", "bottleneck"]
    assert out["encoder/stage_0"] == pytest.approx(1.0)
    ref = naive_cka(a["bottleneck"].reshape(6, 8), b["bottleneck"].reshape(6, 3))
    assert out["bottleneck"] == pytest.approx(ref, abs=1e-12)


def test_activation_cka_mismatched_paths():
    x = RNG.normal(size=(3, 2, 2, 1))
    with pytest.raises(ValueError, match=r"only in a \['head'\], only in b \['decoder'\]"):
        activation_cka({"bottleneck": x, "head": x}, {"bottleneck": x, "decoder": x})


# ---- stage groups ----------------------------------------------------------------------------


def abstract_params(model) -> dict:
    return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))["params"]


def test_stage_groups_of_a_depth_2_unet_follow_the_longest_path():
    groups = stage_groups(abstract_params(UNet(depth=2, width=4)))
    order = [
        "encoder/stage_0",
        "encoder/stage_1",
        "bottleneck",
        "decoder/stage_1",
        "decoder/stage_0",
        "head",
    ]
    assert list(groups) == order
    assert groups == {g: g for g in order}
    assert list(stage_groups(abstract_params(Localizer(depth=2, width=4)))) == [
        "encoder/stage_0",
        "encoder/stage_1",
        "bottleneck",
        "head",
    ]


def test_stage_groups_sort_stage_numbers_numerically():
    flat = {f"encoder/stage_{i}/conv_0/kernel": 0 for i in (10, 2, 0)}
    assert list(stage_groups(flat)) == ["encoder/stage_0", "encoder/stage_2", "encoder/stage_10"]


# ---- weight distance -------------------------------------------------------------------------


def hand_trees() -> tuple[dict, dict]:
    """Two flat trees whose conv kernels differ by known amounts (see the test)."""
    a = {
        "encoder/stage_0/conv_0/kernel": np.zeros((3, 3, 1, 2)),  # 18 values, all differ by 2
        "encoder/stage_0/conv_1/kernel": np.zeros((1, 1, 4, 4)),  # 16 values, one differs by 12
        "encoder/stage_0/norm_0/bn/scale": np.ones(2),
        "encoder/stage_1/conv_0/kernel": np.zeros((2, 2, 2, 2)),  # 16 values, all differ by 1
        "encoder/stage_10/conv_0/kernel": np.zeros((1, 1, 1, 4)),  # 4 values, all differ by 5
        "bottleneck/conv_0/kernel": np.ones((1, 1, 2, 2)),  # identical
        "decoder/stage_0/up/kernel": np.zeros((2, 2, 2, 1)),  # 8 values, one differs by 4
        "decoder/stage_0/up/bias": np.zeros(1),
        "head/kernel": np.zeros((4, 1)),  # dense: excluded
        "head/bias": np.zeros(1),
    }
    b = {p: v.copy() for p, v in a.items()}
    b["encoder/stage_0/conv_0/kernel"] += 2
    b["encoder/stage_0/conv_1/kernel"][0, 0, 1, 2] = 12
    b["encoder/stage_0/norm_0/bn/scale"] += 50
    b["encoder/stage_1/conv_0/kernel"] -= 1
    b["encoder/stage_10/conv_0/kernel"] += 5
    b["decoder/stage_0/up/kernel"][1, 0, 1, 0] = -4
    b["decoder/stage_0/up/bias"] += 100
    b["head/kernel"] += 100
    return checkpoint.unflatten(a), checkpoint.unflatten(b)


def test_weight_distance_by_hand():
    a, b = hand_trees()
    # RMS per kernel: 2, 12/4 = 3, 1, 5, 0, 4/sqrt(8) = sqrt(2); the head is dense
    expected = {
        "encoder/stage_0": (2 + 3) / 2,
        "encoder/stage_1": 1.0,
        "encoder/stage_10": 5.0,
        "bottleneck": 0.0,
        "decoder/stage_0": np.sqrt(2),
        "all": (2 + 3 + 1 + 5 + 0 + np.sqrt(2)) / 6,
    }
    out = weight_distance(a, b)
    assert list(out) == list(expected)  # no 'head': it has no conv kernel
    for k, v in expected.items():
        assert out[k] == pytest.approx(v, abs=1e-12), k
    custom = weight_distance(a, b, {"shallow": "encoder/stage_[01]", "deep": "bottleneck+decoder"})
    assert custom == pytest.approx({"shallow": 2.0, "deep": np.sqrt(2) / 2, "all": out["all"]})


def test_weight_distance_identical_trees_is_zero():
    a, _ = hand_trees()
    assert set(weight_distance(a, a).values()) == {0.0}


def test_weight_distance_on_a_unet_includes_the_1x1_conv_head():
    params = abstract_params(UNet(depth=2, width=4))
    a = jax.tree.map(lambda s: RNG.normal(size=s.shape), params)
    b = jax.tree.map(np.copy, a)
    b["decoder"]["stage_1"]["up"]["kernel"] += 1.0
    b["head"]["kernel"] += 3.0
    out = weight_distance(a, b)
    assert out["decoder/stage_1"] == pytest.approx(1 / 3)  # up, conv_0, conv_1
    assert out["head"] == pytest.approx(3.0)
    assert out["all"] == pytest.approx(4 / 13)  # 4 encoder, 2 bottleneck, 6 decoder, head
    assert out["encoder/stage_0"] == out["bottleneck"] == 0.0


def test_weight_distance_errors():
    a, b = hand_trees()
    b["bottleneck"]["conv_0"]["kernel"] = np.ones((1, 1, 2, 3))
    with pytest.raises(ValueError, match=r"bottleneck/conv_0/kernel: \(1, 1, 2, 2\) vs"):
        weight_distance(a, b)
    del b["bottleneck"]
    with pytest.raises(ValueError, match=r"only one tree: \['bottleneck/conv_0/kernel'\]"):
        weight_distance(a, b)
    with pytest.raises(ValueError, match=r"'typo'.*selects no parameter"):
        weight_distance(a, a, {"typo": "encodr"})


def test_bidirectional_averages_per_key():
    assert bidirectional({"a": 1.0, "all": 3.0}, {"all": 5.0, "a": 2.0}) == {"a": 1.5, "all": 4.0}
    with pytest.raises(ValueError, match=r"only in d_ab \['b'\]"):
        bidirectional({"a": 1.0, "b": 1.0}, {"a": 1.0})


def test_similarity_table_rows_and_missing_values():
    cka = {"encoder/stage_0": 0.91234, "bottleneck": 0.5, "decoder": 0.25}
    distance = {"encoder/stage_0": 0.012345, "head": 0.5, "all": 0.25}
    assert similarity_table(cka, distance).splitlines() == [
        "| stage | linear CKA | weight distance (RMS) |",
        "|---|---|---|",
        "| encoder/stage_0 | 0.9123 | 0.01235 |",
        "| head | — | 0.5 |",
        "| all | — | 0.25 |",
        "| bottleneck | 0.5000 | — |",
        "| decoder | 0.2500 | — |",
    ]
