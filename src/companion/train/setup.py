"""What one process of a run trains with: its :class:`Job` (config, device, precision, process
group) and its :class:`Loop` (data, network, optimizer, cosine schedule, augmentation), built
once per session by :func:`build_loop` for the epoch loop (:mod:`companion.train.loop`) and the
step profile (:mod:`companion.train.profile`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from companion.config import TrainConfig, steps_per_epoch
from companion.data.augment import make_augment
from companion.data.datasets import load_data
from companion.data.permutation import PixelPermutation
from companion.nn.models import build_model
from companion.train import distributed
from companion.train.step import make_optimizer


@dataclass(frozen=True)
class Job:
    """One process's part in one run."""

    config: TrainConfig
    device: torch.device
    precision: str
    group: distributed.Group


@dataclass
class Loop:
    """What the epoch loop works on. ``model``: the network (its checkpoint and analysis);
    ``net``: what the forward pass calls (``model`` itself, or its DDP wrapper); ``step_mode``:
    how β-LASSO steps (:func:`companion.train.step.beta_lasso_mode`; None for SGD)."""

    job: Job
    data: object
    permutation: object
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    augment: object
    steps: int
    step_mode: dict | None = None


def _check_batch(config: TrainConfig, n_train: int, world_size: int) -> None:
    if config.batch_size > n_train:
        raise ValueError(
            f"batch_size {config.batch_size} is larger than the training set ({n_train} images "
            f"of {config.dataset} after subset/val_size); use batch_size <= {n_train}")
    if config.batch_size < world_size:
        raise ValueError(f"batch_size {config.batch_size} is smaller than the number of processes "
                         f"({world_size}); every process needs at least one image of each batch")


def build_loop(job: Job, state: dict | None) -> Loop:
    """Data, network, optimizer, cosine schedule (and ``state``'s values when resuming)."""

    config, device, group = job.config, job.device, job.group
    data = load_data(config.dataset, config.data_root, val_size=config.val_size, subset=config.subset,
                     seed=config.seed, device=device)
    permutation = (None if config.permute_pixels is None else
                   PixelPermutation(config.permute_pixels, data.image_size, data.image_size, device))
    _check_batch(config, len(data.train.y), group.world_size)
    steps = steps_per_epoch(len(data.train.y), config.batch_size)
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.alpha, image_size=data.image_size, in_channels=data.in_channels,
                        num_classes=data.num_classes, dropout=config.dropout, kernel_size=config.kernel_size,
                        device=device)
    net = distributed.data_parallel(model, group)
    model = net.module if group.distributed else model
    optimizer, step_mode = make_optimizer(config, model, device=device, steps=config.epochs * steps)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps)
    scaler = torch.amp.GradScaler(device.type) if job.precision == "fp16-amp" else None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
    return Loop(job, data, permutation, model, net, optimizer, scheduler, scaler,
                make_augment(config.augment, config.dataset), steps, step_mode)
