"""Where and in what precision a run computes (Appendix A: fp16 mixed precision on the GPU,
batch-norm kept in fp32 by autocast; fp32 on the CPU)."""

from __future__ import annotations

import contextlib
import platform

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --device cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} asked for but MPS is not available; use --device cpu or auto")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``fp16-amp`` on CUDA, ``fp32`` elsewhere. fp16 AMP needs CUDA."""
    if precision == "auto":
        return "fp16-amp" if device.type == "cuda" else "fp32"
    if precision == "fp16-amp" and device.type != "cuda":
        raise ValueError(f"precision 'fp16-amp' needs a CUDA device (got {device}); use fp32 or bf16")
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "fp16-amp":
        return torch.autocast(device.type, dtype=torch.float16)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type}: {platform.processor() or platform.machine()}"
