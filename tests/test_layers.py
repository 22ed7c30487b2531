"""LocallyConnected2d: a convolution without weight sharing (Section 2)."""

import pytest
import torch
from torch import nn

from companion.nn import layers
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


def unfold_reference(x, weight, bias, layer):
    """The layer by F.unfold and einsum, left to autograd: the straightforward implementation."""
    cols = nn.functional.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)  # N, K, L
    out = torch.bmm(cols.permute(2, 0, 1).contiguous(), weight)  # L, N, O
    out = out.permute(1, 2, 0).reshape(x.shape[0], layer.out_channels, *layer.output_size)
    return out if bias is None else out + bias


GEOMETRIES = {  # in, out, input size, kernel, stride, padding
    "d-local 3x3 stride 1": (8, 8, (16, 16), 3, 1, 1),
    "d-local 3x3 stride 2": (8, 16, (16, 16), 3, 2, 1),
    "s-local 9x9 stride 2": (3, 8, (32, 32), 9, 2, 4),
    "3x3 stride 2 no padding, non-square": (3, 5, (9, 12), 3, 2, 0),
    "even kernel, rows left over": (2, 3, (7, 6), 2, 3, 1),
}


@pytest.mark.parametrize("rows_per_block", [1, 2, 1000], ids=["one row per block", "two rows per block", "one block"])
@pytest.mark.parametrize("geometry", list(GEOMETRIES.values()), ids=list(GEOMETRIES))
def test_forward_and_all_gradients_match_unfold_reference(geometry, rows_per_block, monkeypatch):
    """Output and the gradients w.r.t. input, weight and bias equal the unfold reference (float32
    round-off), however the output rows are split into blocks (the last one possibly shorter)."""
    cin, cout, size, k, stride, padding = geometry
    torch.manual_seed(3)
    layer = LocallyConnected2d(cin, cout, size, k, stride, padding, bias=True)
    x = torch.randn(6, cin, *size, requires_grad=True)
    row_bytes = layer.output_size[1] * layer.weight.shape[1] * x.shape[0] * x.element_size()
    monkeypatch.setattr(layers, "_BLOCK_BYTES", rows_per_block * row_bytes)
    g = torch.randn(6, cout, *layer.output_size)
    out = layer(x)
    grads = torch.autograd.grad((out * g).sum(), (x, layer.weight, layer.bias))
    w, b = layer.weight.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_()
    ref = unfold_reference(x, w, b, layer)
    ref_grads = torch.autograd.grad((ref * g).sum(), (x, w, b))
    torch.testing.assert_close(out, ref)
    for got, expected in zip(grads, ref_grads):
        torch.testing.assert_close(got, expected)


def test_input_gradient_skipped_for_frozen_weight():
    layer = LocallyConnected2d(3, 4, (8, 6), 3, 1, 1, bias=False).requires_grad_(False)
    x = torch.randn(2, 3, 8, 6, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.autograd.grad(unfold_reference(x, layer.weight, None, layer).sum(), x)[0])


def test_autocast_computes_in_autocast_dtype_and_gradients_stay_float32():
    """As a convolution under autocast: bf16 compute and output, float32 parameter gradients."""
    torch.manual_seed(4)
    layer = LocallyConnected2d(4, 6, 8, 3, 1, 1)
    x = torch.randn(3, 4, 8, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert x.grad.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), layer(x), atol=0.05, rtol=0.02)


def test_state_dict_names_and_shapes_unchanged():
    """Committed weights load as they are: two parameters, (positions, in·k·k, out) and (out, H, W)."""
    layer = LocallyConnected2d(3, 5, 32, 9, 2, 4)
    state = {name: tuple(t.shape) for name, t in layer.state_dict().items()}
    assert state == {"weight": (256, 243, 5), "bias": (5, 16, 16)}
    LocallyConnected2d(3, 5, 32, 9, 2, 4).load_state_dict(layer.state_dict())


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


def test_runs_on_the_meta_device_for_shape_and_cost_estimates():
    # experiments/cost builds models on "meta" to count work without memory; autocast has no meta backend
    layer = LocallyConnected2d(3, 4, input_size=(8, 8), kernel_size=3, stride=1, padding=1, device="meta")
    out = layer(torch.empty(2, 3, 8, 8, device="meta"))
    assert out.shape == (2, 4, 8, 8) and out.device.type == "meta"
