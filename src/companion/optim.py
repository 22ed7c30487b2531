"""β-LASSO (Algorithm 1) and the paper's parameter groups (Section 4.1, Appendix A.2).

This module depends on nothing but ``torch``, so it can be copied into other projects.

Algorithm 1, for every parameter tensor θ with gradient ∇f, learning rate η, ℓ1 coefficient λ and
threshold coefficient β::

    θ ← θ − η (∇f(θ) + λ sign(θ))        # ℓ1 sub-gradient step, sign(0) = 0
    θ ← θ · 1[|θ| ≥ β λ]                 # hard threshold: small weights become exactly 0

β = 0 is plain ℓ1 sub-gradient descent ("LASSO"); λ = 0 is plain SGD (no momentum) and thresholds
nothing, because |θ| ≥ 0 always holds.

:func:`beta_lasso_step_reference` is Algorithm 1 as written (the tests' oracle);
:class:`BetaLasso` is the optimizer to train with. Its two modes compute the same numbers:

- ``fused=False`` (default): eager kernels, θ + (−η)∇f as one FMA (as ``torch.optim.SGD``),
  then the ℓ1 term and the threshold; the update that trained the committed results.
- ``fused=True``: the same arithmetic as one ``torch.compile``d pass per tensor (reads θ and ∇f,
  writes θ: SGD's memory traffic), after a one-off compile of seconds to a minute. Bit-identical
  to the default in float32 and float64 where the compiler contracts the FMA (x86-64 with FMA:
  :func:`fused_matches_exact` checks it); 16-bit parameters may differ by a rounding.

Both differ from the reference by rounding only: at most 2 units in the last place of the larger
of |θ| and |η∇f| over 12 M updates measured (``tests/test_optim.py``), so a weight within that
distance of βλ can be thresholded differently.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator
from numbers import Real

import torch
from torch import nn

__all__ = ["BetaLasso", "beta_lasso_step_reference", "fused_matches_exact", "lasso_param_groups"]


@torch.no_grad()
def beta_lasso_step_reference(params: Iterable[torch.Tensor], lr: float, lam: float,
                              beta: float) -> None:
    """One step of Algorithm 1, line by line, on every tensor in ``params`` that has a ``.grad``.

    The plain statement of the algorithm, kept as the oracle for :class:`BetaLasso` (slow: five
    passes over memory per tensor). Scalars are rounded to the parameters' dtype, as PyTorch does.
    """
    for theta in params:
        if theta.grad is not None:
            theta -= lr * (theta.grad + lam * torch.sign(theta))  # line 2, sign(θ_{t-1})
            theta *= theta.abs() >= beta * lam  # line 3


def _check_hyperparameter(name: str, value) -> float:
    """``value`` (a real number, or a one-element tensor) as a float >= 0; one ValueError otherwise."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool:
            raise ValueError(f"BetaLasso: {name} must be a number >= 0, got a tensor of shape "
                             f"{tuple(value.shape)} and dtype {value.dtype}")
        value = value.item()
    elif isinstance(value, Real) and not isinstance(value, bool):
        value = float(value)  # NumPy scalars included
    # the rule of companion.checks.check_number(low=0), written out so that this module needs only torch
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value or value < 0:
        raise ValueError(f"BetaLasso: {name} must be a number >= 0, got {value!r}")
    return float(value)


def _keep_above(threshold: float, dtype: torch.dtype) -> float:
    """The largest ``dtype`` value ``k`` such that, for every ``dtype`` number x, ``|x| > k`` holds
    exactly when ``|x| >= threshold`` (> 0): ``torch.hardshrink(x, k)`` is then line 3 of Algorithm 1
    (keep |θ| >= βλ) in one pass, rounding-free, for any floating dtype."""
    t = torch.tensor(threshold, dtype=torch.float64).to(dtype)  # round to nearest
    if t.item() < threshold:  # round up: smallest dtype value >= threshold
        t = torch.nextafter(t, torch.tensor(math.inf, dtype=dtype))
    return torch.nextafter(t, torch.zeros((), dtype=dtype)).item()


# Exact mode (fused=False): four elementwise kernels where SGD needs one. On CPU they run on
# cache-sized batches of elements (2^20 measured best), so the extra passes stay in the cache and
# main-memory traffic stays SGD's: ~1.9x SGD's step against ~5-8x for whole tensors
# (benchmarks/bench_beta_lasso.py). On accelerators the group is one batch of foreach kernels.
_CPU_BATCH_NUMEL = 1 << 20


