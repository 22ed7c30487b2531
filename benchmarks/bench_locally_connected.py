"""LocallyConnected2d vs nn.Conv2d (and earlier local implementations), forward + backward.

Forward + backward time (medians of interleaved repeats, one process) and, optionally, peak
memory (the growth of peak RSS, VmHWM reset before the step while running one forward+backward,
each variant in a fresh subprocess), for the two shapes the paper's LOCAL nets use most:

- ``s-local conv1``: the S-LOCAL first layer (3 → α, 9×9, stride 2, padding 4, 32×32); its
  input (the images) needs no gradient;
- ``d-local conv3``: a D-LOCAL 3×3 layer (α → α, stride 1, padding 1, 16×16; conv3 of Table 3
  has these spatial sizes, with 2α channels); its input needs a gradient.

Both do a convolution's FLOPs (one in·k² × out matrix per output position), so the ratio to
Conv2d is what the missing weight reuse costs. Variants: ``ours`` (the package's layer),
``previous`` (the implementation before issue 18: ``(positions, N, K)`` im2col, ``F.fold``
for the input gradient), and with ``--all`` the naive ``unfold+bmm`` and ``broadcast`` versions.
The last lines print both cases' ratios side by side.

    python benchmarks/bench_locally_connected.py [--alpha 16] [--batch 128] [--repeats 9]
        [--threads N] [--cpu-time] [--memory] [--all]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from companion.nn.layers import LocallyConnected2d

CASES = {
    # name: (in, out, size, k, stride, padding, input_requires_grad)
    "s-local conv1": lambda a: (3, a, 32, 9, 2, 4, False),
    "d-local conv3": lambda a: (a, a, 16, 3, 1, 1, True),
}


class _PreviousMatmul(torch.autograd.Function):
    """The layer's autograd Function before issue 18, verbatim: (L, N, K) columns, F.fold."""

    @staticmethod
    def forward(ctx, x, weight, kernel_size, stride, padding):
        xp = F.pad(x, (padding,) * 4) if padding else x
        windows = xp.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)  # N,C,Ho,Wo,k,k
        n, c, ho, wo = windows.shape[:4]
        cols = windows.permute(2, 3, 0, 1, 4, 5).reshape(ho * wo, n, c * kernel_size**2)
        out = torch.bmm(cols, weight)  # L, N, O
        ctx.save_for_backward(cols, weight)
        ctx.geometry = (x.shape[-2:], kernel_size, stride, padding)
        return out.permute(1, 2, 0)

    @staticmethod
    def backward(ctx, grad_out):
        cols, weight = ctx.saved_tensors
        grad = grad_out.permute(2, 0, 1).contiguous()  # L, N, O
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = torch.bmm(cols.transpose(1, 2), grad)  # L, K, O
        if ctx.needs_input_grad[0]:
            size, kernel_size, stride, padding = ctx.geometry
            grad_cols = torch.bmm(grad, weight.transpose(1, 2))  # L, N, K
            grad_x = F.fold(grad_cols.permute(1, 2, 0), size, kernel_size, padding=padding, stride=stride)
        return grad_x, grad_w, None, None, None


class _Variant(nn.Module):
    """Another implementation of ``layer``: its geometry and (a layout of) its weight."""

    def __init__(self, layer: LocallyConnected2d, weight: torch.Tensor | None = None):
        super().__init__()
        self.k, self.s, self.p = layer.kernel_size, layer.stride, layer.padding
        self.out_shape = (layer.out_channels, *layer.output_size)
        self.weight = nn.Parameter((layer.weight.detach() if weight is None else weight).clone())


class PreviousLocal(_Variant):
    """LocallyConnected2d as it was before issue 18 (same weight layout)."""

    def forward(self, x):
        out = _PreviousMatmul.apply(x, self.weight, self.k, self.s, self.p)
        return out.reshape(x.shape[0], *self.out_shape)


class BroadcastLocal(_Variant):
    """The common naive version: unfold, then broadcast-multiply (N × out × in·k² × positions) and sum."""

    def __init__(self, layer: LocallyConnected2d):  # weight as (1, out, K, positions)
        super().__init__(layer, layer.weight.detach().permute(2, 1, 0).unsqueeze(0).contiguous())

    def forward(self, x):
        cols = F.unfold(x, self.k, padding=self.p, stride=self.s).unsqueeze(1)  # N,1,K,L
        return (cols * self.weight).sum(2).reshape(x.shape[0], *self.out_shape)


