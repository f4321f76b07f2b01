"""Linear CKA and the similarity table (weight distances: tests/test_eval_weights.py)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxseg.explain.similarity import activation_cka, linear_cka, similarity_table

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


# ---- similarity table ----------------------------------------------------------------------


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
