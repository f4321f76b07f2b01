"""Tests for jaxseg.train.init_path: ImageNet weights in torchvision's key layout read from a
``.safetensors`` file without torch, transferred strictly into a VGG16 encoder; bad paths.
(The run-directory form is trained end to end in tests/test_train_loop.py.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxseg import checkpoint, models
from jaxseg.models.backbones import BACKBONES
from jaxseg.train import init_path

# torchvision's vgg16 `cfg 'D'`: conv widths, 'M' = max-pool (features.i numbering follows it)
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


def vgg16_state(seed: int = 0, batch_norm: bool = False) -> dict[str, np.ndarray]:
    """A torchvision vgg16 (or vgg16_bn) state_dict (features.{i}.weight OIHW / .bias, the
    BatchNorms' weight/bias/running_mean/running_var, a stand-in classifier) of random float32
    numbers, numbered as torchvision's ``make_layers`` does."""
    rng = np.random.default_rng(seed)
    state = {"classifier.0.weight": np.zeros((4, 8), np.float32)}
    index, cin = 0, 3
    for item in VGG16_CFG:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = rng.standard_normal((item, cin, 3, 3), np.float32)
        state[f"features.{index}.bias"] = rng.standard_normal(item, np.float32)
        if batch_norm:
            index += 1
            for key in ("weight", "bias", "running_mean", "running_var"):
                state[f"features.{index}.{key}"] = rng.uniform(0.5, 1.5, item).astype(np.float32)
        index, cin = index + 2, item  # conv (or BatchNorm), ReLU
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("imagenet") / "vgg16.safetensors")
    state = vgg16_state()
    save_file(state, path)
    return path, state


def stage_config(path: str, backbone: str = "vgg16", subtrees: str = "encoder"):
    model = models.config(name="unet", backbone=backbone, norm="none", depth=4, width=4)
    init_from = dict(stage="", path=path, subtrees=subtrees, rename="", allow="")
    return ml_collections.ConfigDict(dict(model=model, init_from=init_from))


def fresh_variables(in_channels: int = 1) -> dict:
    """Zeros shaped as a one-channel VGG16 encoder, plus a decoder leaf that must be kept."""
    x = jax.ShapeDtypeStruct((1, 32, 32, in_channels), jnp.float32)
    shapes = jax.eval_shape(
        lambda x: BACKBONES["vgg16"](norm="none").init(jax.random.key(0), x, False), x
    )
    encoder = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes["params"])
    return {"params": {"encoder": encoder, "decoder": {"w": np.ones(3, np.float32)}}}


def test_safetensors_in_torchvision_layout_load_without_torch(weights):
    path, state = weights
    config = stage_config(path)
    merged, report = init_path.load(config, fresh_variables())
    flat = checkpoint.flatten(merged)
    stem = state["features.0.weight"].sum(axis=1, keepdims=True).transpose(2, 3, 1, 0)
    np.testing.assert_allclose(flat["params/encoder/stage_0/conv_0/kernel"], stem, rtol=1e-6)
    last = state["features.28.weight"].transpose(2, 3, 1, 0)  # the 13th conv
    np.testing.assert_array_equal(flat["params/encoder/stage_4/conv_2/kernel"], last)
    np.testing.assert_array_equal(
        flat["params/encoder/stage_2/conv_1/bias"], state["features.12.bias"]
    )
    assert len(report["loaded"]) == 26 and report["kept"] == ["params/decoder/w"]
    assert report["step"] is None and report["source"].endswith("vgg16.safetensors")
    np.testing.assert_array_equal(flat["params/decoder/w"], 1)
    shapes = init_path.saved_shapes(config, {p: v.shape for p, v in flat.items()})
    assert shapes["params/encoder/stage_0/conv_0/kernel"] == (3, 3, 1, 64)


def test_the_transfer_is_strict(weights):
    path, _ = weights
    with pytest.raises(ValueError, match=r"missing in checkpoint.*decoder/w"):
        init_path.load(stage_config(path, subtrees="encoder+decoder"), fresh_variables())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: str(d / "w.bin"), "neither a directory"),
        (lambda d: str(d / "none.safetensors"), "no such file"),
        (lambda d: (d / "bad.safetensors").write_bytes(b"junk") and str(d / "bad.safetensors"),
         "cannot read as safetensors"),
        (lambda d: str(d), "holds no checkpoint"),
    ],
)  # fmt: skip
def test_bad_paths_are_one_error_naming_them(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(ValueError, match=match) as err:
        init_path.load(stage_config(path), fresh_variables())
    assert path in str(err.value) and "\n" not in str(err.value)


def test_weights_need_a_torchvision_backbone(weights):
    with pytest.raises(ValueError, match=r"model\.backbone of vgg16, resnet50 or resnext50"):
        init_path.load(stage_config(weights[0], backbone=""), fresh_variables())
