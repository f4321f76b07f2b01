"""Tests for jaxseg.models.torchvision_weights: torchvision models with random weights and random
BatchNorm statistics, converted into our encoders, give torch's features at every stage.

The torchvision comparisons skip when torchvision cannot be imported (a build that does not match
torch); the VGG16 checks against ``torch.nn.functional`` and the error cases need torch only.
"""

import logging
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg.models import torchvision_weights as tw
from jaxseg.models.backbones import BACKBONES

torch = pytest.importorskip("torch")
F = torch.nn.functional

# torchvision vgg16().features: (index, in channels, out channels) of the 13 convs, per stage
VGG16_STAGES = (
    ((0, 3, 64), (2, 64, 64)),
    ((5, 64, 128), (7, 128, 128)),
    ((10, 128, 256), (12, 256, 256), (14, 256, 256)),
    ((17, 256, 512), (19, 512, 512), (21, 512, 512)),
    ((24, 512, 512), (26, 512, 512), (28, 512, 512)),
)


def torchvision_models():
    try:
        from torchvision import models
    except Exception as e:  # e.g. a CUDA torchvision next to a CPU torch
        pytest.skip(f"torchvision cannot be imported: {e}")
    return models


def vgg16_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """A vgg16 state_dict of random numpy arrays (He-scaled, so features keep their scale), with
    two stand-in classifier keys (the real ones are 100M numbers)."""
    rng = np.random.default_rng(seed)
    state = {"classifier.0.weight": np.zeros((4, 8)), "classifier.0.bias": np.zeros(4)}
    for stage in VGG16_STAGES:
        for index, cin, cout in stage:
            w = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))
            state[f"features.{index}.weight"] = w.astype(np.float32)
            state[f"features.{index}.bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    return state


def torch_vgg16_stages(state: dict[str, np.ndarray], x: np.ndarray) -> list[np.ndarray]:
    """Reference: the 5 pre-pool stage outputs of vgg16.features with torch.nn.functional."""
    y, outputs = torch.from_numpy(x.transpose(0, 3, 1, 2)), []
    for i, stage in enumerate(VGG16_STAGES):
        if i:
            y = F.max_pool2d(y, 2)
        for index, _, _ in stage:
            w, b = (torch.from_numpy(state[f"features.{index}.{k}"]) for k in ("weight", "bias"))
            y = F.relu(F.conv2d(y, w, b, padding=1))
        outputs.append(y.numpy().transpose(0, 2, 3, 1))
    return outputs


def encoder_stages(variables: dict, backbone: str, norm: str, x: np.ndarray, **kw) -> list:
    """Our encoder's stage outputs (inference) with converted ``variables``."""
    encoder = BACKBONES[backbone](norm=norm, **kw)
    inner = {collection: tree["encoder"] for collection, tree in variables.items()}
    return jax.jit(lambda v, x: encoder.apply(v, x, False))(inner, jnp.asarray(x))


def assert_close(ours: list, reference: list) -> None:
    assert len(ours) == len(reference)
    for i, (a, b) in enumerate(zip(ours, reference, strict=True)):
        assert a.shape == b.shape, (i, a.shape, b.shape)
        scale = max(1.0, float(np.abs(b).max()))
        assert float(np.abs(np.asarray(a) - b).max()) <= 1e-4 * scale, f"stage {i}"


def randomized(model):
    """Eval mode, with random BatchNorm affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=gen) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=gen) - 0.5
            m.running_mean = torch.rand(m.running_mean.shape, generator=gen) - 0.5
            m.running_var = torch.rand(m.running_var.shape, generator=gen) * 1.5 + 0.5
    return model.eval()


def torch_resnet_stages(model, x: np.ndarray) -> list[np.ndarray]:
    """stem (after ReLU), layer1 (after the max-pool), layer2, layer3, layer4."""
    with torch.no_grad():
        y = model.relu(model.bn1(model.conv1(torch.from_numpy(x.transpose(0, 3, 1, 2)))))
        outputs = [y]
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            y = layer(model.maxpool(y) if layer is model.layer1 else y)
            outputs.append(y)
    return [o.numpy().transpose(0, 2, 3, 1) for o in outputs]


def torch_vgg_stages(model, x: np.ndarray) -> list[np.ndarray]:
    """The outputs that enter each of the features' max-pools."""
    y, outputs = torch.from_numpy(x.transpose(0, 3, 1, 2)), []
    with torch.no_grad():
        for layer in model.features:
            if isinstance(layer, torch.nn.MaxPool2d):
                outputs.append(y.numpy().transpose(0, 2, 3, 1))
            y = layer(y)
    return outputs


@pytest.mark.parametrize(
    ("arch", "backbone", "norm", "kwargs"),
    [
        ("vgg16", "vgg16", "none", {}),
        ("vgg16_bn", "vgg16", "batch", {}),
        ("resnet50", "resnet50", "batch", {}),
        ("resnext50_32x4d", "resnext50", "batch", {}),
        ("resnet50", "resnet50", "batch", {"replace_stride_with_dilation": [False, True, True]}),
    ],
)
def test_torchvision_features_match(arch, backbone, norm, kwargs):
    """Every stage within 1e-4 of torch (relative to the feature scale); the dilated ResNet50
    (output stride 8) matches torchvision's replace_stride_with_dilation."""
    models = torchvision_models()
    torch.manual_seed(0)
    model = randomized(getattr(models, arch)(**kwargs))
    x = np.random.default_rng(0).standard_normal((2, 64, 64, 3)).astype(np.float32)
    reference = (torch_vgg_stages if backbone == "vgg16" else torch_resnet_stages)(model, x)
    variables = tw.convert(model.state_dict(), arch)
    output_stride = 8 if kwargs else 0
    assert_close(
        encoder_stages(variables, backbone, norm, x, output_stride=output_stride), reference
    )


def test_vgg16_matches_torch_functional_and_grayscale_sums_the_stem():
    """Numpy state_dict -> our VGG16 = torch's; in_channels=1 on a gray image = RGB on (g, g, g)."""
    state = vgg16_state_dict()
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 1)).astype(np.float32)
    rgb = np.repeat(x, 3, axis=-1)
    assert_close(
        encoder_stages(tw.convert(state, "vgg16"), "vgg16", "none", rgb),
        torch_vgg16_stages(state, rgb),
    )
    gray = tw.convert(state, "vgg16", in_channels=1)
    stem = gray["params"]["encoder"]["stage_0"]["conv_0"]["kernel"]
    assert stem.shape == (3, 3, 1, 64)
    np.testing.assert_allclose(stem[:, :, 0, 5], state["features.0.weight"][5].sum(0))
    assert_close(encoder_stages(gray, "vgg16", "none", x), torch_vgg16_stages(state, rgb))


