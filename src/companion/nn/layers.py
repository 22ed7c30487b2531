"""Layers the paper needs beyond ``torch.nn``: the locally connected layer (Section 2).

A locally connected layer has the connectivity of a convolution (each output unit sees a
``k × k`` window of the input) but no weight sharing: every output position has its own filter.
It is the "LOCAL" in D-LOCAL / S-LOCAL (Table 1; architectures in Tables 3 and 4).
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


#: Output rows go through :class:`_LocalMatmul` in blocks whose im2col columns take at most this
#: many bytes (or one row): small enough to stay in cache and never be a fresh ``mmap`` (page
#: faults) every step, large enough to keep the per-block operations few.
_BLOCK_BYTES = 2**22


def _batch_last(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...)`` → ``(..., N)`` contiguous, as one 2-D transpose (a blocked copy in PyTorch;
    a general permute of the same tensor is 3-5× slower on the CPU)."""
    return x.reshape(x.shape[0], -1).t().contiguous().view(*x.shape[1:], x.shape[0])


def _batch_first(x: torch.Tensor) -> torch.Tensor:
    """``(..., N)`` → ``(N, ...)`` contiguous, the inverse of :func:`_batch_last`."""
    return x.reshape(-1, x.shape[-1]).t().contiguous().view(x.shape[-1], *x.shape[:-1])


def _row_blocks(xt: torch.Tensor, kernel_size: int, stride: int) -> list[tuple[int, int, int]]:
    """``(first row, end row, positions per row)`` of the output-row blocks for :func:`_columns`."""
    c, hp, wp, n = xt.shape
    ho, wo = (hp - kernel_size) // stride + 1, (wp - kernel_size) // stride + 1
    row_bytes = wo * c * kernel_size**2 * n * xt.element_size()
    rows = max(1, _BLOCK_BYTES // row_bytes)
    return [(y, min(y + rows, ho), wo) for y in range(0, ho, rows)]


def _columns(xt: torch.Tensor, kernel_size: int, stride: int, rows: range) -> torch.Tensor:
    """im2col of output rows ``rows`` as ``(positions, in·k·k, N)``, K ordered (c, i, j).

    ``xt`` is the padded input laid out ``(C, Hp, Wp, N)``: every window element is a run of
    ``N`` contiguous values, so the copy is a plain strided memcpy.
    """
    k, s = kernel_size, stride
    band = xt[:, rows.start * s : (rows.stop - 1) * s + k]
    windows = band.unfold(1, k, s).unfold(2, k, s)  # C, rows, Wo, N, k, k
    c, _, _, n = windows.shape[:4]
    return windows.permute(1, 2, 0, 4, 5, 3).reshape(-1, c * k * k, n)


def _fold_rows(grad_xt, grad_cols, kernel_size, stride, rows: range) -> None:
    """Add the adjoint of :func:`_columns` (col2im) of ``grad_cols`` into ``grad_xt`` in place.

    One shifted, strided add per kernel offset (k² of them); ``F.fold`` is an order of
    magnitude slower on the CPU.
    """
    k, s = kernel_size, stride
    c, n = grad_xt.shape[0], grad_xt.shape[-1]
    pieces = grad_cols.view(len(rows), -1, c, k, k, n).permute(2, 3, 4, 0, 1, 5)  # C,k,k,rows,Wo,N
    wo = pieces.shape[4]
    for i in range(k):
        for j in range(k):
            y = rows.start * s + i
            grad_xt[:, y : y + s * (len(rows) - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s].add_(pieces[:, i, j])


class _LocalMatmul(torch.autograd.Function):
    """Blocked im2col + batched matmuls over output positions, with batch-innermost columns.

    Every position's product is ``(N × K) @ (K × out)`` with the columns stored ``(K, N)``
    (MKL runs that 3× faster than with ``(N, K)`` rows). The columns are built a block of output
    rows at a time (:data:`_BLOCK_BYTES`) and rebuilt in the backward pass instead of saved, so
    the layer keeps no ``k²``-times-the-input tensor. Every change of layout is a 2-D transpose.
    Returns ``(N, out, positions)``, contiguous.
    """

    @staticmethod
    def forward(ctx, x, weight, kernel_size, stride, padding):
        xt = _batch_last(F.pad(x, (padding,) * 4))  # C, Hp, Wp, N
        out = x.new_empty(weight.shape[0], x.shape[0], weight.shape[-1])  # L, N, O
        for y0, y1, wo in _row_blocks(xt, kernel_size, stride):
            cols = _columns(xt, kernel_size, stride, range(y0, y1))
            torch.bmm(cols.transpose(1, 2), weight[y0 * wo : y1 * wo], out=out[y0 * wo : y1 * wo])
        ctx.save_for_backward(xt, weight)
        ctx.geometry = (kernel_size, stride, padding)
        return out.view(out.shape[0], -1).t().contiguous().view(x.shape[0], weight.shape[-1], -1)

    @staticmethod
    def backward(ctx, grad_out):
        xt, weight = ctx.saved_tensors
        kernel_size, stride, padding = ctx.geometry
        positions, n = weight.shape[0], xt.shape[-1]
        grad = grad_out.reshape(-1, positions).t().contiguous().view(positions, n, -1)  # L, N, O
        grad_w = torch.empty_like(weight) if ctx.needs_input_grad[1] else None
        grad_xt = torch.zeros_like(xt) if ctx.needs_input_grad[0] else None
        for y0, y1, wo in _row_blocks(xt, kernel_size, stride):
            block = slice(y0 * wo, y1 * wo)
            if grad_w is not None:
                torch.bmm(_columns(xt, kernel_size, stride, range(y0, y1)), grad[block], out=grad_w[block])
            if grad_xt is not None:
                grad_cols = torch.bmm(weight[block], grad[block].transpose(1, 2))  # positions, K, N
                _fold_rows(grad_xt, grad_cols, kernel_size, stride, range(y0, y1))
        if grad_xt is not None:  # drop the padding, back to (N, C, H, W)
            p = padding
            grad_xt = _batch_first(grad_xt[:, p : grad_xt.shape[1] - p, p : grad_xt.shape[2] - p])
        return grad_xt, grad_w, None, None, None


class LocallyConnected2d(nn.Module):
    """A convolution without weight sharing (the LOCAL layers of Tables 3 and 4).

    ``out[b, o, y, x] = bias[o, y, x] + Σ_{c,i,j} weight[(y, x), (c, i, j), o] · xpad[b, c, s·y+i, s·x+j]``

    The weight is stored as ``(positions, in_channels·k·k, out_channels)``: for each output
    position one dense ``K × out`` matrix, with ``K`` ordered like ``F.unfold`` (channel, row,
    column). The forward pass is an im2col (the one a convolution does) and a batched matrix
    multiply over positions, block of output rows by block (:class:`_LocalMatmul`), so no
    ``batch × out × in × positions × k²`` tensor is ever built; the backward pass is two batched
    matrix multiplies (the input gradient, and its col2im, only when the input needs one). Under
    autocast the input and weight are cast to autocast's dtype, as a convolution's would be. Use
    :meth:`filters` for the ``(out, in, k, k, H_out, W_out)`` view.
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
        weight, bias = self.weight, self.bias
        kind = x.device.type  # autocast exists for some device types only (not "meta")
        if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
            dtype = torch.get_autocast_dtype(kind)  # compute in the dtype a convolution would
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        out = _LocalMatmul.apply(x, weight, self.kernel_size, self.stride, self.padding)
        out = out.reshape(x.shape[0], self.out_channels, *self.output_size)
        return out if bias is None else out + bias

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
