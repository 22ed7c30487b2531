"""Sparse execution of what β-LASSO learns (Section 5, "Discussion and Future Work").

The paper notes that "the current implementation does not benefit from sparsity in terms of
memory or computation" although β-LASSO leaves most weights of S-FC exactly zero (Figure 3).
:func:`to_sparse` exports a trained, eval-mode fully-connected model (S-FC, D-FC, 3-FC: every
weight layer an ``nn.Linear``) to an inference-only module with the same predictions whose
weight layers only store and multiply their non-zeros.

Export, per ``nn.Linear``:

- an eval-mode ``BatchNorm1d`` right after it is folded in (exact up to rounding; it scales
  rows, so the zero pattern of W is kept):
  ``W' = diag(γ/√(var+ε))·W``, ``b' = β + γ·(b − mean)/√(var+ε)`` (b = 0 for the bias-free
  layers of Figure 1);
- the folded layer is stored in one of :data:`LAYOUTS`:

  ``"bag"``    CSR arrays (row offsets, column indices as int32, values) run by
               ``F.embedding_bag(mode="sum", per_sample_weights=...)``: output unit o sums
               ``w[o, j] · h[j, :]`` over its non-zero columns j, a whole batch row at a time;
  ``"csr"``    ``torch.sparse_csr`` tensor, ``torch.sparse.addmm``;
  ``"coo"``    ``torch.sparse_coo`` tensor, ``torch.sparse.addmm``;
  ``"dense"``  the folded dense matrix, ``torch.addmm``;
  ``"auto"``   per layer: ``"bag"`` if its density is at most ``max_density``
               (:data:`AUTO_MAX_DENSITY`), else ``"dense"``.

Activations run feature-major (features × batch) inside the exported module, so that each
non-zero weight reads one contiguous batch row, and the batch is processed in blocks of
:data:`BATCH_BLOCK` samples so that the input block stays in cache.

Measured with ``benchmarks/bench_sparse_inference.py`` (shared 2-core CPU; S-FC α=8, batch 512):
on the first layer (3072 → 2048) ``"bag"`` is the fastest layout at every density up to 25 %
(1 thread: 0.05× dense's time at 1 %, 0.17× at 5 %, 0.31× at 10 %, 0.85× at 25 %); ``"csr"`` and
``"coo"`` take 1.5–2× as long as ``"bag"``; dense GEMM wins from ~30 %. A padded "gather the used
columns, multiply, sum" layout (index tensor out × max_nnz) was 6–50× slower than dense and is
not offered. Whole S-FC (fc1 at twice conv1's density, fc2 dense), quiet machine, batch 512:
1 thread 19× dense's images/s at 1 %, 6.6× at 5 %, 3.5× at 10 %; 2 threads 5.5×, 7.0×, 4.1× (the
blocked sparse forward has many short parallel regions; ``batch_block=len(batch)`` is better at
the lowest densities with 2 threads). The trained β-LASSO S-FC of the cpu profile (conv1 2.5 %,
fc1 72 %, fc2 99 % non-zero): 6.9× (1 thread), 4.9× (2 threads), 9.3× less memory.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings
from collections.abc import Callable, Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from companion.checks import check_int

__all__ = [
    "AUTO_MAX_DENSITY", "BATCH_BLOCK", "LAYOUTS", "SparseLinear", "SparseMLP",
    "agreement", "density_report", "inference_speed", "memory_bytes", "timed", "to_sparse",
]

LAYOUTS = ("auto", "bag", "csr", "coo", "dense")
#: "auto" uses the sparse ("bag") layout up to this density (non-zeros / weights) and dense above;
#: "bag" took 0.85-1.0x dense's time at 25 % and more above (benchmarks/bench_sparse_inference.py).
AUTO_MAX_DENSITY = 0.25
#: samples per block of the feature-major forward pass: a 3072 × 64 float32 input block (768 KiB)
#: stays in cache while every non-zero reads its row; 64 measured best of 32..1024 (1 thread)
BATCH_BLOCK = 64

#: module types the export understands; dropout is the identity in eval mode
_SUPPORTED = (nn.Sequential, nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Identity)


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

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.layout == "bag":
            y = F.embedding_bag(self.columns, h, self.offsets, mode="sum",
                                per_sample_weights=self.values, include_last_offset=True)
            return y.add_(self.bias)
        if self.layout == "dense":
            return torch.addmm(self.bias, self.weight, h)
        return torch.sparse.addmm(self.bias, self.weight, h)

    def extra_repr(self) -> str:
        density = self.nonzeros / max(1, self.out_features * self.in_features)
        return (f"{self.name!r}, in_features={self.in_features}, out_features={self.out_features}, "
                f"layout={self.layout!r}, density={density:.4f}")


class _Affine(nn.Module):
    """A batch-norm that could not be folded (no Linear right before it): ``h·scale + shift``."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.reshape(-1, 1).clone())
        self.register_buffer("shift", shift.reshape(-1, 1).clone())

    def forward(self, h):
        return torch.addcmul(self.shift, h, self.scale)


