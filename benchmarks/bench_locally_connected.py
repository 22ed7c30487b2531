"""LocallyConnected2d vs nn.Conv2d vs the widely copied broadcast implementation.

Forward + backward time (medians of interleaved repeats, one process) and peak memory (the
growth of peak RSS, VmHWM reset before the step while running one forward+backward, each variant in a fresh subprocess), for
the S-LOCAL first layer (3 → α, 9×9, stride 2, padding 4, 32×32; its input needs no gradient)
and a D-LOCAL layer (conv3 of Table 3: 2α → 2α, 3×3, stride 1, 16×16; input needs a gradient).
Prints ratios to Conv2d (same FLOPs; the local layer has no weight reuse across positions).

    python benchmarks/bench_locally_connected.py [--batch 64] [--alpha 32] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from companion.nn.layers import LocallyConnected2d

CASES = {
    # name: (in, out, size, k, stride, padding, input_requires_grad)
    "s-local conv1": lambda a: (3, a, 32, 9, 2, 4, False),
    "d-local conv3": lambda a: (2 * (a // 2), 2 * (a // 2), 16, 3, 1, 1, True),
}


class BroadcastLocal(nn.Module):
    """The common naive version: unfold, then broadcast-multiply (N × out × in·k² × positions) and sum."""

    def __init__(self, layer: LocallyConnected2d):
        super().__init__()
        self.k, self.s, self.p = layer.kernel_size, layer.stride, layer.padding
        self.out_shape = (layer.out_channels, *layer.output_size)
        # weight as (1, out, K, positions)
        self.weight = nn.Parameter(layer.weight.detach().permute(2, 1, 0).unsqueeze(0).contiguous())

    def forward(self, x):
        cols = F.unfold(x, self.k, padding=self.p, stride=self.s).unsqueeze(1)  # N,1,K,L
        return (cols * self.weight).sum(2).reshape(x.shape[0], *self.out_shape)


class UnfoldBmm(nn.Module):
    """Plain unfold + bmm left to autograd (non-contiguous operands)."""

    def __init__(self, layer: LocallyConnected2d):
        super().__init__()
        self.k, self.s, self.p = layer.kernel_size, layer.stride, layer.padding
        self.out_shape = (layer.out_channels, *layer.output_size)
        self.weight = nn.Parameter(layer.weight.detach().clone())

    def forward(self, x):
        cols = F.unfold(x, self.k, padding=self.p, stride=self.s)  # N,K,L
        out = torch.bmm(cols.permute(2, 0, 1), self.weight)  # L,N,O
        return out.permute(1, 2, 0).reshape(x.shape[0], *self.out_shape)


def make(variant: str, case: str, alpha: int):
    cin, cout, size, k, s, p, _ = CASES[case](alpha)
    torch.manual_seed(0)
    local = LocallyConnected2d(cin, cout, size, k, s, p, bias=False)
    if variant == "conv2d":
        return nn.Conv2d(cin, cout, k, s, p, bias=False)
    if variant == "ours":
        return local
    if variant == "unfold+bmm":
        return UnfoldBmm(local)
    return BroadcastLocal(local)


def step(module, x):
    out = module(x)
    out.backward(torch.ones_like(out))


def inputs(case, alpha, batch):
    cin, _, size, *_, needs_grad = CASES[case](alpha)
    return torch.randn(batch, cin, size, size, requires_grad=needs_grad)


def peak_memory_mib(variant, case, alpha, batch) -> float:
    """Peak RSS growth (MiB) of one forward+backward, measured by this script in a fresh process."""
    cmd = [sys.executable, __file__, "--alpha", str(alpha), "--batch", str(batch), "--memory-of", variant, case]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _measure_memory(variant, case, alpha, batch) -> None:
    module, x = make(variant, case, alpha), inputs(case, alpha, batch)
    base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    step(module, x)
    print(json.dumps((_status_kib("VmHWM") - base) / 1024))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurement")
    parser.add_argument("--memory-of", nargs=2, metavar=("VARIANT", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_of:
        return _measure_memory(*args.memory_of, args.alpha, args.batch)
    variants = ["conv2d", "ours", "unfold+bmm", "broadcast"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, alpha {args.alpha}")
    for case in CASES:
        x = inputs(case, args.alpha, args.batch)
        modules = {v: make(v, case, args.alpha) for v in variants}
        for m in modules.values():
            step(m, x)  # warm-up
        times = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v, m in modules.items():  # interleaved, so drift hits all variants alike
                t0 = time.perf_counter()
                step(m, x)
                times[v].append(time.perf_counter() - t0)
        med = {v: statistics.median(t) for v, t in times.items()}
        mem = {} if args.no_memory else {v: peak_memory_mib(v, case, args.alpha, args.batch) for v in variants}
        print(f"\n{case}: {CASES[case](args.alpha)[:6]} (in, out, size, k, stride, pad)")
        print(f"{'variant':<12} {'fwd+bwd ms':>11} {'x Conv2d':>9} {'peak MiB':>9} {'x Conv2d':>9}")
        for v in variants:
            row = f"{v:<12} {med[v] * 1e3:11.1f} {med[v] / med['conv2d']:9.2f}"
            if mem:
                row += f" {mem[v]:9.1f} {mem[v] / max(mem['conv2d'], 1e-9):9.2f}"
            print(row)


if __name__ == "__main__":
    main()
