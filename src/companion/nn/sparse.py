"""Sparse execution of what β-LASSO learns (Section 5, "Discussion and Future Work").

The paper notes that "the current implementation does not benefit from sparsity in terms of
memory or computation" although β-LASSO leaves most weights of S-FC exactly zero (Figure 3).
:func:`to_sparse` exports a trained, eval-mode fully-connected model (S-FC, D-FC, 3-FC: every
weight layer an ``nn.Linear``) to an inference-only :class:`SparseMLP` with the same predictions
whose weight layers only store and multiply their non-zeros.

Export, per ``nn.Linear``:

- an eval-mode ``BatchNorm1d`` right after it is folded in (exact up to rounding; it scales
  rows, so the zero pattern of W is kept):
  ``W' = diag(γ/√(var+ε))·W``, ``b' = β + γ·(b − mean)/√(var+ε)`` (b = 0 for the bias-free
  layers of Figure 1);
- the folded layer is stored in one of :data:`LAYOUTS` (:mod:`companion.nn.sparse_layout`):
  ``"auto"`` keeps it sparse (``"bag"``, ``embedding_bag`` over compressed rows) up to
  :data:`AUTO_MAX_DENSITY` and dense above.

Execution: activations run feature-major (features × batch), so that each non-zero weight reads
one contiguous batch row, in blocks of :data:`BATCH_BLOCK` samples so that a block's activations
stay in cache. With ``torch.get_num_threads()`` = T > 1 the blocks run on T threads side by side
(the caller's and T − 1 pool threads), each block on one thread with one intra-op thread, taken
in turn as each thread gets done (one fork and join per batch, instead of a parallel region in
every operation of every block; the input's transpose, which PyTorch copies on one thread, then
runs on all T; the logits are bitwise those of one thread).

Dense layers (``"dense"``, e.g. β=10's fc1 at 62 %) multiply through oneDNN where it runs
(:func:`companion.nn.sparse_layout.onednn_matmul`), reading the feature-major block in place.

Measured with ``benchmarks/bench_sparse_inference.py --profile cpu`` on the trained β-LASSO
S-FC α=8 of the cpu profile against the dense eval model (batch 512, medians of 21 interleaved
repeats, each timed call after a :data:`companion.nn.sparse_measure.SETTLE_S` pause and an
untimed call of the same network, i.e. in the steady state of a stream of batches; 2-core AMD
EPYC (Zen 5) VM, the training runs paused):

- β=10 (conv1 1.6 %, fc1 62 %, fc2 98 % non-zero; conv1 "bag"): 13.1–13.7× dense's speed
  on 2 threads (2.4–2.5 ms against 32–33 ms per batch), 15.5× on 1 thread (4.1 ms against 63 ms);
- β=50 (conv1 0.4 %, fc1 25 %, fc2 90 %; conv1 and fc1 "bag"): 18.1–19.1× and 23.3–23.5×;
- both: the same class on all 1,000 probe inputs, max |Δ logit| 3.1e-6 (β=10), 2.9e-6 (β=50).

Timed right after the idle pause instead (``--cold``, the protocol before), the two-thread calls
pay for waking the second core (:func:`companion.nn.sparse_measure.timed`): β=10 6.9× on
2 threads and 13.3× on 1, β=50 10.5× and 18.4×. With fc1 through ``addmm`` (MKL), β=10 had
run at 6.8× (2 threads) and 8.9× (1 thread) in that protocol. Part of the gain is the kernel,
not the sparsity: the dense network itself would run about 2.3× faster through oneDNN (29 ms
instead of 68 ms on 1 thread), against which β=10's export is about 7× faster.
β=10's one-thread time per batch of 512 is the input transpose (≈ 1.0 ms), conv1 ("bag",
≈ 1.3 ms), fc1 (≈ 1.6 ms) and the rest (≈ 0.3 ms).

Units whose weights are all zero (their ReLU output a constant, foldable into the
next bias) or that the next layer never reads could be dropped, but neither trained network has
any (0 of 2048 conv1 rows, 0 of 2048 fc1 columns), so the export does not look for them.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

import pandas as pd
import torch
from torch import nn

from companion.checks import check_int
from companion.nn.sparse_layout import AUTO_MAX_DENSITY, LAYOUTS, SparseLinear, choose_layout
from companion.nn.sparse_measure import agreement, inference_speed, timed

__all__ = [
    "AUTO_MAX_DENSITY", "BATCH_BLOCK", "LAYOUTS", "SparseLinear", "SparseMLP",
    "agreement", "density_report", "inference_speed", "memory_bytes", "timed", "to_sparse",
]

#: samples per block of the feature-major forward pass: a 3072 × 64 float32 input block (768 KiB)
#: stays in cache while every non-zero reads its row; 64-128 measured best of 32..256 (CPU time, one
#: thread), and 64 leaves a batch of 512 eight blocks to share between threads
BATCH_BLOCK = 64

#: module types the export understands; dropout is the identity in eval mode
_SUPPORTED = (nn.Sequential, nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Identity)


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


# --------------------------------------------------------------------------- execution
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:
    """In a forked child, which has none of the parent's threads: start afresh."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="companion-sparse")
        return _POOLS[workers]


def _drain(run: Callable[[int, int], None], blocks: Iterator[tuple[int, int]], lock: threading.Lock) -> None:
    """``run(start, stop)`` for the next block of ``blocks`` until none is left, with one intra-op
    thread (OpenMP and MKL keep the count per thread)."""
    torch.set_num_threads(1)
    with torch.inference_mode():
        while True:
            with lock:
                block = next(blocks, None)
            if block is None:
                return
            run(*block)