def _batches(params: list[torch.Tensor], grads: list[torch.Tensor],
             max_numel: int | None) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Split matching (param, grad) lists into batches of at most ``max_numel`` elements (None: one
    batch). Larger tensors are cut into flat views when both the parameter and its gradient are
    contiguous (so the views line up element for element); others stay whole."""
    if max_numel is None:
        yield params, grads
        return
    batch_p, batch_g, size = [], [], 0
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
    """One in-place step of Algorithm 1 on tensors that share one device and dtype: θ ← (θ − η∇f)
    − ηλ·sign(θ_old), then the threshold; the gradient part is ``torch.optim.SGD``'s, bit for bit."""
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


def _fused_update_(theta: torch.Tensor, grad: torch.Tensor, neg_lr: torch.Tensor,
                   neg_lr_lam: torch.Tensor, keep_above: torch.Tensor) -> None:
    """Lines 2 and 3 of Algorithm 1 on one flat tensor, to compile into one pass: the exact mode's
    arithmetic in its order, θ + (−η)∇f (one rounding where the compiler contracts it into an FMA,
    as SGD's kernel does), plus (−ηλ)·sign(θ_old), then ``|θ| > keep_above`` (< 0: no threshold)."""
    new = (theta + grad * neg_lr).to(theta.dtype)
    new = (new + torch.sign(theta) * neg_lr_lam).to(theta.dtype)
    theta.copy_(torch.where(new.abs() <= keep_above, 0.0, new))  # like hardshrink: NaN is kept


#: C++ compiler flags of the fused pass on CPU: contract a·b + c into an FMA, as ATen's kernels do
_CPP_OPTIONS = {"cpp.enable_floating_point_contract_flag": "fast"}


@functools.cache
def _compiled_update() -> Callable[..., None]:
    """``_fused_update_`` compiled on first use, per device and dtype. ``dynamic=True`` makes the
    length a symbol, so one compilation serves every shape. CPU: one vectorised C++ loop;
    CUDA: one Triton kernel (not tested here: no GPU)."""
    return torch.compile(_fused_update_, dynamic=True, fullgraph=True, options=_CPP_OPTIONS)


def _flat_alias(t: torch.Tensor) -> torch.Tensor:
    """A 1-D tensor on the memory of contiguous ``t`` that is not a view: the compiled function
    then guards on its length only, not on the shape of a view's base (one compilation)."""
    flat = torch.empty(0, dtype=t.dtype, device=t.device)
    return flat.set_(t.untyped_storage(), t.storage_offset(), (t.numel(),), (1,))


@torch.no_grad()
def _beta_lasso_fused_(params: list[torch.Tensor], grads: list[torch.Tensor], *,
                       lr: float, lam: float, beta: float) -> None:
    """Fused mode of :func:`_beta_lasso_` (same arguments): one compiled pass per tensor, so the
    parameters stay ordinary tensors (no flat buffer whose views would have to stay valid).
    Non-contiguous tensors and ``lam == 0`` groups (SGD) take the exact path."""
    if lam == 0.0:
        _beta_lasso_(params, grads, lr=lr, lam=lam, beta=beta)
        return
    dtype, device = params[0].dtype, params[0].device
    threshold = beta * lam
    keep_above = _keep_above(threshold, dtype) if threshold > 0 else -1.0
    # 0-d tensors, not Python floats, so a new learning rate each step does not recompile. Rounded
    # to the dtype PyTorch computes in (float32 for 16-bit parameters), as the exact mode's alphas.
    scalar_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    scalars = [torch.tensor(v, dtype=scalar_dtype, device=device) for v in (-lr, -lr * lam, keep_above)]
    update = _compiled_update()
    rest_p, rest_g = [], []
    for p, g in zip(params, grads):
        if p.is_contiguous() and g.is_contiguous():
            update(_flat_alias(p), _flat_alias(g), *scalars)
        else:
            rest_p.append(p)
            rest_g.append(g)
    if rest_p:
        _beta_lasso_(rest_p, rest_g, lr=lr, lam=lam, beta=beta)