def test_layout_and_ignored_keys_are_logged(caplog):
    state = vgg16_state_dict()
    with caplog.at_level(logging.INFO, logger=tw.__name__):
        variables = tw.convert(state, "vgg16")
    assert list(variables) == ["params"]  # plain vgg16 has no BatchNorm
    conv = variables["params"]["encoder"]["stage_3"]["conv_1"]
    np.testing.assert_array_equal(
        conv["kernel"][2, 0, 7, 9], state["features.19.weight"][9, 7, 2, 0]
    )
    np.testing.assert_array_equal(conv["bias"], state["features.19.bias"])
    assert "converted 26 tensors" in caplog.text
    assert "['classifier.0.bias', 'classifier.0.weight']" in caplog.text


def test_errors_name_the_problem():
    state = vgg16_state_dict()
    with pytest.raises(ValueError, match=r"arch 'vgg19' is not supported"):
        tw.convert(state, "vgg19")
    with pytest.raises(ValueError, match=r"vgg16_bn state_dict lacks \d+ keys, e\.g\."):
        tw.convert(state, "vgg16_bn")
    with pytest.raises(ValueError, match=r"resnet50 state_dict lacks"):
        tw.convert(state, "resnet50")
    with pytest.raises(ValueError, match=r"1 unexpected keys, e\.g\. \['features\.99\.weight'\]"):
        tw.convert({**state, "features.99.weight": np.zeros(1)}, "vgg16")
    message = (
        r"key 'features.0.weight' of shape \(64, 3, 3, 3\) gives \(3, 3, 3, 64\) but "
        r"encoder/stage_0/conv_0/kernel needs \(3, 3, 2, 64\) \(in_channels=2\)"
    )
    with pytest.raises(ValueError, match=message):
        tw.convert(state, "vgg16", in_channels=2)
    bad = {**state, "features.21.bias": np.zeros(256, np.float32)}
    with pytest.raises(ValueError, match=r"'features.21.bias' of shape \(256,\)"):
        tw.convert(bad, "vgg16")


def test_load_file(tmp_path, monkeypatch):
    state = vgg16_state_dict()
    path = tmp_path / "vgg16.pth"
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, path)
    loaded = tw.load_file(path, "vgg16", in_channels=1)
    expected = tw.convert(state, "vgg16", in_channels=1)
    jax.tree.map(np.testing.assert_array_equal, loaded, expected)
    with pytest.raises(FileNotFoundError, match=r"missing.pth does not exist"):
        tw.load_file(tmp_path / "missing.pth", "vgg16")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list.pth holds a list, not a state_dict"):
        tw.load_file(tmp_path / "list.pth", "vgg16")
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r"needs torch .* pass a state_dict of numpy arrays"):
        tw.load_file(path, "vgg16")