class _ReLU(nn.Module):
    def forward(self, h):
        return h.relu_()


class SparseMLP(nn.Module):
    """Inference-only export of a fully-connected network (made by :func:`to_sparse`).

    Takes what the original model took (N × C × H × W if it began with ``nn.Flatten``, else
    N × features) and returns its N × classes logits; internally runs feature-major in blocks of
    ``batch_block`` samples (in one block if no layer is sparse).
    """

    def __init__(self, stages: list[nn.Module], *, flatten: bool, in_features: int,
                 batch_block: int = BATCH_BLOCK):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.flatten, self.in_features, self.batch_block = flatten, in_features, batch_block

    def layers(self) -> list[SparseLinear]:
        return [s for s in self.stages if isinstance(s, SparseLinear)]

    def train(self, mode: bool = True):
        if mode:
            raise ValueError("SparseMLP is inference-only (batch-norm is folded in); it has no training mode")
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of {self.in_features} features per sample "
                             f"(after flatten), got shape {tuple(x.shape)}")
        # blocks help sparse layers (cache) but cost dense GEMMs efficiency: no sparse layer, one block
        block = self.batch_block if any(s.layout != "dense" for s in self.layers()) else max(1, len(x))
        out = []
        for start in range(0, x.shape[0], block):
            h = x[start:start + block].t().contiguous()  # features × block
            for stage in self.stages:
                h = stage(h)
            out.append(h.t())
        if not out:  # empty batch
            return x.new_empty(0, self.layers()[-1].out_features)
        return torch.cat(out) if len(out) > 1 else out[0].contiguous()


# --------------------------------------------------------------------------- export
def _leaves(model: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """(qualified name, module) of the leaves of nested ``nn.Sequential`` s, in execution order."""
    for name, child in model.named_children():
        qualified = f"{prefix}{name}"
        if not isinstance(child, _SUPPORTED):
            raise ValueError(
                f"to_sparse: unsupported layer {qualified!r} ({type(child).__name__}); accepted: "
                f"fully-connected models (s-fc, d-fc, 3-fc) built from nested nn.Sequential of "
                f"{', '.join(t.__name__ for t in _SUPPORTED[1:])}"
            )
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, qualified + ".")
        else:
            yield qualified, child


def _bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval batch-norm as ``y = x·scale + shift`` (Ioffe & Szegedy 2015)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("to_sparse: batch-norm without running statistics (track_running_stats=False) "
                         "normalises with batch statistics and cannot be folded")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def _choose(layout: str, density: float, max_density: float) -> str:
    if layout != "auto":
        return layout
    return "bag" if density <= max_density else "dense"


