"""One S-FC training step (forward + backward + β-LASSO step, fp32, CPU) vs plain matmuls.

Usage: .venv/bin/python benchmarks/bench_train_step.py [--alpha 8] [--batch 128] [--rounds 7]

FLOP count (matmuls only; batch B, Linear layer l with fan-in i_l and fan-out o_l, M_l = i_l·o_l):
forward 2·B·M_l per layer; backward 2·B·M_l for the weight gradient of every layer plus
2·B·M_l for the input gradient of every layer except the first (the images need no gradient).
So a step is 2·B·(2·ΣM_l + Σ_{l≥2} M_l) FLOPs. BatchNorm, ReLU, the loss and the optimizer are
not counted: they are the overhead this benchmark exposes.

Compared in the same run, interleaved round by round (the machine is shared and noisy):
- ``step``: the real training step (model.train(), cross-entropy, BetaLasso(lr, lam, beta=50));
- ``gemms``: exactly the step's matmuls (same shapes, same transposes) as bare torch.mm calls;
- ``matmul``: one plain torch.matmul of the largest layer's forward shape (B × i_1 @ i_1 × o_1).
Prints GFLOP/s of each and the ratios (goal: step ≥ 75% of matmul), then where the step's time goes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from companion.nn.models import build_model
from companion.optim import BetaLasso, lasso_param_groups


def timed(fn, reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=int, default=8)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reps", type=int, default=5, help="steps per round")
    args = parser.parse_args()
    torch.manual_seed(0)
    B = args.batch

    model = build_model("s-fc", args.alpha)
    linears = [model.get_submodule(name) for name in model.paper_layers]
    shapes = [(m.in_features, m.out_features) for m in linears]
    macs = [i * o for i, o in shapes]
    step_flops = 2 * B * (2 * sum(macs) + sum(macs[1:]))
    opt = BetaLasso(lasso_param_groups(model, 1e-6, 2e-6), lr=0.1, lam=1e-6, beta=50.0)
    x = torch.randn(B, 3, 32, 32)
    y = torch.randint(0, 10, (B,))
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # the step's matmuls, bare: forward h_l = a_{l-1} W_l^T; backward dW_l = g_l^T a_{l-1},
    # da_{l-1} = g_l W_l (not for l = 1)
    acts = [torch.randn(B, i) for i, _ in shapes]
    grads = [torch.randn(B, o) for _, o in shapes]
    weights = [torch.randn(o, i) for i, o in shapes]

    def gemms():
        for l, (a, g, w) in enumerate(zip(acts, grads, weights)):
            torch.mm(a, w.t())
            torch.mm(g.t(), a)
            if l > 0:
                torch.mm(g, w)

    a1, w1 = torch.randn(B, shapes[0][0]), torch.randn(shapes[0][0], shapes[0][1])
    matmul_flops = 2 * B * macs[0]

    def matmul():
        torch.matmul(a1, w1)

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    forward_backward()  # gradients exist for the optimizer-only timing
    candidates = {
        "step": (step, step_flops),
        "gemms": (gemms, step_flops),
        "matmul": (matmul, matmul_flops),
        "fwd": (forward, None),
        "fwd+bwd": (forward_backward, None),
        "opt": (opt.step, None),
    }
    for fn, _ in candidates.values():  # warm up
        timed(fn, 2)
    times = {k: [] for k in candidates}
    for _ in range(args.rounds):  # interleaved: every round measures every candidate
        for name, (fn, _) in candidates.items():
            times[name].append(timed(fn, args.reps))
    ms = {k: statistics.median(t) * 1e3 for k, t in times.items()}
    gflops = {k: flops / ms[k] / 1e6 for k, (_, flops) in candidates.items() if flops}

    print(f"S-FC α={args.alpha}: Linear layers (in, out) {shapes}, batch {B}, fp32, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"matmul FLOPs of one step: {step_flops / 1e9:.3f} G (fwd {2 * B * sum(macs) / 1e9:.3f}, "
          f"bwd {2 * B * (sum(macs) + sum(macs[1:])) / 1e9:.3f}); median of {args.rounds} rounds × {args.reps} reps")
    for name in ("step", "gemms", "matmul"):
        print(f"  {name:7s} {ms[name]:8.2f} ms  {gflops[name]:7.1f} GFLOP/s")
    print(f"ratio step/matmul = {gflops['step'] / gflops['matmul']:.0%} (goal >= 75%)   "
          f"step/gemms = {gflops['step'] / gflops['gemms']:.0%}   gemms/matmul = "
          f"{gflops['gemms'] / gflops['matmul']:.0%}")
    print(f"phases: forward (no grad) {ms['fwd']:.1f} ms, forward+backward {ms['fwd+bwd']:.1f} ms, "
          f"BetaLasso.step {ms['opt']:.1f} ms ({ms['opt'] / ms['step']:.0%} of the step); "
          f"non-matmul overhead of the step {ms['step'] - ms['gemms']:.1f} ms")

    # where the step's time goes, by op
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.reps):
            step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    print("step time by aten op (self CPU time, share):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]:
        print(f"  {e.key:36s} {e.self_cpu_time_total / total:6.1%}  ({e.count // args.reps} calls/step)")


if __name__ == "__main__":
    main()
