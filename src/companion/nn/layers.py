"""Layers the paper needs beyond ``torch.nn``: the locally connected layer (Section 2).

A locally connected layer has the connectivity of a convolution (each output unit sees a
``k × k`` window of the input) but no weight sharing: every output position has its own filter.
It is the "LOCAL" in D-LOCAL / S-LOCAL (Tables 3 and 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from companion.checks import check_int


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution-shaped layer (floor division, as ``nn.Conv2d``)."""
    return (size + 2 * padding - kernel_size) // stride + 1


class _LocalMatmul(torch.autograd.Function):
    """unfold + one batched matmul over output positions, with contiguous operands.

    ``torch.bmm`` on CPU copies every non-contiguous batch entry one by one; laying the columns
    out once as ``(positions, N, K)`` and the output gradient as ``(positions, N, out)`` keeps
    every multiply a single BLAS call. Returns ``(N, out, positions)``.
    """

    @staticmethod
    def forward(ctx, x, weight, kernel_size, stride, padding):
        # im2col straight into the (L, N, K) layout: one strided copy, K ordered (c, i, j)
        xp = F.pad(x, (padding,) * 4) if padding else x
        windows = xp.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)  # N,C,Ho,Wo,k,k
        n, c, ho, wo = windows.shape[:4]
        cols = windows.permute(2, 3, 0, 1, 4, 5).reshape(ho * wo, n, c * kernel_size**2)
        out = torch.bmm(cols, weight)  # L, N, O
        ctx.save_for_backward(cols, weight)
        ctx.geometry = (x.shape[-2:], kernel_size, stride, padding)
        return out.permute(1, 2, 0)

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight = ctx.saved_tensors
        grad = grad_out.permute(2, 0, 1).contiguous()  # L, N, O
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(cols.transpose(1, 2), grad)  # L, K, O
        if ctx.needs_input_grad[0]:
            size, kernel_size, stride, padding = ctx.geometry
            grad_cols = torch.bmm(grad, weight.transpose(1, 2))  # L, N, K
            grad_x = F.fold(grad_cols.permute(1, 2, 0), size, kernel_size, padding=padding, stride=stride)
        return grad_x, grad_w, None, None, None


class LocallyConnected2d(nn.Module):
    """A convolution without weight sharing (the LOCAL layers of Tables 3 and 4).

    ``out[b, o, y, x] = bias[o, y, x] + Σ_{c,i,j} weight[(y, x), (c, i, j), o] · xpad[b, c, s·y+i, s·x+j]``

    The weight is stored as ``(positions, in_channels·k·k, out_channels)``: for each output
    position one dense ``K × out`` matrix, with ``K`` ordered like ``F.unfold`` (channel, row,
    column). The forward pass is one ``F.unfold`` (the same im2col a convolution does) followed by
    one batched matrix multiply over positions, so no ``batch × out × in × positions × k²``
    tensor is ever built, and the backward pass is two batched matrix multiplies (the input
    gradient only when the input needs one). Use :meth:`filters` for the
    ``(out, in, k, k, H_out, W_out)`` view.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        input_size: int | tuple[int, int],
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        device=None,
        dtype=None,
    ):
        super().__init__()
        h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        for label, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                  ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                  ("input_size", h, 1), ("input_size", w, 1), ("padding", padding, 0)):
            check_int(f"LocallyConnected2d: {label}", value, minimum=low)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size = (h, w)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_size = (
            conv_output_size(h, kernel_size, stride, padding),
            conv_output_size(w, kernel_size, stride, padding),
        )
        if min(self.output_size) < 1:
            raise ValueError(
                f"LocallyConnected2d: a {kernel_size}x{kernel_size} window with padding {padding} "
                f"does not fit an input of size {h}x{w}"
            )
        positions = self.output_size[0] * self.output_size[1]
        fan_in = in_channels * kernel_size * kernel_size
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(positions, fan_in, out_channels, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Same distribution as ``nn.Conv2d``'s default (Kaiming-uniform with a = √5)."""
        if self.weight.is_meta:
            return
        fan_in = self.weight.shape[1]
        bound = 1.0 / math.sqrt(fan_in)
        # kaiming_uniform_(a=sqrt(5)) on a conv weight is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (self.in_channels, *self.input_size):
            raise ValueError(
                f"LocallyConnected2d expects input of shape (N, {self.in_channels}, "
                f"{self.input_size[0]}, {self.input_size[1]}), got {tuple(x.shape)}"
            )
        out = _LocalMatmul.apply(x, self.weight, self.kernel_size, self.stride, self.padding)
        out = out.reshape(x.shape[0], self.out_channels, *self.output_size)
        if self.bias is not None:
            out = out + self.bias
        return out

    @torch.no_grad()
    def filters(self) -> torch.Tensor:
        """Weights as ``(out, in, k, k, H_out, W_out)``: the filter at every output position."""
        k = self.kernel_size
        w = self.weight.reshape(*self.output_size, self.in_channels, k, k, self.out_channels)
        return w.permute(5, 2, 3, 4, 0, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"bias={self.bias is not None}"
        )
