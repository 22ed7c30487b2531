"""The permutation test's pixel permutation (Section 4.1): the fixed order of the pixels for a
seed, applied to batches by the trainer, and undone on learned first-layer filters so that they
can be drawn on the original image's grid (chapter 10)."""

from __future__ import annotations

import torch

from companion.checks import check_int


def pixel_order(seed: int, height: int, width: int) -> torch.Tensor:
    """The fixed pixel permutation of the permutation test (Section 4.1) for ``seed``: the
    permuted image's (flattened) pixel ``i`` is the original image's pixel ``order[i]``."""
    check_int("permute_pixels", seed, minimum=0)
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))


class PixelPermutation:
    """Move the H·W pixel positions of N×C×H×W batches by :func:`pixel_order` (all channels
    together). The trainer applies it after augmentation, so that flips and crops act on the
    image as photographed and the network only ever sees permuted images (Section 4.1)."""

    def __init__(self, seed: int, height: int, width: int, device: str | torch.device = "cpu"):
        self.seed, self.size = seed, (height, width)
        self.order = pixel_order(seed, height, width).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[2:]) != self.size:
            raise ValueError(f"pixel permutation {self.seed} is for N×C×{self.size[0]}×{self.size[1]} batches, "
                             f"got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        return x.reshape(n, c, h * w)[:, :, self.order].reshape(n, c, h, w)

    def __repr__(self) -> str:
        return f"PixelPermutation(seed={self.seed}, size={self.size})"


def permute(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Move the H·W pixel positions of N×C×H×W ``x`` by one permutation fixed by ``seed``."""
    return PixelPermutation(seed, x.shape[2], x.shape[3], x.device)(x)


def unpermute_filters(filters, seed: int) -> torch.Tensor:
    """First-layer filters ``(units, C, H, W)`` learned on images permuted by
    :func:`companion.data.datasets.permute` with ``seed``, drawn on the original image's grid.

    A weight at pixel ``i`` of the permuted grid multiplies the original pixel ``perm[i]``, so it
    moves there: the result ``u`` has ``⟨u, x⟩ = ⟨filter, permute(x)⟩`` for every image ``x`` —
    the inverse of ``permute`` applied to the filter as an image.
    """
    f = torch.as_tensor(filters)
    if f.dim() != 4:
        raise ValueError(f"filters must be units × C × H × W, got shape {tuple(f.shape)}")

    n, c, h, w = f.shape
    perm = pixel_order(seed, h, w).to(f.device)
    out = torch.empty_like(f).reshape(n, c, h * w)
    out[:, :, perm] = f.reshape(n, c, h * w)
    return out.reshape(n, c, h, w)
