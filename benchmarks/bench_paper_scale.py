"""Paper-scale training throughput: S-FC α=150 (≈256 M parameters), batch 512, β-LASSO,
fp16 mixed precision, Fast AutoAugment on the device (Appendix A.2; issue: "GPU-ready").

Runs the trainer's own pieces (build_model, make_augment, lasso_param_groups + BetaLasso,
autocast + GradScaler) on CIFAR-shaped random uint8 data, and prints images/s, seconds per
epoch (50,000 images), the projected time of the paper's 400-epoch run, and model FLOP
utilisation against the peak you name (``--peak-tflops``; H100 SXM dense fp16 ≈ 989).

    python benchmarks/bench_paper_scale.py --device cuda                  # on a GPU
    python benchmarks/bench_paper_scale.py --device cpu --alpha 8 --batch 128 --steps 3   # a check
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from companion.data.augment import make_augment
from companion.nn.models import build_model
from companion.optim import BetaLasso, lasso_param_groups
from companion.train.device import autocast
from companion.train.step import optimizer_step


def matmul_flops_per_image(model: nn.Module, first_needs_input_grad: bool = False) -> float:
    """fwd (2·MACs) + weight-grad (2·MACs) + input-grad (2·MACs, not for the first layer)."""
    flops = 0.0
    for i, name in enumerate(model.paper_layers):
        layer = model.get_submodule(name)
        macs = layer.weight.numel()  # S-FC: every layer is a Linear, one MAC per weight per image
        flops += 2 * macs * (3 if (i > 0 or first_needs_input_grad) else 2)
    return flops


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha", type=int, default=150)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="device peak for MFU (fp16 dense)")
    ap.add_argument("--no-augment", action="store_true")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    model = build_model("s-fc", args.alpha, device=device)
    params = sum(p.numel() for p in model.parameters())
    opt = BetaLasso(lasso_param_groups(model, lam=1e-6, lam_first=2e-6), lr=0.1, beta=50.0)
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    augment = make_augment("none" if args.no_augment else "fast-autoaugment", "cifar10")
    g = torch.Generator(device=device).manual_seed(0)
    x_all = torch.randint(0, 256, (args.batch * 4, 3, 32, 32), dtype=torch.uint8, device=device)
    y_all = torch.randint(0, 10, (args.batch * 4,), device=device)

    def step(i):
        idx = slice((i % 4) * args.batch, (i % 4 + 1) * args.batch)
        x = augment(x_all[idx], g)
        with autocast(device, "fp16-amp" if cuda else "fp32"):
            loss = F.cross_entropy(model(x), y_all[idx])
        optimizer_step(loss, opt, scaler)  # the trainer's step

    for i in range(args.warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    ips = args.steps * args.batch / dt
    flops = matmul_flops_per_image(model)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"device: {name}; S-FC α={args.alpha}: {params / 1e6:.1f} M parameters; batch {args.batch}; "
          f"{'fp16 AMP' if cuda else 'fp32'}; β-LASSO; augment {'none' if args.no_augment else 'Fast AutoAugment'}")
    print(f"images/s: {ips:,.0f}   seconds/epoch (50,000 images): {50_000 / ips:.1f}   "
          f"400 epochs: {400 * 50_000 / ips / 60:.1f} min")
    achieved = flops * ips / 1e12
    print(f"model FLOPs/image {flops / 1e9:.2f} G  ->  {achieved:.1f} TFLOP/s  = "
          f"{100 * achieved / args.peak_tflops:.1f} % MFU of {args.peak_tflops:g} TFLOP/s")
    if cuda:
        print(f"peak memory: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
