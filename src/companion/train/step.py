"""The pieces of one training step and of evaluation (Appendix A.2), shared by the loop of a run
(:mod:`companion.train.loop`) and the benchmarks: the optimizer (SGD or β-LASSO), the backward
pass and step (through fp16's ``GradScaler`` when there is one), the seeded random streams, what
the network sees of a batch, and predictions / accuracy on a split."""

from __future__ import annotations

import hashlib

import torch

from companion.config import TrainConfig
from companion.data.augment import normalize
from companion.optim import BetaLasso, lasso_param_groups
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


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or β-LASSO (Algorithm 1; ``lam_first`` on conv positions)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )

    groups = lasso_param_groups(model, config.lam, config.lam_first)
    return BetaLasso(groups, lr=config.lr, lam=config.lam, beta=config.beta)


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