def _run_blocks(run: Callable[[int, int], None], blocks: list[tuple[int, int]], threads: int) -> None:
    """``run(start, stop)`` for every block, on the calling thread and ``threads - 1`` pool threads
    side by side, each taking the next block when it is done with one (so a thread slowed by other
    work takes fewer). ``torch.set_num_threads`` also sets the count new threads start with, so the
    caller's count is set again at the end."""
    before = torch.get_num_threads()
    todo, lock = iter(blocks), threading.Lock()
    try:
        futures = [_pool(threads - 1).submit(_drain, run, todo, lock) for _ in range(threads - 1)]
        try:
            _drain(run, todo, lock)
        finally:
            wait(futures)
        for f in futures:
            f.result()  # re-raises a worker's error
    finally:
        torch.set_num_threads(before)


class SparseMLP(nn.Module):
    """Inference-only export of a fully-connected network (made by :func:`to_sparse`, Section 5).

    Takes what the original model took (N × C × H × W if it began with ``nn.Flatten``, else
    N × features) and returns its N × classes logits; internally runs feature-major in blocks of
    ``batch_block`` samples, split over ``torch.get_num_threads()`` threads (see the module
    docstring); a network without a sparse layer runs in one block with intra-op threads.
    """

    def __init__(self, stages: list[nn.Module], *, flatten: bool, in_features: int,
                 batch_block: int = BATCH_BLOCK):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.flatten, self.in_features, self.batch_block = flatten, in_features, batch_block
        self.out_features = self.layers()[-1].out_features
        self.sparse = any(s.layout != "dense" for s in self.layers())

    def layers(self) -> list[SparseLinear]:
        return [s for s in self.stages if isinstance(s, SparseLinear)]

    def train(self, mode: bool = True):
        if mode:
            raise ValueError("SparseMLP is inference-only (batch-norm is folded in); it has no training mode")
        return super().train(False)

    def _block(self, x: torch.Tensor, out: torch.Tensor, start: int, stop: int) -> None:
        """Logits of samples ``start:stop`` of ``x`` into ``out``."""
        h = x[start:stop].t().contiguous()  # features × block
        for stage in self.stages:
            h = stage.forward(h)  # the stages have no hooks: skip Module.__call__
        out[start:stop].copy_(h.t())

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"expected input of {self.in_features} features per sample "
                             f"(after flatten), got shape {tuple(x.shape)}")
        n = len(x)
        out = x.new_empty(n, self.out_features)
        # blocks help sparse layers (cache) but cost dense GEMMs efficiency: no sparse layer, one block
        block = self.batch_block if self.sparse else max(1, n)
        blocks = [(i, min(i + block, n)) for i in range(0, n, block)]
        threads = min(torch.get_num_threads(), len(blocks))
        if threads > 1:
            _run_blocks(functools.partial(self._block, x, out), blocks, threads)
        else:  # one thread, or one block on the caller's intra-op threads
            with torch.inference_mode():
                for start, stop in blocks:
                    self._block(x, out, start, stop)
        return out


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


def _checked_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaves of ``model`` (:func:`_leaves`), or ``ValueError`` for anything :func:`to_sparse`
    cannot export exactly: not an ``nn.Sequential``, an unsupported layer, training mode, no
    ``nn.Linear``, a partial ``nn.Flatten``."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"to_sparse: expected an nn.Sequential fully-connected model (s-fc, d-fc, 3-fc), "
                         f"got {type(model).__name__}")
    leaves = list(_leaves(model))  # raises on unsupported layers
    if any(m.training for m in [model, *(m for _, m in leaves)]):
        raise ValueError("to_sparse: the model is in training mode (batch-norm would use batch statistics "
                         "and dropout would be active); call model.eval() first")
    if not any(isinstance(m, nn.Linear) for _, m in leaves):
        raise ValueError("to_sparse: the model has no nn.Linear layer to export")
    for name, m in leaves:
        if isinstance(m, nn.Flatten) and (m.start_dim, m.end_dim) != (1, -1):
            raise ValueError(f"to_sparse: {name!r} flattens dims {m.start_dim}..{m.end_dim}; only "
                             "nn.Flatten() (start_dim=1, end_dim=-1) is supported")
    return leaves


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


def _folded_ops(leaves: list[tuple[str, nn.Module]]) -> tuple[list[list], bool]:
    """The leaves as a flat list of ops, ``["linear", name, W, b]`` (copies, with an eval
    batch-norm right after the Linear folded in), ``["affine", scale, shift]`` (any other
    batch-norm) or ``["relu"]``; and whether the input is flattened first."""
    ops: list[list] = []
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
    return ops, flatten


@torch.no_grad()
def to_sparse(model: nn.Module, *, layout: str = "auto", max_density: float = AUTO_MAX_DENSITY,
              batch_block: int = BATCH_BLOCK) -> SparseMLP:
    """Export an eval-mode fully-connected ``model`` to a :class:`SparseMLP` with the same logits
    (Section 5's future work: execution that benefits from β-LASSO's sparsity).

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
    leaves = _checked_leaves(model)
    ops, flatten = _folded_ops(leaves)
    stages: list[nn.Module] = []
    for op in ops:
        if op[0] == "linear":
            _, name, w, b = op
            density = int(torch.count_nonzero(w)) / max(1, w.numel())
            stages.append(SparseLinear(w, b, choose_layout(layout, density, max_density), name=name))
        else:
            stages.append(_Affine(op[1], op[2]) if op[0] == "affine" else _ReLU())
    first = next(m for _, m in leaves if isinstance(m, nn.Linear))
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
