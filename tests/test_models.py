"""Architectures of Section 2.1 / Tables 3, 4 / Appendix A.1."""

import pytest
import torch
from torch import nn

from companion import MODEL_NAMES, build_model
from companion.nn.layers import LocallyConnected2d


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape(name):
    alpha = 4 if name != "resnet18" else 4
    model = build_model(name, alpha, num_classes=7).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("depth", ["d", "s"])
def test_variants_share_shapes_and_differ_in_connectivity(depth):
    """-conv/-local/-fc: same layer-by-layer output shapes, different layer types."""
    kinds = {"conv": nn.Conv2d, "local": LocallyConnected2d, "fc": nn.Linear}
    shapes = {}
    for variant, kind in kinds.items():
        model = build_model(f"{depth}-{variant}", 2).eval()
        assert all(isinstance(dict(model.named_modules())[n], kind) for n in model.conv_positions)
        outs, x = [], torch.randn(1, 3, 32, 32)
        for block in model:
            x = block(x)
            outs.append(x.numel())
        shapes[variant] = outs
    assert shapes["conv"] == shapes["local"] == shapes["fc"]


def test_s_conv_shapes_follow_table_4():
    model = build_model("s-conv", 5).eval()
    h = model.conv1(torch.randn(1, 3, 32, 32))
    assert h.shape == (1, 5, 16, 16)  # conv9x9 stride 2 gives s/2 x s/2 x α
    assert model.fc1.layer.out_features == 24 * 5


def test_d_conv_widths_follow_table_3():
    model = build_model("d-conv", 3)
    widths = [model.get_submodule(f"conv{i}.layer").out_channels for i in range(1, 9)]
    strides = [model.get_submodule(f"conv{i}.layer").stride[0] for i in range(1, 9)]
    assert widths == [3, 6, 6, 12, 12, 24, 24, 48]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2]
    assert model.fc1.layer.out_features == 64 * 3
    assert model.fc1.layer.in_features == 48 * 2 * 2


def test_every_layer_but_last_has_bn_and_relu():
    model = build_model("d-local", 2)
    blocks = list(model.children())
    for block in blocks[:-1]:
        assert isinstance(block.bn, (nn.BatchNorm1d, nn.BatchNorm2d)) and isinstance(block.act, nn.ReLU)
    assert not hasattr(blocks[-1], "bn") and blocks[-1].layer.bias is not None


def test_dropout_only_on_last_two_fc_layers():
    model = build_model("s-fc", 2, dropout=0.3)
    drops = [n for n, m in model.named_modules() if isinstance(m, nn.Dropout)]
    assert drops == ["fc1.dropout", "fc2.dropout"]
    assert not any(isinstance(m, nn.Dropout) for m in build_model("s-fc", 2).modules())


def test_three_fc_width_is_alpha():
    model = build_model("3-fc", 17)
    assert [model.get_submodule(n).out_features for n in model.paper_layers] == [17, 17, 10]


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_resnet18_kernel_size(k):
    model = build_model("resnet18", 4, kernel_size=k)
    assert model.layers[0][0].conv1.kernel_size == (k, k)
    assert model.stem.kernel_size == (3, 3)  # CIFAR stem stays 3x3 (Appendix A.1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_resnet18_standard_size():
    # He et al. (2016)'s ResNet18 with a CIFAR stem and 10 classes: 11,173,962 parameters
    assert sum(p.numel() for p in build_model("resnet18", 64).parameters()) == 11_173_962


def test_paper_size_models_build_on_meta():
    model = build_model("s-fc", 150, device="meta")
    assert sum(p.numel() for p in model.parameters()) > 256e6
    assert next(model.parameters()).is_meta


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="s-cnn", alpha=4), "unknown model 's-cnn'; accepted: d-conv"),
    (dict(name="s-fc", alpha=0), "alpha"),
    (dict(name="s-fc", alpha=2.5), "alpha"),
    (dict(name="d-conv", alpha=2, image_size=24), "multiple of 16"),
    (dict(name="s-conv", alpha=2, image_size=31), "even"),
    (dict(name="s-conv", alpha=2, in_channels=0), "in_channels"),
    (dict(name="resnet18", alpha=2, kernel_size=4), "odd integer >= 3"),
    (dict(name="resnet18", alpha=2, kernel_size=1), "kernel_size"),
    (dict(name="s-conv", alpha=2, kernel_size=5), "option of resnet18 only"),
    (dict(name="s-fc", alpha=2, dropout=1.0), "dropout"),
])
def test_bad_input_is_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(**kwargs)
