"""Paper-scale training step: S-FC α=150 (≈256 M parameters), batch 512, β-LASSO, Fast
AutoAugment on the device, the run's precision (fp16 mixed precision on CUDA; Appendix A.2).

Profiles the trainer's own step (:func:`companion.train.profile.profile_steps`: the same model,
augmentation, optimizer, schedule and precision as a run) on the synthetic dataset (CIFAR-shaped,
no download) in both β-LASSO modes, ``exact`` and ``fused`` (``$COMPANION_BETA_LASSO_STEP``),
and prints for each: the share of data/augmentation, forward+backward, optimizer step and
evaluation, images/s, matmul FLOP utilisation (against a measured matmul and the nominal peak
``--peak-tflops``; H100 SXM dense fp16 ≈ 989, H200 the same), seconds per 50,000-image epoch and
the projected 400-epoch time; then fused ÷ exact.

    python benchmarks/bench_paper_scale.py                                   # on a GPU
    python benchmarks/bench_paper_scale.py --device cpu --alpha 8 --batch 128 --steps 5   # a check
"""

from __future__ import annotations

import argparse
import os

import torch

from companion.config import TrainConfig
from companion.train.profile import profile_steps
from companion.train.step import STEP_ENV


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha", type=int, default=150)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=30, help="profiled steps per mode")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="nominal device peak (fp16 dense)")
    ap.add_argument("--augment", default="fast-autoaugment", help="none, flip-crop, fast-autoaugment")
    ap.add_argument("--modes", nargs="+", default=["exact", "fused"], choices=["exact", "fused"])
    args = ap.parse_args(argv)
    config = TrainConfig(model="s-fc", alpha=args.alpha, epochs=400, dataset="synthetic", optimizer="beta-lasso",
                         lam=1e-6, lam_first=2e-6, beta=50.0, batch_size=args.batch, augment=args.augment,
                         device=args.device, val_size=0)
    rates = {}
    before = os.environ.get(STEP_ENV)
    for mode in args.modes:
        os.environ[STEP_ENV] = mode
        try:
            profile = profile_steps(config, args.steps, warmup=args.warmup, nominal_peak_tflops=args.peak_tflops)
        finally:  # leave the caller's setting as it was
            os.environ.pop(STEP_ENV) if before is None else os.environ.__setitem__(STEP_ENV, before)
        print("\n".join(profile.lines()))
        ips = rates[mode] = profile.images_per_s
        print(f"  seconds/epoch (50,000 images): {50_000 / ips:.1f}   400 epochs: {400 * 50_000 / ips / 3600:.2f} h")
        if torch.cuda.is_available() and args.device.startswith("cuda"):
            print(f"  peak memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    if len(rates) == 2:
        print(f"fused / exact images/s: {rates['fused'] / rates['exact']:.3f}")


if __name__ == "__main__":
    main()