@torch.no_grad()
def to_sparse(model: nn.Module, *, layout: str = "auto", max_density: float = AUTO_MAX_DENSITY,
              batch_block: int = BATCH_BLOCK) -> SparseMLP:
    """Export an eval-mode fully-connected ``model`` to a :class:`SparseMLP` with the same logits.

    ``layout``: one of :data:`LAYOUTS` for every ``nn.Linear``; ``"auto"`` picks ``"bag"`` for
    layers of density <= ``max_density`` and ``"dense"`` otherwise. Eval-mode batch-norm right
    after a Linear is folded into it. Raises ``ValueError`` (before any work) for a model in
    training mode, a layer that is not ``nn.Linear`` / ``BatchNorm1d`` / ``ReLU`` / ``Dropout`` /
    ``Flatten`` inside ``nn.Sequential`` s (e.g. S-CONV, S-LOCAL, ResNet18), or a bad layout.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"to_sparse: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not 0.0 <= float(max_density) <= 1.0:
        raise ValueError(f"to_sparse: max_density must be in [0, 1], got {max_density!r}")
    check_int("to_sparse: batch_block", batch_block, minimum=1)
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"to_sparse: expected an nn.Sequential fully-connected model (s-fc, d-fc, 3-fc), "
                         f"got {type(model).__name__}")
    leaves = list(_leaves(model))  # raises on unsupported layers
    training = [name for name, m in [("", model), *leaves] if m.training]
    if training:
        raise ValueError("to_sparse: the model is in training mode (batch-norm would use batch statistics "
                         "and dropout would be active); call model.eval() first")
    linears = [(n, m) for n, m in leaves if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("to_sparse: the model has no nn.Linear layer to export")
    for name, m in leaves:
        if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
            raise ValueError(f"to_sparse: {name!r} flattens dims {m.start_dim}..{m.end_dim}; only "
                             "nn.Flatten() (start_dim=1, end_dim=-1) is supported")

    # 1) a flat list of ops with batch-norm folded into the Linear right before it
    ops: list[list] = []  # ["linear", name, W, b] | ["affine", scale, shift] | ["relu"]
    flatten = False
    for name, m in leaves:
        if isinstance(m, nn.Flatten):
            if any(op[0] == "linear" for op in ops):
                continue  # a no-op on the N × features activations after the first Linear
            flatten = True
        elif isinstance(m, nn.Linear):
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features, dtype=m.weight.dtype,
                                                                   device=m.weight.device)
            ops.append(["linear", name, m.weight.detach().clone(), bias.detach().clone()])
        elif isinstance(m, nn.BatchNorm1d):
            scale, shift = _bn_scale_shift(m)
            if ops and ops[-1][0] == "linear":
                _, _, w, b = ops[-1]
                ops[-1][2] = w * scale[:, None]  # scales rows: the zero pattern of W is kept
                ops[-1][3] = b * scale + shift
            else:
                ops.append(["affine", scale, shift])
        elif isinstance(m, nn.ReLU):
            ops.append(["relu"])
        # Dropout / Identity: identity in eval mode

    # 2) the stages
    stages: list[nn.Module] = []
    for op in ops:
        if op[0] == "linear":
            _, name, w, b = op
            density = int(torch.count_nonzero(w)) / w.numel()
            stages.append(SparseLinear(w, b, _choose(layout, density, max_density), name=name))
        elif op[0] == "affine":
            stages.append(_Affine(op[1], op[2]))
        else:
            stages.append(_ReLU())
    first = linears[0][1]
    return SparseMLP(stages, flatten=flatten, in_features=first.in_features, batch_block=batch_block).eval()


# --------------------------------------------------------------------------- reports
def density_report(model: nn.Module) -> pd.DataFrame:
    """Non-zero weights per weight layer (Figure 3): columns layer, params, nonzeros, density.

    For a dense model: its ``paper_layers`` if it has them, else every module with a weight of
    ndim >= 2, in order; ``params`` counts the weight tensor (not biases or batch-norm). For a
    :class:`SparseMLP`: its exported (folded) layers.
    """
    rows = []
    if isinstance(model, SparseMLP):
        for layer in model.layers():
            rows.append((layer.name, layer.out_features * layer.in_features, layer.nonzeros))
    else:
        modules = dict(model.named_modules())
        names = getattr(model, "paper_layers", None) or [
            n for n, m in modules.items()
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2
        ]
        for name in names:
            weight = modules[name].weight
            rows.append((name, weight.numel(), int(torch.count_nonzero(weight))))
    df = pd.DataFrame(rows, columns=["layer", "params", "nonzeros"])
    df["density"] = df["nonzeros"] / df["params"]
    return df


def _tensor_bytes(t: torch.Tensor) -> int:
    if t.layout == torch.sparse_coo:
        return _tensor_bytes(t._indices()) + _tensor_bytes(t._values())
    if t.layout == torch.sparse_csr:
        return sum(_tensor_bytes(x) for x in (t.crow_indices(), t.col_indices(), t.values()))
    return t.numel() * t.element_size()


def memory_bytes(module: nn.Module) -> int:
    """Bytes of all parameters and buffers of ``module`` (values and, for sparse layouts, their
    index arrays); a tensor shared by several modules counts once."""
    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += _tensor_bytes(t)
    return total


# --------------------------------------------------------------------------- measurements
def timed(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each variant: one warm-up call each, then ``repeats`` rounds
    that call every variant once, in an order rotated each round (so that a burst of load on a
    shared machine falls on all variants alike)."""
    check_int("repeats", repeats, minimum=1)
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:
        variants[n]()
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            variants[n]()
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def inference_speed(model: nn.Module, sparse: SparseMLP, x: torch.Tensor, *, threads: int,
                    repeats: int = 5) -> dict[str, float]:
    """Images per second of the dense eval ``model`` and its export ``sparse`` on the batch ``x``
    with ``threads`` CPU threads, measured side by side (:func:`timed`); ``speedup`` is their
    ratio (the number to quote: absolute rates drift on a shared machine)."""
    check_int("threads", threads, minimum=1)
    with _threads(threads):
        t = timed({"dense": lambda: model(x), "sparse": lambda: sparse(x)}, repeats)
    n = len(x)
    return {"threads": threads, "batch": n, "dense_images_per_s": n / t["dense"],
            "sparse_images_per_s": n / t["sparse"], "speedup": t["dense"] / t["sparse"]}


@torch.no_grad()
def agreement(model: nn.Module, sparse: SparseMLP, x: torch.Tensor, *, batch: int = 1000) -> dict[str, float]:
    """How far the export's predictions are from the dense model's on images ``x``: the number of
    images whose predicted class is the same, and the largest absolute logit difference."""
    same, diff = 0, 0.0
    for start in range(0, len(x), batch):
        a, b = model(x[start:start + batch]), sparse(x[start:start + batch])
        same += int((a.argmax(1) == b.argmax(1)).sum())
        diff = max(diff, float((a - b).abs().max()))
    return {"images": len(x), "same_prediction": same, "max_logit_diff": diff}
