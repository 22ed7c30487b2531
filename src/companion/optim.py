"""β-LASSO (Algorithm 1) and the paper's parameter groups (Section 4.1, Appendix A.2).

This module depends on nothing but ``torch``, so it can be copied into other projects.

Algorithm 1, for every parameter tensor θ with gradient ∇f, learning rate η, ℓ1 coefficient λ and
threshold coefficient β::

    θ ← θ − η (∇f(θ) + λ sign(θ))        # ℓ1 sub-gradient step, sign(0) = 0
    θ ← θ · 1[|θ| ≥ β λ]                 # hard threshold: small weights become exactly 0

β = 0 is plain ℓ1 sub-gradient descent ("LASSO"); λ = 0 is plain SGD (no momentum) and thresholds
nothing, because |θ| ≥ 0 always holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from numbers import Real

import torch
from torch import nn

__all__ = ["BetaLasso", "lasso_param_groups"]

# Elements per batch of work on CPU. Algorithm 1 needs four elementwise kernels (sign, gradient
# step, ℓ1 step, threshold) where SGD needs one; running them on cache-sized pieces keeps the
# extra passes in the CPU cache, so main-memory traffic stays SGD's (read θ, read ∇f, write θ).
# On 30M parameters this takes ~1.9x SGD's step time against ~5-8x for whole tensors
# (benchmarks/bench_beta_lasso.py); 2^19..2^20 elements measured best, the larger one is less
# hurt when other processes compete for the cores (fewer parallel regions). On accelerators the
# whole group is one batch of foreach kernels.
_CPU_BATCH_NUMEL = 1 << 20


def _check_hyperparameter(name: str, value) -> float:
    """Return ``value`` as a float if it is a real number >= 0; raise ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (Real, torch.Tensor)):
        raise ValueError(f"BetaLasso: {name} must be a real number >= 0, got {value!r}")
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise ValueError(f"BetaLasso: {name} must be a real number >= 0, got a tensor of shape "
                         f"{tuple(value.shape)}")
    number = float(value)
    if math.isnan(number) or number < 0:
        raise ValueError(f"BetaLasso: {name} must be a real number >= 0, got {value!r}")
    return number


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


