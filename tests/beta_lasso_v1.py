"""A frozen copy of BetaLasso's update as it was when the committed results were trained.

Copied verbatim from ``src/companion/optim.py`` at commit 2baedd5 (``_CPU_BATCH_NUMEL``,
``_keep_above``, ``_batches``, ``_beta_lasso_``). ``tests/test_optim.py`` checks that the default
``BetaLasso`` (``fused=False``) still gives bit-identical results, so training runs stay
reproducible. Do not edit; if the default update must change on purpose, say so in the commit and
re-run the committed experiments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

# Elements per batch of work on CPU. Algorithm 1 needs four elementwise kernels (sign, gradient
# step, ℓ1 step, threshold) where SGD needs one; running them on cache-sized pieces keeps the
# extra passes in the CPU cache, so main-memory traffic stays SGD's (read θ, read ∇f, write θ).
# On 30M parameters this takes ~1.9x SGD's step time against ~5-8x for whole tensors
# (benchmarks/bench_beta_lasso.py); 2^19..2^20 elements measured best, the larger one is less
# hurt when other processes compete for the cores (fewer parallel regions). On accelerators the
# whole group is one batch of foreach kernels.
_CPU_BATCH_NUMEL = 1 << 20


def _keep_above(threshold: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value ``k`` such that, for every ``dtype`` number x,
    ``|x| > k`` holds exactly when ``|x| >= threshold`` (threshold is a real number > 0).

    ``torch.hardshrink(x, k)`` keeps x where |x| > k, so with this ``k`` it implements line 3 of
    Algorithm 1 (keep |θ| >= βλ) in a single pass, rounding-free, for any floating dtype.
    """
    t = torch.tensor(threshold, dtype=torch.float64).to(dtype)  # round to nearest
    if t.item() < threshold:  # round up: smallest dtype value >= threshold
        t = torch.nextafter(t, torch.tensor(math.inf, dtype=dtype))
    return torch.nextafter(t, torch.zeros((), dtype=dtype)).item()


def _batches(params: list[torch.Tensor], grads: list[torch.Tensor],
             max_numel: int | None) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Split matching (param, grad) lists into batches of at most ``max_numel`` elements.

    Tensors larger than ``max_numel`` are cut into flat views when both the parameter and its
    gradient are contiguous (so the views line up element for element); others stay whole.
    ``max_numel=None`` yields everything as one batch.
    """
    if max_numel is None:
        yield params, grads
        return
    batch_p: list[torch.Tensor] = []
    batch_g: list[torch.Tensor] = []
    size = 0
    for p, g in zip(params, grads):
        if p.numel() > max_numel and p.is_contiguous() and g.is_contiguous():
            pieces = zip(p.view(-1).split(max_numel), g.view(-1).split(max_numel))
        else:
            pieces = ((p, g),)
        for piece_p, piece_g in pieces:
            if size and size + piece_p.numel() > max_numel:
                yield batch_p, batch_g
                batch_p, batch_g, size = [], [], 0
            batch_p.append(piece_p)
            batch_g.append(piece_g)
            size += piece_p.numel()
    if batch_p:
        yield batch_p, batch_g


@torch.no_grad()
def _beta_lasso_(params: list[torch.Tensor], grads: list[torch.Tensor], *,
                 lr: float, lam: float, beta: float) -> None:
    """One in-place step of Algorithm 1 on tensors that share one device and dtype.

    Computed as θ ← (θ − η∇f) − ηλ·sign(θ_old), then hard-thresholded: the gradient part is
    bit-identical to ``torch.optim.SGD`` (``_foreach_add_`` with ``alpha=-lr``).
    """
    if lam == 0.0:  # plain SGD; |θ| >= 0 keeps every weight
        torch._foreach_add_(params, grads, alpha=-lr)
        return
    threshold = beta * lam
    keep_above = _keep_above(threshold, params[0].dtype) if threshold > 0 else None
    max_numel = _CPU_BATCH_NUMEL if params[0].device.type == "cpu" else None
    scratch = params[0].new_empty(0)
    for batch_p, batch_g in _batches(params, grads, max_numel):
        # sign(θ_{t-1}), sign(0) = 0. On CPU into one reused buffer: allocating it afresh per
        # batch costs page faults that can dominate the step.
        if max_numel is not None:
            size = sum(p.numel() for p in batch_p)
            if scratch.numel() < size:
                scratch = params[0].new_empty(size)
            signs, offset = [], 0
            for p in batch_p:
                out = scratch[offset:offset + p.numel()].view(p.shape)
                signs.append(torch.sign(p, out=out))
                offset += p.numel()
        else:
            signs = torch._foreach_sign(batch_p)
        torch._foreach_add_(batch_p, batch_g, alpha=-lr)  # Algorithm 1, line 2 ...
        torch._foreach_add_(batch_p, signs, alpha=-lr * lam)  # ... and its ℓ1 term
        if keep_above is not None:  # line 3: keep |θ| >= βλ
            for p in batch_p:
                torch.hardshrink(p, keep_above, out=p)
