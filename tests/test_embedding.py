"""CONV ⊂ LOCAL ⊂ FC: embeddings express the same function (Section 2)."""

import pytest
import torch
from torch import nn

from companion import build_model, embed
from companion.nn.embedding import dense_from_local
from companion.nn.layers import LocallyConnected2d


def _randomise_batchnorm(model):
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


@pytest.mark.parametrize("name,into", [
    ("s-conv", "local"), ("s-conv", "fc"), ("s-local", "fc"),
    ("d-conv", "local"), ("d-conv", "fc"), ("d-local", "fc"),
])
def test_same_function_in_eval_mode(name, into):
    torch.manual_seed(0)
    model = build_model(name, 2, dropout=0.2)
    _randomise_batchnorm(model)
    model.eval()
    target = embed(model, into)
    assert target.config["name"] == f"{name[0]}-{into}"
    x = torch.randn(5, 3, 32, 32)
    out = model(x)
    assert out.abs().max() > 1e-2  # a non-trivial function
    torch.testing.assert_close(target.eval()(x), out, rtol=1e-4, atol=1e-5)


def test_conv_to_local_is_exact_in_train_mode_too():
    torch.manual_seed(1)
    model = build_model("s-conv", 3).train()
    target = embed(model, "local")
    x = torch.randn(8, 3, 32, 32)
    torch.testing.assert_close(target(x), model(x), rtol=1e-4, atol=1e-5)


def test_dense_matrix_is_zero_outside_receptive_fields():
    layer = LocallyConnected2d(1, 1, 8, 3, stride=2, padding=1, bias=False)
    dense = dense_from_local(layer)
    assert dense.shape == (16, 64)
    nonzero_per_row = (dense != 0).sum(1)
    assert nonzero_per_row.max() <= 9
    # corner output (0,0) reads rows -1..1, cols -1..1 of the input: 4 in-bounds pixels
    assert nonzero_per_row[0] == 4
    assert set(dense[0].nonzero().flatten().tolist()) == {0, 1, 8, 9}


@pytest.mark.parametrize("name,into,match", [
    ("s-fc", "local", "larger class"),
    ("s-local", "local", "larger class"),
    ("s-conv", "conv", "'local' or 'fc'"),
    ("resnet18", "fc", "D-/S- CONV and LOCAL"),
])
def test_bad_embeddings(name, into, match):
    with pytest.raises(ValueError, match=match):
        embed(build_model(name, 2), into)