@functools.cache
def fused_matches_exact(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``BetaLasso(fused=True)`` updates bit for bit like the exact mode on this machine,
    ``device`` and ``dtype``: checked once (compiling the fused pass) on 65,537 probe weights, a
    third of them within a few ulp of the threshold. True where the compiler contracts θ + (−η)∇f
    into one FMA as the exact mode's kernel does (x86-64 CPUs with FMA, measured). A fused pass
    that cannot be compiled here raises, as the first ``step()`` would."""
    gen = torch.Generator().manual_seed(0)
    lr, lam, beta = 0.1, 1e-3, 10.0
    theta = torch.randn(65_537, generator=gen, dtype=torch.float64) * 0.05
    theta[::3] = (beta * lam + lr * lam) * (1 + 1e-6 * torch.randn(21_846, generator=gen, dtype=torch.float64))
    theta[::7] = 0.0
    grad = torch.randn(65_537, generator=gen, dtype=torch.float64) * 1e-6
    theta, grad = theta.to(device, dtype), grad.to(device, dtype)
    exact, fused = theta.clone(), theta.clone()
    _beta_lasso_([exact], [grad], lr=lr, lam=lam, beta=beta)
    _beta_lasso_fused_([fused], [grad], lr=lr, lam=lam, beta=beta)
    return torch.equal(exact, fused)


class BetaLasso(torch.optim.Optimizer):
    """β-LASSO, Algorithm 1 of the paper: an ℓ1 sub-gradient step followed by hard thresholding.

    Per step and per parameter θ with gradient ∇f::

        θ ← θ − lr·(∇f + lam·sign(θ))    then    θ ← θ·1[|θ| ≥ beta·lam]

    No momentum and no per-parameter state (Appendix A.2: "we did not use momentum, set β = 50").
    ``lam`` and ``beta`` (and ``lr``) can be overridden per parameter group, e.g. the groups
    returned by :func:`lasso_param_groups`. ``beta=0`` gives plain ℓ1 sub-gradient descent
    ("β-LASSO (β = 0)" in Table 2); ``lam=0`` gives plain SGD. Parameters without a gradient are
    skipped. Works on CPU and accelerators, for any real floating dtype (mixed dtypes allowed).

    ``fused`` picks the implementation, not the numbers (module docstring): ``True`` is one
    compiled pass per tensor, about SGD's step time; ``False`` (default) needs no compiler. The
    mode is not part of ``state_dict()``; parameters are never replaced or re-laid out.

    Args:
        params: parameters or parameter groups (dicts), as for any ``torch.optim.Optimizer``.
        lr: learning rate η, >= 0 (Appendix A.2: 0.1 with cosine annealing).
        lam: ℓ1 coefficient λ, >= 0 (Appendix A.2 tries 1e-6 ... 2e-5).
        beta: threshold coefficient β, >= 0 (Appendix A.2: 50).
        fused: ``True`` for one compiled pass per tensor, ``False`` (default) for eager kernels.
    """

    def __init__(self, params, lr: float = 0.1, lam: float = 1e-6, beta: float = 50.0, *,
                 fused: bool = False):
        if not isinstance(fused, bool):
            raise ValueError(f"BetaLasso: fused must be True or False, got {fused!r}")
        self.fused = fused
        defaults = {
            "lr": _check_hyperparameter("lr", lr),
            "lam": _check_hyperparameter("lam", lam),
            "beta": _check_hyperparameter("beta", beta),
        }
        super().__init__(params, defaults)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "fused": self.fused}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("fused", False)  # pickled before the switch existed

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
        """One step of Algorithm 1 on every parameter that has a gradient (``closure``: optional
        callable that re-evaluates the model and returns the loss)."""
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

        update = _beta_lasso_fused_ if self.fused else _beta_lasso_
        for ps, gs, lr, lam, beta in work:
            update(ps, gs, lr=lr, lam=lam, beta=beta)
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
    rest ("having higher λ for the layer that corresponds to the convolution improves the
    performance"). Returns up to three named groups (empty ones left out): ``"first"``, the
    regularised parameters of the modules in ``first`` (``lam=lam_first``); ``"other"``, the
    other regularised parameters (``lam=lam``); ``"unregularized"``, the rest (``lam=0``: plain
    SGD, never thresholded). Regularised by default: parameters named ``weight`` with ``ndim >= 2``
    (conv, locally-connected and linear weights; not biases or batch norm); change it with
    ``regularize=lambda name, param: ...`` (``name`` as in ``model.named_parameters()``).

    Args:
        model: the network.
        lam: λ for the regularised parameters outside ``first``.
        lam_first: λ for the regularised parameters of the ``first`` modules; default ``lam``.
        first: module names (as in ``model.named_modules()``; a single string is one name);
            default ``getattr(model, "conv_positions", ())``, where the CONV network convolves.
        regularize: predicate ``(name, param) -> bool`` choosing the regularised parameters.
        beta: if given, sets β in the ``"first"`` and ``"other"`` groups.

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
