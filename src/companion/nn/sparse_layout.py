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
``"dense"``  the folded dense matrix: ``W h`` by oneDNN (:func:`onednn_matmul`) where it runs
             (float32, x86-64 PyTorch builds), else ``torch.addmm``;
``"auto"``   per layer (:func:`choose_layout`): ``"bag"`` if its density is at most
             ``max_density`` (:data:`AUTO_MAX_DENSITY`), else ``"dense"``.

Measured with ``benchmarks/bench_sparse_inference.py`` part 1 (2-core AMD EPYC shared with
training runs; CPU time of one thread, 512 samples in blocks of 64 as
:class:`companion.nn.sparse.SparseMLP` runs them, on both S-FC α=8 shapes, 3072 → 2048 and
2048 → 192), against ``"dense"`` through oneDNN: ``"bag"`` takes 0.26–0.33× dense's time at 10 %,
0.50–0.52× at 20 %, 0.66× at 25 %, 0.72–0.90× at 30 %, 0.91–1.26× at 35 % and 1.16–1.58× at 40 %
(against dense through ``addmm`` it was 0.54–0.72× at 40 % and 0.9–1.0× at 50 %); ``"csr"``
2–3× as long as ``"bag"``, ``"coo"`` 10× and more. MKL's CSR product straight on the
batch-major input (no transpose) took 1.3–2× as long as transpose + ``"bag"`` on the trained
first layers. A padded "gather the used columns,
multiply, sum" layout (index tensor out × max_nnz) was 6–50× slower than dense and is not offered.

``"dense"`` and oneDNN: PyTorch's ``addmm`` calls MKL, whose float32 GEMM ran at less than half
oneDNN's speed on the AMD CPU (Zen 5, AVX-512) of these measurements (presumably a code path
without AVX-512 for a non-Intel CPU). ``W h`` of S-FC α=8's fc1 (192 × 2048
times 2048 × 64) took 0.21 ms through oneDNN against 0.48 ms through ``addmm`` (one thread), with
the feature-major ``h`` read in place (oneDNN's linear of input ``W`` and weight ``hᵀ``, a view).
The dense reference network itself (``nn.Linear`` s, i.e. MKL) would be about 2.3× faster through
oneDNN too; ``benchmarks/bench_sparse_inference.py`` compares against the dense network as
PyTorch runs it.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AUTO_MAX_DENSITY", "LAYOUTS", "SparseLinear", "choose_layout", "onednn_matmul"]

LAYOUTS = ("auto", "bag", "csr", "coo", "dense")
#: "auto" uses the sparse ("bag") layout up to this density (non-zeros / weights) and dense above:
#: in blocks of 64 samples "bag" took 0.72-0.90x the time of dense (through oneDNN) at 30 % and
#: 0.91-1.26x at 35 % (benchmarks/bench_sparse_inference.py, part 1; it was 0.40 while dense ran
#: through addmm, 0.25 when "bag" ran on whole batches)
AUTO_MAX_DENSITY = 0.30


def choose_layout(layout: str, density: float, max_density: float = AUTO_MAX_DENSITY) -> str:
    """``layout`` itself, or for ``"auto"`` the faster one at ``density``: ``"bag"`` up to
    ``max_density``, else ``"dense"``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if layout != "auto":
        return layout
    return "bag" if density <= max_density else "dense"


@functools.cache
def _onednn_ok() -> bool:
    """Whether :func:`onednn_matmul` runs here and gives ``W h`` (probed once on a tiny product)."""
    try:
        w, h = torch.arange(6.0).reshape(2, 3), torch.arange(12.0).reshape(3, 4)
        return bool(torch.equal(torch.ops.mkldnn._linear_pointwise(w, h.t(), None, "none", [], ""), w @ h))
    except (AttributeError, RuntimeError, NotImplementedError):  # no oneDNN in this build / on this CPU
        return False


def onednn_matmul(weight: torch.Tensor, h: torch.Tensor) -> torch.Tensor | None:
    """``weight @ h`` for float32 feature-major ``h`` through oneDNN's linear (input ``weight``,
    weight ``hᵀ``, read in place), or ``None`` where that is unavailable (then use ``addmm``)."""
    if weight.dtype != torch.float32 or h.dtype != torch.float32 or weight.device.type != "cpu" or not _onednn_ok():
        return None
    return torch.ops.mkldnn._linear_pointwise(weight, h.t(), None, "none", [], "")


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
            y = onednn_matmul(self.weight, h)
            return torch.addmm(self.bias, self.weight, h) if y is None else y.add_(self.bias)
        return torch.sparse.addmm(self.bias, self.weight, h)

    def extra_repr(self) -> str:
        return (f"{self.name!r}, in_features={self.in_features}, out_features={self.out_features}, "
                f"layout={self.layout!r}, density={self.density:.4f}")
