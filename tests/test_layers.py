"""LocallyConnected2d: a convolution without weight sharing (Section 2)."""

import pytest
import torch
from torch import nn

from companion.nn.layers import LocallyConnected2d


def reference_local(x, filters, stride, padding):
    """Plain definition: every output position applies its own filter to its window."""
    o, c, k, _, ho, wo = filters.shape
    xp = nn.functional.pad(x, (padding,) * 4)
    out = torch.zeros(x.shape[0], o, ho, wo, dtype=x.dtype)
    for y in range(ho):
        for xx in range(wo):
            window = xp[:, :, stride * y : stride * y + k, stride * xx : stride * xx + k]
            out[:, :, y, xx] = torch.einsum("ncij,ocij->no", window, filters[..., y, xx])
    return out


@pytest.mark.parametrize("k,stride,padding,size", [(3, 1, 1, 6), (3, 2, 1, 8), (5, 2, 2, 7), (2, 1, 0, 5)])
def test_matches_plain_definition(k, stride, padding, size):
    torch.manual_seed(0)
    layer = LocallyConnected2d(2, 3, size, k, stride, padding, bias=True).double()
    x = torch.randn(4, 2, size, size, dtype=torch.float64)
    expected = reference_local(x, layer.filters(), stride, padding) + layer.bias
    torch.testing.assert_close(layer(x), expected)


def test_equals_conv_when_weights_are_shared():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 9, stride=2, padding=4, bias=False).double()
    layer = LocallyConnected2d(3, 4, 16, 9, 2, 4, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(conv.weight.reshape(4, -1).t().expand_as(layer.weight))
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x))


def test_gradients_match_autograd_of_plain_definition():
    """The hand-written backward (weight and input gradients) equals autograd's on the definition."""
    torch.manual_seed(2)
    layer = LocallyConnected2d(2, 3, 6, 3, 2, 1, bias=False).double()
    x = torch.randn(3, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 3, 3, 3, dtype=torch.float64)
    gx, gw = torch.autograd.grad((layer(x) * g).sum(), (x, layer.weight))
    w = layer.weight.detach().clone().requires_grad_()
    filters = w.reshape(3, 3, 2, 3, 3, 3).permute(5, 2, 3, 4, 0, 1)
    ref_gx, ref_gw = torch.autograd.grad((reference_local(x, filters, 2, 1) * g).sum(), (x, w))
    torch.testing.assert_close(gx, ref_gx)
    torch.testing.assert_close(gw, ref_gw)


def test_no_input_gradient_when_input_needs_none():
    layer = LocallyConnected2d(3, 4, 8, 3, 1, 1)
    x = torch.randn(2, 3, 8, 8)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and x.grad is None


def test_filters_view_and_shapes():
    layer = LocallyConnected2d(3, 5, 32, 9, 2, 4)
    assert layer.output_size == (16, 16)
    assert layer.weight.shape == (256, 243, 5)
    assert layer.filters().shape == (5, 3, 9, 9, 16, 16)
    assert layer.bias.shape == (5, 16, 16)


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=0), "in_channels"),
    (dict(kernel_size=9, padding=0, input_size=4), "does not fit"),
    (dict(stride=0), "stride"),
])
def test_bad_arguments(kwargs, match):
    args = dict(in_channels=3, out_channels=2, input_size=8, kernel_size=3, stride=1, padding=1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        LocallyConnected2d(**args)


def test_wrong_input_shape_is_a_clear_error():
    layer = LocallyConnected2d(3, 2, 8, 3, 1, 1)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, 8, 8\)"):
        layer(torch.randn(1, 3, 9, 9))
