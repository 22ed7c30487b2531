"""The pieces of one training step and of evaluation (Appendix A.2), shared by the loop of a run
(:mod:`companion.train.loop`) and the benchmarks: the optimizer (SGD or β-LASSO), the backward
pass and step (through fp16's ``GradScaler`` when there is one), the seeded random streams, what
the network sees of a batch, and predictions / accuracy on a split."""

from __future__ import annotations

import hashlib
import os
import warnings

import torch

from companion.config import TrainConfig
from companion.data.augment import normalize
from companion.optim import BetaLasso, fused_matches_exact, lasso_param_groups
from companion.train.device import autocast

#: images per forward pass when evaluating
EVAL_BATCH = 1024


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None) -> None:
    """Backward pass and one optimizer step, through the fp16 ``GradScaler`` when there is one
    (it skips the step if the scaled gradients overflowed). Gradients are reset first."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """A 63-bit seed for one random stream (``order``/``augment``/``dropout``) of one epoch."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


#: environment variable that overrides how β-LASSO steps: ``auto`` (default), ``fused`` or ``exact``
STEP_ENV = "COMPANION_BETA_LASSO_STEP"
STEP_CHOICES = ("auto", "fused", "exact")

#: On CPU the fused β-LASSO step (one compiled pass, :class:`~companion.optim.BetaLasso`) is used
#: once a run makes at least this many parameter updates (parameters × steps): it saves about
#: 0.3-1 ns per update on a 2-core CPU (``benchmarks/bench_beta_lasso.py``) against a one-off
#: compile of 5-60 s (less from torch's on-disk cache). The cpu profile's S-FC α=8 runs make
#: 6.3e10 updates in 120 epochs; smoke runs and tests stay on the exact mode and compile nothing.
FUSED_MIN_UPDATES = 5e10


def beta_lasso_mode(device: torch.device, updates: float) -> dict:
    """How a run's β-LASSO steps (recorded in its summary; not part of its run id):
    ``{"mode": "fused" | "exact", "matches_exact": bool}``.

    ``auto``: fused on accelerators; on CPU fused for runs of at least :data:`FUSED_MIN_UPDATES`
    updates where the fused pass is bit-identical to the exact one
    (:func:`~companion.optim.fused_matches_exact`), so no result depends on the mode; exact
    otherwise, and wherever the fused pass cannot be compiled (with a warning).
    ``$COMPANION_BETA_LASSO_STEP`` = ``fused`` / ``exact`` forces a mode.
    """
    choice = os.environ.get(STEP_ENV, "auto")
    if choice not in STEP_CHOICES:
        raise ValueError(f"${STEP_ENV}={choice!r} is not a β-LASSO step mode; accepted: {', '.join(STEP_CHOICES)}")
    exact = {"mode": "exact", "matches_exact": True}
    if choice == "exact" or (choice == "auto" and device.type == "cpu" and updates < FUSED_MIN_UPDATES):
        return exact
    try:
        matches = fused_matches_exact(device)
    except Exception as error:  # noqa: BLE001 - no compiler / backend here: the exact mode works everywhere
        if choice == "fused":
            raise
        warnings.warn(f"β-LASSO: the fused step cannot be compiled here ({type(error).__name__}: {error}); "
                      "using the exact mode", RuntimeWarning, stacklevel=2)
        return exact
    if choice == "auto" and device.type == "cpu" and not matches:
        return exact
    return {"mode": "fused", "matches_exact": matches}


def make_optimizer(config: TrainConfig, model: torch.nn.Module, *, device: torch.device | None = None,
                   steps: int = 0) -> tuple[torch.optim.Optimizer, dict | None]:
    """SGD (momentum, weight decay) or β-LASSO (Algorithm 1; ``lam_first`` on conv positions), and
    how β-LASSO steps over the run's ``steps`` (:func:`beta_lasso_mode`; None for SGD)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        ), None

    groups = lasso_param_groups(model, config.lam, config.lam_first)
    device = device if device is not None else next(model.parameters()).device
    mode = beta_lasso_mode(device, steps * sum(p.numel() for p in model.parameters()))
    return BetaLasso(groups, lr=config.lr, lam=config.lam, beta=config.beta, fused=mode["mode"] == "fused"), mode


@torch.no_grad()
def predict(model, split, dataset: str, device: torch.device, precision: str, permutation=None) -> torch.Tensor:
    """Predicted classes of every image of a split, on ``device`` (eval mode, no augmentation;
    ``permutation``: the run's :class:`~companion.data.permutation.PixelPermutation`, or None); no host sync."""

    model.eval()
    out = []
    for start in range(0, len(split.y), EVAL_BATCH):
        x = normalize(split.x[start:start + EVAL_BATCH], dataset)
        if permutation is not None:
            x = permutation(x)
        with autocast(device, precision):
            out.append(model(x).argmax(1))
    return torch.cat(out)


def evaluate(model, split, dataset: str, device: torch.device, precision: str, permutation=None) -> float:
    """Top-1 accuracy on a split (:func:`predict`); one host sync."""
    return (predict(model, split, dataset, device, precision, permutation) == split.y).sum().item() / len(split.y)


def training_inputs(x, augment, generator: torch.Generator, permutation=None) -> torch.Tensor:
    """What the network sees of a uint8 training batch: augmented, then (the permutation test,
    Section 4.1) pixel-permuted, so that flips and crops act on the original image."""
    x = augment(x, generator)
    return x if permutation is None else permutation(x)


