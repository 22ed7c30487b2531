"""What a training run costs: FLOPs per image from the network's layers, and GPU-hours at a
stated throughput (the Reproducibility page and ``companion reproduce --dry-run``).

Multiply-accumulates (MACs) per image are counted layer by layer on a ``meta`` copy of the
network (no memory, no arithmetic): a Linear layer does one MAC per weight, a Conv2d layer one
per weight at each output position, a LocallyConnected2d layer one per weight. A training step
costs about 3 forward passes (forward, gradient of the input, gradient of the weights), and a
MAC is 2 FLOPs. Batch norm, activations, the loss and the optimizer are left out (they are
memory-bound and small beside the matmuls at the paper's sizes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from companion.data.files import NUM_CLASSES
from companion.nn.layers import LocallyConnected2d
from companion.nn.models import build_model

#: the GPU throughput assumed when none has been measured: H100 SXM dense fp16/bf16 peak
#: (NVIDIA H100 datasheet, 989 TFLOP/s) at an assumed 25 % model-FLOP utilisation
ASSUMED_PEAK_TFLOPS = 989.0
ASSUMED_MFU = 0.25
#: where ``benchmarks/bench_paper_scale.py --record`` writes a measured throughput
MEASURED_FILE = Path("results") / "paper_throughput.json"
#: official training-set sizes (before the validation split)
TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257}


def forward_macs(model_name: str, alpha: int, *, kernel_size: int | None = None, image_size: int = 32,
                 in_channels: int = 3, num_classes: int = 10) -> int:
    """MACs of one image's forward pass through ``build_model(model_name, alpha)``."""

    model = build_model(model_name, alpha, image_size=image_size, in_channels=in_channels,
                        num_classes=num_classes, kernel_size=kernel_size, device="meta")
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, (nn.Linear, LocallyConnected2d)):
            total += module.weight.numel()
        elif isinstance(module, nn.Conv2d):
            total += module.weight.numel() * output.shape[-1] * output.shape[-2]

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d, LocallyConnected2d))]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, in_channels, image_size, image_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def training_flops(config) -> float:
    """FLOPs of training ``config`` (a TrainConfig) to the end: 3 passes × 2 FLOPs/MAC per image."""

    if config.subset is None and config.dataset not in TRAIN_IMAGES:
        raise ValueError(f"training set size of {config.dataset!r} unknown; set subset "
                         f"(known: {', '.join(TRAIN_IMAGES)})")
    images = config.subset if config.subset is not None else TRAIN_IMAGES[config.dataset] - config.val_size
    macs = forward_macs(config.model, config.alpha, kernel_size=config.kernel_size,
                        num_classes=NUM_CLASSES[config.dataset])
    return 3 * 2 * macs * images * config.epochs


@dataclass(frozen=True)
class Throughput:
    """Sustained training FLOP/s of one GPU, and where the number comes from."""

    flops_per_s: float
    source: str

    @classmethod
    def load(cls, path: str | Path = MEASURED_FILE) -> "Throughput":
        """The measured throughput recorded at ``path`` when present, else the stated assumption."""
        path = Path(path)
        if path.is_file():
            m = json.loads(path.read_text())
            return cls(m["achieved_tflops"] * 1e12,
                       f"measured by benchmarks/bench_paper_scale.py on {m['device']} ({m['date']})")
        return cls(ASSUMED_PEAK_TFLOPS * ASSUMED_MFU * 1e12,
                   f"assumed: {ASSUMED_MFU:.0%} of an H100's {ASSUMED_PEAK_TFLOPS:g} TFLOP/s fp16 peak "
                   "(no GPU measurement recorded yet)")


def gpu_hours(configs, throughput: Throughput | None = None) -> float:
    """Estimated GPU-hours of training every config in ``configs`` at ``throughput``."""
    throughput = throughput or Throughput.load()
    return sum(training_flops(c) for c in configs) / throughput.flops_per_s / 3600