class UnfoldBmm(_Variant):
    """Plain unfold + bmm left to autograd (non-contiguous operands)."""

    def forward(self, x):
        cols = F.unfold(x, self.k, padding=self.p, stride=self.s)  # N,K,L
        out = torch.bmm(cols.permute(2, 0, 1), self.weight)  # L,N,O
        return out.permute(1, 2, 0).reshape(x.shape[0], *self.out_shape)


WRAPPERS = {"previous": PreviousLocal, "unfold+bmm": UnfoldBmm, "broadcast": BroadcastLocal}


def make(variant: str, case: str, alpha: int):
    cin, cout, size, k, s, p, _ = CASES[case](alpha)
    torch.manual_seed(0)
    local = LocallyConnected2d(cin, cout, size, k, s, p, bias=False)
    if variant == "conv2d":
        return nn.Conv2d(cin, cout, k, s, p, bias=False)
    return local if variant == "ours" else WRAPPERS[variant](local)


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


def load_average() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "n/a"


def time_case(case, variants, alpha, batch, repeats, clock=time.perf_counter) -> dict[str, float]:
    """Median seconds of one forward+backward per variant, repeats interleaved across variants."""
    x = inputs(case, alpha, batch)
    modules = {v: make(v, case, alpha) for v in variants}
    for m in modules.values():
        step(m, x)  # warm-up
    with torch.no_grad():  # every local variant computes the same function
        for v in variants[2:]:
            torch.testing.assert_close(modules[v](x), modules["ours"](x), rtol=1e-4, atol=1e-4)
    times = {v: [] for v in variants}
    for _ in range(repeats):
        for v, m in modules.items():  # interleaved, so drift hits all variants alike
            t0 = clock()
            step(m, x)
            times[v].append(clock() - t0)
    return {v: statistics.median(t) for v, t in times.items()}


def print_case(case, alpha, med, mem) -> None:
    print(f"\n{case}: {CASES[case](alpha)[:6]} (in, out, size, k, stride, pad), input grad: {CASES[case](alpha)[6]}")
    print(f"{'variant':<12} {'fwd+bwd ms':>11} {'x Conv2d':>9}" + (f" {'peak MiB':>9} {'x Conv2d':>9}" if mem else ""))
    for v in med:
        row = f"{v:<12} {med[v] * 1e3:11.1f} {med[v] / med['conv2d']:9.2f}"
        if mem:
            row += f" {mem[v]:9.1f} {mem[v] / max(mem['conv2d'], 1e-9):9.2f}"
        print(row)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--alpha", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process's CPU time instead of wall time (on a busy machine, with --threads 1)")
    parser.add_argument("--all", action="store_true", help="also time the naive unfold+bmm and broadcast versions")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (one subprocess per variant)")
    parser.add_argument("--memory-of", nargs=2, metavar=("VARIANT", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_of:
        return _measure_memory(*args.memory_of, args.alpha, args.batch)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = ["conv2d", "ours", "previous"] + (["unfold+bmm", "broadcast"] if args.all else [])
    load_before = load_average()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, alpha {args.alpha}, "
          f"{args.repeats} repeats, load average {load_before}")
    ratios = {}
    for case in CASES:
        clock = time.process_time if args.cpu_time else time.perf_counter
        med = time_case(case, variants, args.alpha, args.batch, args.repeats, clock)
        mem = {v: peak_memory_mib(v, case, args.alpha, args.batch) for v in variants} if args.memory else {}
        print_case(case, args.alpha, med, mem)
        ratios[case] = {v: med[v] / med["conv2d"] for v in variants[1:]}
    print(f"\nfwd+bwd {'CPU' if args.cpu_time else 'wall'} time / Conv2d (medians; batch {args.batch}, "
          f"alpha {args.alpha}, {torch.get_num_threads()} threads; load average {load_before} before, {load_average()} after)")
    print(f"{'case':<15}" + "".join(f" {v:>11}" for v in variants[1:]))
    for case, r in ratios.items():
        print(f"{case:<15}" + "".join(f" {r[v]:10.2f}x" for v in variants[1:]))


if __name__ == "__main__":
    main()
