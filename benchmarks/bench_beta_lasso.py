"""Step time of β-LASSO (Algorithm 1) against torch.optim.SGD on an S-FC-sized parameter set.

The parameters have the shapes of S-FC (Table 4) on CIFAR-10 with α chosen so that the total is
about --params: first layer 3072 -> 256α, then 256α -> 24α, then 24α -> 10, with biases.
Alternatives run interleaved (rotating order each repeat) on the same tensors. Printed per variant:
the median and best time per step, their ratios to SGD's median and best, and the median over
repeats of the ratio to SGD's time in the same repeat (the figure least moved by other load).
BetaLasso(fused=True) compiles once before timing (its compile time is printed) and computes the
same numbers as the exact mode (whether bit for bit on this machine is printed:
``companion.optim.fused_matches_exact``). Goal (issue 18): fused ≤ 1.2× SGD, median of paired ratios.

    .venv/bin/python benchmarks/bench_beta_lasso.py [--params 30e6] [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from companion import optim
from companion.optim import BetaLasso

LR, LAM, BETA = 0.1, 1e-6, 50.0  # Appendix A.2


def s_fc_shapes(params: float) -> tuple[int, list[tuple[int, ...]]]:
    """α and the S-FC weight/bias shapes whose total is closest to ``params``."""
    def shapes(alpha):
        h1, h2 = 256 * alpha, 24 * alpha
        return [(h1, 3072), (h1,), (h2, h1), (h2,), (10, h2), (10,)]

    alpha = min(range(1, 4096), key=lambda a: abs(sum(math.prod(s) for s in shapes(a)) - params))
    return alpha, shapes(alpha)


@torch.no_grad()
def naive_step(params, grads):
    """Algorithm 1 with separate elementwise ops per tensor (the obvious implementation)."""
    for p, g in zip(params, grads):
        s = p.sign()
        p.sub_(LR * (g + LAM * s))
        p.mul_(p.abs() >= BETA * LAM)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=30e6, help="total parameters (≈)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per variant")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per repeat")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--no-naive", action="store_true", help="skip the slow naive variant")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.params < 1 or args.repeats < 1 or args.steps < 1:
        raise SystemExit("--params, --repeats and --steps must be >= 1")

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    alpha, shapes = s_fc_shapes(args.params)
    params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.02).to(device))
              for s in shapes]
    grads = [(torch.randn(s, generator=gen) * 0.01).to(device) for s in shapes]
    for p, g in zip(params, grads):
        p.grad = g
    total = sum(p.numel() for p in params)

    sgd = torch.optim.SGD(params, lr=LR, momentum=0.0, foreach=True)
    lasso = BetaLasso(params, lr=LR, lam=LAM, beta=BETA)
    fused = BetaLasso(params, lr=LR, lam=LAM, beta=BETA, fused=True)
    start = time.perf_counter()
    fused.step()  # compiles (or loads the compiled kernel from torch's on-disk cache)
    compile_s = time.perf_counter() - start
    batched = optim._CPU_BATCH_NUMEL

    def lasso_unbatched():
        optim._CPU_BATCH_NUMEL = None  # whole tensors per foreach kernel (the accelerator path)
        try:
            lasso.step()
        finally:
            optim._CPU_BATCH_NUMEL = batched

    variants = {
        "SGD(foreach, momentum=0)": sgd.step,
        "BetaLasso(fused=True)": fused.step,
        f"BetaLasso exact (batches of {batched})": lasso.step,
        "BetaLasso exact, whole tensors": lasso_unbatched,
    }
    if not args.no_naive:
        variants["naive per-tensor ops"] = lambda: naive_step(params, grads)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = {name: [] for name in variants}
    for fn in variants.values():  # warm-up
        fn()
    names = list(variants)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                variants[name]()
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"params={total / 1e6:.1f}M (S-FC alpha={alpha}, {len(params)} tensors) "
          f"repeats={args.repeats} steps/repeat={args.steps} fused compile={compile_s:.1f}s")
    print(f"  {'':36s} {'median':>9s}   {'/SGD':>6s}   {'best':>8s}   {'/SGD':>6s}   "
          f"{'median of paired /SGD':>21s}")
    sgd_times = times[names[0]]
    base, base_best = statistics.median(sgd_times), min(sgd_times)
    for name in names:
        med, best = statistics.median(times[name]), min(times[name])
        paired = statistics.median(t / s for t, s in zip(times[name], sgd_times))
        print(f"  {name:36s} {med * 1e3:9.2f}   x{med / base:5.2f}   {best * 1e3:8.2f}   "
              f"x{best / base_best:5.2f}   x{paired:20.2f}")
    fused_times = times[names[1]]
    paired = statistics.median(t / s for t, s in zip(fused_times, sgd_times))
    print(f"BetaLasso(fused=True) / SGD: median of paired x{paired:.2f} (goal <= 1.2), median "
          f"x{statistics.median(fused_times) / base:.2f}, best-of-repeats x{min(fused_times) / base_best:.2f}; "
          f"bit-identical to the exact mode here: {optim.fused_matches_exact(device)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
