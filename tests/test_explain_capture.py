"""Activation capture by path regex and loading a finished run for inspection."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _transfer_worker import random_variables, save_state

from jaxseg import models
from jaxseg.eval.distances import host_metrics
from jaxseg.explain.capture import capture, layer_output, load_run, module_paths
from jaxseg.models.unet import Localizer, UNet
from jaxseg.train import rundir
from jaxseg.train.loop import train_and_evaluate


@pytest.fixture(scope="module")
def unet():
    model = UNet(depth=2, width=4)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    images = np.random.default_rng(0).standard_normal((3, 16, 16, 1)).astype(np.float32)
    return model, variables, images


def test_capture_returns_the_selected_layers_with_their_shapes(unet):
    model, variables, images = unet
    out = capture(model, variables, images, r"^(encoder/stage_\d+|bottleneck|decoder/stage_0)$")
    shapes = {p: tuple(a.shape) for p, a in out.items()}
    assert shapes == {
        "encoder/stage_0": (3, 16, 16, 4),
        "encoder/stage_1": (3, 8, 8, 8),
        "bottleneck": (3, 4, 4, 16),
        "decoder/stage_0": (3, 16, 16, 4),
    }


def test_captured_decoder_output_is_what_the_head_sees(unet):
    model, variables, images = unet
    feats = capture(model, variables, images, r"^decoder/stage_0$")["decoder/stage_0"]
    head = variables["params"]["head"]
    logits = jnp.einsum("bhwc,ck->bhwk", feats, head["kernel"][0, 0]) + head["bias"]
    np.testing.assert_allclose(logits, model.apply(variables, images), rtol=1e-5, atol=1e-5)


def test_inner_modules_and_layer_output(unet):
    model, variables, images = unet
    paths = module_paths(model, variables, images)
    assert "encoder/stage_1/conv_0" in paths and "encoder/stage_1/norm_0/bn" in paths
    assert "encoder" not in paths  # returns a tuple (features, skips), not an array
    fn = jax.jit(layer_output(model, variables, "encoder/stage_1/conv_0"))
    direct = capture(model, variables, images, r"^encoder/stage_1/conv_0$")[
        "encoder/stage_1/conv_0"
    ]
    np.testing.assert_allclose(fn(images), direct, rtol=1e-6)


def test_capture_errors_name_existing_modules(unet):
    model, variables, images = unet
    with pytest.raises(ValueError, match=r"match no module; modules include \['encoder/stage_0"):
        capture(model, variables, images, "^decoders/")


def test_localizer_shares_encoder_paths(unet):
    model = Localizer(depth=2, width=4)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    out = capture(model, variables, unet[2], r"^(encoder/stage_\d+|bottleneck)$")
    assert sorted(out) == ["bottleneck", "encoder/stage_0", "encoder/stage_1"]


def test_load_run_rebuilds_the_trained_model(tiny_run, tiny_fundus, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    result = train_and_evaluate(run.config, run.workdir, tiny_fundus)
    model, variables, config = load_run(run.workdir)
    assert config.task == "segmentation" and config.name == "scratch"
    images = tiny_fundus.arrays["image"][np.asarray(result["test_index"])]
    masks = tiny_fundus.arrays["mask"][np.asarray(result["test_index"])]
    pred = np.asarray(model.apply(variables, images)) >= 0.0  # sigmoid >= 0.5
    inter = (pred & (masks > 0.5)).reshape(len(pred), -1).sum(1)
    total = pred.reshape(len(pred), -1).sum(1) + (masks > 0.5).reshape(len(pred), -1).sum(1)
    dice = np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))
    np.testing.assert_allclose(dice, result["per_example"]["dice"], rtol=1e-5)
    # The host metrics in result.json are those of the thresholded predictions (inf -> null).
    host = host_metrics(pred, masks > 0.5)
    for name in ("hd", "hd95", "boundary_length_diff", "ari"):
        stored = np.array([np.inf if x is None else x for x in result["per_example"][name]])
        np.testing.assert_allclose(stored, host[name], rtol=1e-6)
        finite = np.isfinite(host[name])
        assert result["nonfinite"].get(name, 0) == int((~finite).sum())
        if finite.any():
            assert result["metrics"][name] == pytest.approx(host[name][finite].mean())


def test_load_run_reads_the_best_validated_checkpoint_unless_told(tiny_run, tmp_path):
    run = tiny_run(tmp_path, "scratch")
    rundir.record(run.config, run.workdir)
    model = models.build(run.config.model, "pixels", 1)
    best, last = (random_variables(model, seed) for seed in (41, 42))
    save_state(rundir.checkpoints(run.workdir), last, step=6)
    assert np.array_equal(load_run(run.workdir).variables["params"]["head"]["kernel"],
                          last["params"]["head"]["kernel"])  # fmt: skip
    save_state(rundir.best(run.workdir), best, step=2)
    for loaded, want in ((load_run(run.workdir), best), (load_run(run.workdir, best=False), last)):
        got = loaded.variables["params"]["head"]["kernel"]
        assert np.array_equal(got, want["params"]["head"]["kernel"])


def test_load_run_needs_a_stage_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a stage directory"):
        load_run(str(tmp_path))
