"""Tests for jaxseg.checkpoint: save/restore round trips, metadata and partial restore."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxseg import checkpoint


def _params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "encoder": {
            "stage_0": {"conv_0": {"kernel": rng.normal(size=(3, 3, 1, 4)).astype(np.float32)}},
            "stage_1": {"conv_0": {"kernel": rng.normal(size=(3, 3, 4, 8)).astype(np.float32)}},
        },
        "head": {
            "kernel": rng.normal(size=(8, 2)).astype(np.float32),
            "bias": rng.normal(size=(2,)).astype(np.float32),
        },
    }


def _state(seed: int = 0, step: int = 3) -> dict:
    params = jax.tree.map(jnp.asarray, _params(seed))
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = jax.jit(tx.update)(grads, opt_state, params)  # non-zero moments and count
    return {
        "step": jnp.asarray(step, jnp.int32),
        "params": params,
        "batch_stats": {"encoder": {"stage_0": {"mean": jnp.arange(4.0) + seed}}},
        "opt_state": opt_state,
        "rng": jnp.asarray([seed, 7], jnp.uint32),
    }


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint dir with steps 1 (seed 1) and 5 (seed 0)."""
    directory = str(tmp_path_factory.mktemp("ckpt") / "checkpoints")
    mngr = checkpoint.manager(directory)
    checkpoint.save(mngr, 1, _state(seed=1, step=1))
    checkpoint.save(mngr, 5, _state(seed=0, step=5))
    mngr.close()
    return directory


def test_flatten():
    assert checkpoint.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {
        "a/b": 1,
        "a/c/d": 2,
        "e": 3,
    }
    assert checkpoint.flatten({}) == {}


def test_abstract():
    tree = {"a": np.zeros((2, 3), np.float32), "b": {"c": np.zeros((), np.int32)}}
    out = checkpoint.abstract(tree)
    assert out["a"] == jax.ShapeDtypeStruct((2, 3), np.float32)
    assert out["b"]["c"] == jax.ShapeDtypeStruct((), np.int32)


def test_round_trip_latest(saved):
    expected = _state(seed=0, step=5)
    with checkpoint.manager(saved) as mngr:
        restored = checkpoint.restore(mngr, checkpoint.abstract(expected))
    _assert_trees_equal(restored, expected)
    assert isinstance(restored["opt_state"][0], optax.ScaleByAdamState)
    assert int(restored["opt_state"][0].count) == 1


def test_restore_given_step(saved):
    expected = _state(seed=1, step=1)
    with checkpoint.manager(saved) as mngr:
        restored = checkpoint.restore(mngr, checkpoint.abstract(expected), step=1)
    _assert_trees_equal(restored, expected)


def test_latest_step(saved, tmp_path):
    assert checkpoint.latest_step(str(tmp_path / "nowhere")) is None
    assert not (tmp_path / "nowhere").exists()  # asking does not create the directory
    assert checkpoint.latest_step(str(tmp_path)) is None  # exists, holds no checkpoint
    assert checkpoint.latest_step(saved) == 5


def test_max_to_keep(tmp_path):
    directory = str(tmp_path / "c")
    params = {"w": jnp.ones(3)}
    mngr = checkpoint.manager(directory, max_to_keep=2)
    for step in (1, 2, 3):
        checkpoint.save(mngr, step, {"params": params, "step": jnp.asarray(step)})
    mngr.close()
    with checkpoint.manager(directory) as mngr:
        assert sorted(mngr.all_steps()) == [2, 3]


def test_leaf_shapes(saved):
    shapes = checkpoint.leaf_shapes(saved)
    assert shapes["params/encoder/stage_0/conv_0/kernel"] == (3, 3, 1, 4)
    assert shapes["params/encoder/stage_1/conv_0/kernel"] == (3, 3, 4, 8)
    assert shapes["params/head/kernel"] == (8, 2)
    assert shapes["params/head/bias"] == (2,)
    assert shapes["batch_stats/encoder/stage_0/mean"] == (4,)
    assert shapes["step"] == ()
    assert shapes["rng"] == (2,)
    params_paths = {p for p in shapes if p.startswith("params/")}
    assert params_paths == {
        "params/encoder/stage_0/conv_0/kernel",
        "params/encoder/stage_1/conv_0/kernel",
        "params/head/kernel",
        "params/head/bias",
    }


def test_leaf_shapes_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.leaf_shapes(str(tmp_path))


def test_restore_partial_one_subtree(saved):
    wanted = {"params": {"encoder": _params(0)["encoder"]}}
    out = checkpoint.restore_partial(saved, checkpoint.abstract(wanted))
    _assert_trees_equal(out, jax.tree.map(jnp.asarray, wanted))
    # An older step by number.
    out1 = checkpoint.restore_partial(saved, checkpoint.abstract(wanted), step=1)
    np.testing.assert_array_equal(
        out1["params"]["encoder"]["stage_1"]["conv_0"]["kernel"],
        _params(1)["encoder"]["stage_1"]["conv_0"]["kernel"],
    )
    stats = {"batch_stats": {"encoder": {"stage_0": {"mean": np.zeros(4, np.float32)}}}}
    out = checkpoint.restore_partial(saved, checkpoint.abstract(stats))
    np.testing.assert_array_equal(out["batch_stats"]["encoder"]["stage_0"]["mean"], np.arange(4.0))


def test_restore_partial_missing_checkpoint(tmp_path):
    target = checkpoint.abstract({"params": {"w": np.zeros(2, np.float32)}})
    with pytest.raises(FileNotFoundError):
        checkpoint.restore_partial(str(tmp_path), target)


def test_run_weights_prefers_the_best_validated_step(tmp_path):
    run = str(tmp_path / "run")
    latest = os.path.join(run, checkpoint.LATEST)
    best = os.path.join(run, checkpoint.BEST)
    assert checkpoint.run_weights(run) == (latest, "latest")  # nothing saved yet
    mngr = checkpoint.manager(latest)
    checkpoint.save(mngr, 4, _state(step=4))
    mngr.close()
    os.makedirs(best)  # an empty best folder (validation not reached yet) does not count
    assert checkpoint.run_weights(run) == (latest, "latest")
    mngr = checkpoint.manager(best)
    checkpoint.save(mngr, 2, _state(step=2))
    mngr.close()
    assert checkpoint.run_weights(run) == (best, "best")