class BetaLasso(torch.optim.Optimizer):
    """β-LASSO, Algorithm 1 of the paper: an ℓ1 sub-gradient step followed by hard thresholding.

    Per step and per parameter θ with gradient ∇f::

        θ ← θ − lr·(∇f + lam·sign(θ))    then    θ ← θ·1[|θ| ≥ beta·lam]

    No momentum and no per-parameter state (Appendix A.2: "we did not use momentum, set β = 50").
    ``lam`` and ``beta`` (and ``lr``) can be overridden per parameter group, e.g. the groups
    returned by :func:`lasso_param_groups`. ``beta=0`` gives plain ℓ1 sub-gradient descent
    ("β-LASSO (β = 0)" in Table 2); ``lam=0`` gives plain SGD. Parameters without a gradient are
    skipped. Works on CPU and accelerators, for any real floating dtype (mixed dtypes allowed).

    Args:
        params: parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
        lr: learning rate η, >= 0 (Appendix A.2: 0.1 with cosine annealing).
        lam: ℓ1 coefficient λ, >= 0 (Appendix A.2 tries 1e-6 ... 2e-5).
        beta: threshold coefficient β, >= 0 (Appendix A.2: 50).
    """

    def __init__(self, params, lr: float = 0.1, lam: float = 1e-6, beta: float = 50.0):
        defaults = {
            "lr": _check_hyperparameter("lr", lr),
            "lam": _check_hyperparameter("lam", lam),
            "beta": _check_hyperparameter("beta", beta),
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group after checking its overrides of lr/lam/beta and its parameters' dtypes."""
        if not isinstance(param_group, dict):
            raise ValueError(f"BetaLasso: a parameter group must be a dict, "
                             f"got {type(param_group).__name__}")
        where = f" (group {param_group['name']!r})" if "name" in param_group else ""
        for key in ("lr", "lam", "beta"):
            if key in param_group:
                param_group[key] = _check_hyperparameter(key + where, param_group[key])
        params = param_group.get("params")
        if isinstance(params, torch.Tensor):
            tensors = [params]
        elif isinstance(params, (set, type(None))):
            tensors = []  # the base class rejects these with its own message
        else:
            tensors = param_group["params"] = list(params)  # a generator is read only once
        for p in tensors:
            p = p[1] if isinstance(p, tuple) else p  # named parameters: (name, tensor)
            if isinstance(p, torch.Tensor) and not p.is_floating_point():
                raise ValueError(f"BetaLasso{where}: parameters must be real floating-point "
                                 f"tensors, got dtype {p.dtype}")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        """Perform one step of Algorithm 1 on every parameter that has a gradient.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # Check everything first, so that bad input fails before any parameter changes.
        work = []
        for group in self.param_groups:
            where = f" (group {group['name']!r})" if "name" in group else ""
            lr = _check_hyperparameter("lr" + where, group["lr"])
            lam = _check_hyperparameter("lam" + where, group["lam"])
            beta = _check_hyperparameter("beta" + where, group["beta"])
            buckets: dict[tuple[torch.device, torch.dtype], tuple[list, list]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise ValueError(f"BetaLasso{where}: sparse gradients are not supported "
                                     f"(parameter of shape {tuple(p.shape)}); only dense "
                                     f"gradients are accepted")
                ps, gs = buckets.setdefault((p.device, p.dtype), ([], []))
                ps.append(p)
                gs.append(p.grad)
            work.extend((ps, gs, lr, lam, beta) for ps, gs in buckets.values())

        for ps, gs, lr, lam, beta in work:
            _beta_lasso_(ps, gs, lr=lr, lam=lam, beta=beta)
        return loss


def _default_regularize(name: str, param: torch.Tensor) -> bool:
    """Weights of conv / locally-connected / linear layers: named ``weight`` and ndim >= 2."""
    return name.rsplit(".", 1)[-1] == "weight" and param.ndim >= 2


def lasso_param_groups(
    model: nn.Module,
    lam: float,
    lam_first: float | None = None,
    *,
    first: Iterable[str] | str | None = None,
    regularize: Callable[[str, torch.Tensor], bool] | None = None,
    beta: float | None = None,
) -> list[dict]:
    """Parameter groups for :class:`BetaLasso` as in Section 4.1 and Appendix A.2.

    The paper tunes one λ for the layers that correspond to the convolutions and another for the
    other layers ("having higher λ for the layer that corresponds to the convolution improves the
    performance"). This returns up to three groups, each with a ``"name"`` key; empty groups are
    left out:

    - ``"first"``: regularised parameters of the modules named in ``first``, with ``lam=lam_first``;
    - ``"other"``: all other regularised parameters, with ``lam=lam``;
    - ``"unregularized"``: every remaining parameter, with ``lam=0`` (plain SGD, never thresholded).

    Which parameters are regularised: by default those named ``weight`` with ``ndim >= 2``, i.e.
    the weights of conv, locally-connected and linear layers. Biases (including a locally-connected
    layer's position-wise bias) and batch-norm parameters are not. To change this, pass
    ``regularize=lambda name, param: ...`` (``name`` as in ``model.named_parameters()``); e.g.
    ``regularize=lambda name, p: True`` regularises everything.

    Args:
        model: the network.
        lam: λ for the regularised parameters outside ``first``.
        lam_first: λ for the regularised parameters of the ``first`` modules; default ``lam``.
        first: module names (as in ``model.named_modules()``; a parameter belongs to a module if
            its name starts with the module's name and a dot); default
            ``getattr(model, "conv_positions", ())``, the layers where the CONV network has its
            convolutions. A single string is one name.
        regularize: predicate ``(name, param) -> bool`` choosing the regularised parameters.
        beta: if given, sets β in the ``"first"`` and ``"other"`` groups; otherwise the optimizer's
            default applies.

    Raises:
        ValueError: a name in ``first`` is not a module of ``model``, or lam/lam_first/beta < 0.
    """
    lam = _check_hyperparameter("lam", lam)
    lam_first = lam if lam_first is None else _check_hyperparameter("lam_first", lam_first)
    if beta is not None:
        beta = _check_hyperparameter("beta", beta)
    if first is None:
        first = getattr(model, "conv_positions", ())
    first = (first,) if isinstance(first, str) else tuple(first)
    if regularize is None:
        regularize = _default_regularize

    module_names = {name for name, _ in model.named_modules()}
    unknown = [name for name in first if name not in module_names]
    if unknown:
        known = sorted(n for n in module_names if n)
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise ValueError(f"lasso_param_groups: first names {unknown} are not modules of the "
                         f"model; accepted: names from model.named_modules(), e.g. {shown}")

    def in_first(name: str) -> bool:
        return any(m == "" or name.startswith(m + ".") for m in first)

    members: dict[str, list[torch.Tensor]] = {"first": [], "other": [], "unregularized": []}
    for name, param in model.named_parameters():
        if not regularize(name, param):
            members["unregularized"].append(param)
        elif in_first(name):
            members["first"].append(param)
        else:
            members["other"].append(param)

    lams = {"first": lam_first, "other": lam, "unregularized": 0.0}
    groups = []
    for key, params in members.items():
        if not params:
            continue
        group = {"name": key, "params": params, "lam": lams[key]}
        if beta is not None and key != "unregularized":
            group["beta"] = beta
        groups.append(group)
    return groups
