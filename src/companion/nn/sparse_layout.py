"""How one exported weight layer is stored and multiplied (Section 5, "Discussion and Future Work").

β-LASSO leaves most weights of S-FC exactly zero (Figure 3), yet the paper notes that "the
current implementation does not benefit from sparsity in terms of memory or computation". A
:class:`SparseLinear` stores one (batch-norm-folded) ``nn.Linear`` of such a network in one of
:data:`LAYOUTS` and multiplies feature-major activations (features × batch), so that each
non-zero weight reads one contiguous row of the batch:

``"bag"``    CSR arrays (row offsets, column indices as int32, values) run by
             ``F.embedding_bag(mode="sum", per_sample_weights=...)``: output unit o sums
             ``w[o, j] · h[j, :]`` over its non-zero columns j, a whole batch row at a time;
``"csr"``    ``torch.sparse_csr`` tensor, ``torch.sparse.addmm``;
``"coo"``    ``torch.sparse_coo`` tensor, ``torch.sparse.addmm``;
``"dense"``  the folded dense matrix, ``torch.addmm``;
``"auto"``   per layer (:func:`choose_layout`): ``"bag"`` if its density is at most
             ``max_density`` (:data:`AUTO_MAX_DENSITY`), else ``"dense"``.

Measured with ``benchmarks/bench_sparse_inference.py`` part 1 (2-core AMD EPYC shared with
training runs; CPU time of one thread, 512 samples in blocks of 64 as
:class:`companion.nn.sparse.SparseMLP` runs them, on both S-FC α=8 shapes, 3072 → 2048 and
2048 → 192): ``"bag"`` takes 0.06–0.13× dense's time at 5 %, 0.27–0.34× at 25 %, 0.54–0.72× at
40 %, 0.9–1.0× at 50 % and 1.2–1.5× at 60 %; ``"csr"`` 2.5–3× as long as ``"bag"``, ``"coo"``
10× and more. MKL's CSR product straight on the batch-major input (no transpose) took 1.3–2× as
long as transpose + ``"bag"`` on the trained first layers. A padded "gather the used columns,
multiply, sum" layout (index tensor out × max_nnz) was 6–50× slower than dense and is not offered.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AUTO_MAX_DENSITY", "LAYOUTS", "SparseLinear", "choose_layout"]

LAYOUTS = ("auto", "bag", "csr", "coo", "dense")
#: "auto" uses the sparse ("bag") layout up to this density (non-zeros / weights) and dense above:
#: in blocks of 64 samples "bag" took 0.54-0.72x dense's time at 40 % and 0.9-1.0x at 50 %
#: (benchmarks/bench_sparse_inference.py, part 1; it was 0.25 when "bag" ran on whole batches)
AUTO_MAX_DENSITY = 0.40


def choose_layout(layout: str, density: float, max_density: float = AUTO_MAX_DENSITY) -> str:
    """``layout`` itself, or for ``"auto"`` the faster one at ``density``: ``"bag"`` up to
    ``max_density``, else ``"dense"``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout != "auto":
        return layout
    return "bag" if density <= max_density else "dense"


class SparseLinear(nn.Module):
    """``y = W h + b`` on feature-major activations ``h`` (in_features × batch), W stored in
    ``layout`` (``"bag"``, ``"csr"``, ``"coo"`` or ``"dense"``; see the module docstring)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, layout: str, name: str = ""):
        super().__init__()
        if layout not in LAYOUTS[1:]:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS[1:])}, got {layout!r}")
        weight = weight.detach()
        if weight.dim() != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"SparseLinear: expected a 2-D weight and a bias of its out_features, got "
                             f"{tuple(weight.shape)} and {tuple(bias.shape)}")
        self.name, self.layout = name, layout
        self.out_features, self.in_features = weight.shape
        self.nonzeros = int(torch.count_nonzero(weight))
        self.register_buffer("bias", bias.detach().reshape(-1, 1).clone())  # broadcast over the batch
        if layout == "dense":
            self.register_buffer("weight", weight.clone())
        elif layout == "coo":
            self.register_buffer("weight", weight.to_sparse_coo().coalesce())
        else:
            with warnings.catch_warnings():  # "sparse CSR tensor support is in beta state"
                warnings.simplefilter("ignore", UserWarning)
                csr = weight.to_sparse_csr()
                crow, col = csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32)
                if layout == "csr":
                    csr = torch.sparse_csr_tensor(crow, col, csr.values(), weight.shape, check_invariants=True)
            if layout == "csr":
                self.register_buffer("weight", csr)
            else:  # bag: embedding_bag wants (indices, offsets) of one dtype; int32 halves their size
                self.register_buffer("offsets", crow)
                self.register_buffer("columns", col)
                self.register_buffer("values", csr.values().clone())

    @property
    def density(self) -> float:
        """Non-zero weights / weights."""
        return self.nonzeros / max(1, self.out_features * self.in_features)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.layout == "bag":
            y = F.embedding_bag(self.columns, h, self.offsets, mode="sum",
                                per_sample_weights=self.values, include_last_offset=True)
            return y.add_(self.bias)
        if self.layout == "dense":
            return torch.addmm(self.bias, self.weight, h)
        return torch.sparse.addmm(self.bias, self.weight, h)

    def extra_repr(self) -> str:
        return (f"{self.name!r}, in_features={self.in_features}, out_features={self.out_features}, "
                f"layout={self.layout!r}, density={self.density:.4f}")
