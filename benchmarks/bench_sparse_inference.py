"""CPU inference of S-FC: dense eval model vs :func:`companion.nn.sparse.to_sparse` (Section 5).

``--profile P`` (e.g. ``--profile cpu``) and/or ``--run DIR`` (repeatable): the trained S-FC runs
at their learned densities. ``--profile`` takes every run of ``results/P`` whose weights are at hand
(committed ``weights.npz`` or a checkpoint, :func:`companion.store.artifacts.trained_network`) and
whose export has a sparse layer: the β-LASSO networks chapter 11 times. For each run and each
``--threads`` count, the dense eval model and its ``to_sparse()`` export run on the same batch of
generated inputs (standard normal, seed 0, as chapter 11's ``probe_inputs``); every (run, threads,
dense|sparse) variant is timed in one interleaved loop (order rotated each round, medians), so that
load on a shared machine falls on all alike, each call after an untimed pause (``--pause-ms``,
chapter 11's ``SETTLE_S``: OpenMP threads spin for several ms after the dense network's last
parallel region and would otherwise compete with the next call), then an untimed call of the same
variant (``timed(warm=True)``: each variant timed in the steady state of a stream of batches; with
``--cold`` not, as before: then the short two-thread sparse calls pay for waking an idle core, see
``companion.nn.sparse_measure.timed``). Prints agreement (same predicted class) and the
largest |Δ logit| on ``--images`` inputs, then one ``RATIO`` line per run and thread count (with
issue 18's goal for β=50 and β=10), one ``CPU-TIME`` line per run for one thread (a second
interleaved loop timed by the calling thread's CPU time, which load from other processes moves
less than wall time), and the load average before and after.

Without ``--profile`` / ``--run`` (synthetic S-FC α, random weights):
part 1 (per layer): S-FC's first layer (3072 -> 256α) and second (256α -> 24α) magnitude-pruned to
each density, every layout of ``companion.nn.sparse`` on one thread in blocks of ``BATCH_BLOCK``
samples as ``SparseMLP`` runs them, CPU time of the thread (the "auto" threshold comes from here);
part 2 (whole model): S-FC α with ``conv1.layer`` pruned to density d, ``fc1.layer`` to 2d and
``fc2`` dense (Figure 3's pattern), random batch-norm statistics; images/s and memory of the
dense eval model vs its ``to_sparse(layout="auto")`` export, interleaved, medians.

    .venv/bin/python benchmarks/bench_sparse_inference.py --profile cpu [--threads 2 1] [--repeats 21]
    .venv/bin/python benchmarks/bench_sparse_inference.py [--alpha 8] [--batch 512]
        [--densities 0.01 0.02 0.05 0.10 0.25 0.40 0.50] [--threads 2 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import torch

from companion.nn.models import build_model
from companion.nn.sparse import (BATCH_BLOCK, LAYOUTS, SparseLinear, agreement, density_report, memory_bytes, timed,
                                 to_sparse)
from companion.nn.sparse_measure import SETTLE_S, num_threads

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")

ROOT = Path(__file__).resolve().parents[1]
#: issue 18: the sparse export of the trained β-LASSO S-FC must be this many times faster than the
#: dense network on 2 threads (β → goal)
GOALS = {50.0: 10.0, 10.0: 8.0}


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return f"n/a ({platform.system()})"


@torch.no_grad()
def prune_(weight: torch.Tensor, density: float) -> None:
    """Keep the ``density`` fraction of largest-magnitude entries of ``weight``, zero the rest."""
    keep = max(1, round(density * weight.numel()))
    if keep < weight.numel():
        threshold = weight.abs().flatten().kthvalue(weight.numel() - keep).values
        weight.mul_(weight.abs() > threshold)


# ------------------------------------------------------------------ trained runs (--profile / --run)
def trained_runs(profile: str | None, dirs: list[Path]) -> list:
    """The runs to report: those given, and the S-FC runs of ``results/<profile>`` with weights at
    hand whose export has a sparse layer; sorted by β."""
    from companion.store import artifacts
    from companion.store.results import load_run

    runs = [load_run(d) for d in dirs]
    if profile is not None:
        root = ROOT / "results" / profile
        if not root.is_dir():
            raise SystemExit(f"--profile {profile}: no results directory {root}")
        for d in sorted(p for p in root.iterdir() if (p / "config.json").is_file()):
            run = load_run(d)
            if run.finished and run.config.model == "s-fc" and artifacts.weights_source(run) is not None:
                if any(layer.layout != "dense" for layer in to_sparse(artifacts.trained_network(run)).layers()):
                    runs.append(run)
    if not runs:
        raise SystemExit("no trained run with weights and a sparse export found")
    return sorted(runs, key=lambda r: (r.config.beta or 0.0, r.run_id))


def run_label(run) -> str:
    c = run.config
    return f"β={c.beta:g}" if c.optimizer == "beta-lasso" else c.optimizer


def report_trained(args) -> None:
    from companion.store import artifacts

    print(f"load average before: {loadavg()}")
    x = torch.randn(max(args.batch, args.images), 3, 32, 32, generator=torch.Generator().manual_seed(0))
    variants, nets = {}, []
    for run in trained_runs(args.profile, args.run):
        c, label = run.config, run_label(run)
        model = artifacts.trained_network(run)
        sparse = to_sparse(model)
        same = agreement(model, sparse, x[:args.images])
        dens = density_report(model)
        print(f"\n{label} run {run.run_id} ({artifacts.weights_source(run)}): {c.model} α={c.alpha} {c.optimizer} "
              f"λ={c.lam} β={c.beta}; test {run.summary['final_test_acc'] * 100:.2f} %")
        for (_, d), layer in zip(dens.iterrows(), sparse.layers()):
            print(f"  {d['layer']:<12} {d['density'] * 100:6.2f} % non-zero ({d['nonzeros']:,} of {d['params']:,})"
                  f" -> {layer.layout}")
        print(f"  agreement: {same['same_prediction']} of {same['images']} inputs same class; "
              f"max |Δ logit| {same['max_logit_diff']:.2e}; memory {memory_bytes(model) / 2**20:.1f} -> "
              f"{memory_bytes(sparse) / 2**20:.2f} MiB")
        nets.append((label, c.beta))
        batch = x[:args.batch]
        for n in args.threads:
            for kind, net in (("dense", model), ("sparse", sparse)):
                variants[(label, n, kind)] = (lambda net=net, n=n: _call(net, batch, n))
    cpu_name = platform.processor() or platform.machine()
    print(f"\ntiming: torch {torch.__version__}, {os.cpu_count()} CPU(s) ({cpu_name}), "
          f"batch {args.batch}, {len(variants)} variants interleaved, medians of {args.repeats} repeats, "
          f"{args.pause_ms:g} ms untimed pause before each call"
          + ("" if args.cold else ", then an untimed call of the same variant"))
    t = timed(variants, args.repeats, pause=args.pause_ms / 1e3, warm=not args.cold)
    one = {k: v for k, v in variants.items() if k[1] == 1}
    cpu = timed(one, args.repeats, clock=time.thread_time) if one and not args.no_cpu_time else {}
    for label, beta in nets:
        for n in args.threads:
            dense, sparse = t[(label, n, "dense")], t[(label, n, "sparse")]
            goal = GOALS.get(beta) if n == 2 else None
            verdict = f"; goal {goal:g}x: {'met' if dense / sparse >= goal else 'MISSED'}" if goal else ""
            print(f"RATIO {label:<6} {n} thread{'s' if n > 1 else ' '}: sparse {dense / sparse:5.1f}x faster "
                  f"than dense (dense {dense * 1e3:6.1f} ms, sparse {sparse * 1e3:5.2f} ms per batch of {args.batch})"
                  + verdict)
        if (label, 1, "dense") in cpu:
            dense, sparse = cpu[(label, 1, "dense")], cpu[(label, 1, "sparse")]
            print(f"CPU-TIME {label:<6} 1 thread : sparse {dense / sparse:5.1f}x less CPU time than dense "
                  f"(dense {dense * 1e3:6.1f} ms, sparse {sparse * 1e3:5.2f} ms of the timing thread; "
                  f"less sensitive than wall time to load from other processes)")
    print(f"load average after: {loadavg()}")


@torch.no_grad()
def _call(net, batch, n):
    with num_threads(n):
        return net(batch)


# ------------------------------------------------------------------ synthetic S-FC (parts 1 and 2)
@torch.no_grad()
def pruned_s_fc(alpha: int, density: float, gen: torch.Generator) -> torch.nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    model = build_model("s-fc", alpha)
    prune_(model.conv1.layer.weight, density)
    prune_(model.fc1.layer.weight, min(1.0, 2 * density))
    for bn in (model.conv1.bn, model.fc1.bn):  # trained-looking statistics, so folding is exercised
        bn.running_mean.normal_(0, 0.1, generator=gen)
        bn.running_var.uniform_(0.5, 2.0, generator=gen)
        bn.weight.uniform_(0.5, 1.5, generator=gen)
        bn.bias.normal_(0, 0.1, generator=gen)
    return model.eval()


def compare(label: str, model: torch.nn.Module, x: torch.Tensor, repeats: int) -> None:
    """One row of part 2: images/s and memory, dense vs sparse(auto) in blocks of BATCH_BLOCK
    samples and in one block (one shard: intra-op threads in every operation)."""
    sparse = to_sparse(model, layout="auto")
    whole = to_sparse(model, layout="auto", batch_block=len(x))
    checks = [agreement(model, exported, x) for exported in (sparse, whole)]
    same = all(c["same_prediction"] == c["images"] for c in checks)
    err = max(c["max_logit_diff"] for c in checks)
    with torch.no_grad():
        t = timed({"dense": lambda: model(x), "sparse": lambda: sparse(x), "whole": lambda: whole(x)},
                  repeats)
    dens = " ".join(f"{d:.3f}" for d in density_report(model)["density"])
    layouts = ",".join(layer.layout for layer in sparse.layers())
    n = len(x)
    print(f"{label:<8} {dens:<20} {layouts:<16} {n / t['dense']:>8.0f} {n / t['sparse']:>9.0f} "
          f"{t['dense'] / t['sparse']:>6.2f}x {n / t['whole']:>9.0f} {t['dense'] / t['whole']:>6.2f}x "
          f"{memory_bytes(model) / 2**20:>8.2f} {memory_bytes(sparse) / 2**20:>9.2f} "
          f"{memory_bytes(model) / memory_bytes(sparse):>6.2f}x {'yes' if same else 'NO':>4} {err:.1e}")


def print_header() -> None:
    print(f"{'':<8} {'density per layer':<20} {'layouts':<16} {'dense/s':>8} {'sparse/s':>9} {'speed':>7} "
          f"{'1-block/s':>9} {'speed':>7} {'dense MB':>8} {'sparse MB':>9} {'mem':>7} {'same':>4} max|dlogit|")
    print(f"{'':<8} {'':<20} {'':<16} {'':>8} {f'(blk {BATCH_BLOCK})':>9}")


def layouts_by_density(args, gen: torch.Generator) -> None:
    """Part 1: each layout's CPU time relative to dense, one thread, in blocks of BATCH_BLOCK."""
    model = build_model("s-fc", args.alpha)
    block = min(BATCH_BLOCK, args.batch)
    print(f"1) one layer, one thread, {args.batch} samples in blocks of {block}: CPU time relative to dense "
          f"(< 1 is faster)")
    for name in ("conv1.layer", "fc1.layer"):
        out_f, in_f = model.get_submodule(name).weight.shape
        hs = [torch.randn(in_f, len(range(i, min(i + block, args.batch))), generator=gen)
              for i in range(0, args.batch, block)]  # feature-major blocks, as inside SparseMLP
        print(f"{name} {in_f} -> {out_f}\n{'density':>8} {'dense ms':>9} "
              + " ".join(f"{lay:>6}" for lay in LAYOUTS[1:-1]))
        for density in args.densities:
            weight = torch.randn(out_f, in_f, generator=gen)
            prune_(weight, density)
            layers = {lay: SparseLinear(weight, torch.zeros(out_f), lay) for lay in LAYOUTS[1:]}
            with torch.no_grad(), num_threads(1):
                for lay, layer in layers.items():
                    torch.testing.assert_close(layer(hs[0]), layers["dense"](hs[0]), rtol=1e-4, atol=1e-3)
                t = timed({lay: (lambda layer=layer: [layer(h) for h in hs]) for lay, layer in layers.items()},
                          args.repeats, clock=time.thread_time)
            print(f"{density:>8.3f} {t['dense'] * 1e3:>9.1f} "
                  + " ".join(f"{t[lay] / t['dense']:>6.2f}" for lay in LAYOUTS[1:-1]))


def report_synthetic(args) -> None:
    gen = torch.Generator().manual_seed(0)
    if not args.skip_layouts:
        layouts_by_density(args, gen)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    for n in args.threads:
        with num_threads(n):
            print(f"\n2) S-FC α={args.alpha}: dense eval model vs to_sparse(layout='auto'); "
                  f"torch {torch.__version__}, {n} thread(s), batch {args.batch}, "
                  f"medians of {args.repeats} interleaved repeats")
            print_header()
            for density in args.densities:
                compare(f"d={density:g}", pruned_s_fc(args.alpha, density, gen), x, args.repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="report the trained runs of results/PROFILE (e.g. cpu)")
    parser.add_argument("--run", type=Path, action="append", default=[], help="a trained run directory (repeatable)")
    parser.add_argument("--alpha", type=int, default=8, help="S-FC base channels α (Table 4), synthetic mode")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.10, 0.25, 0.40, 0.50],
                        help="synthetic mode: first-layer densities (fc1 gets twice, fc2 stays dense)")
    parser.add_argument("--batch", type=int, default=512, help="inputs per timed forward pass")
    parser.add_argument("--images", type=int, default=1000, help="inputs of the agreement check (trained runs)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch.set_num_threads values")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per variant (default 21 for trained runs, 5 synthetic)")
    parser.add_argument("--pause-ms", type=float, default=SETTLE_S * 1e3,
                        help="trained runs: untimed pause before each timed call (default: chapter 11's, "
                             "companion.nn.sparse_measure.SETTLE_S; 0 = back to back)")
    parser.add_argument("--cold", action="store_true",
                        help="trained runs: time each call right after the pause, without the untimed "
                             "call of the same variant before it")
    parser.add_argument("--no-cpu-time", action="store_true",
                        help="trained runs: skip the second, CPU-time loop of the one-thread variants")
    parser.add_argument("--skip-layouts", action="store_true", help="synthetic mode: skip part 1 (per-layer layouts)")
    args = parser.parse_args(argv)
    trained = args.profile is not None or bool(args.run)
    args.repeats = args.repeats or (21 if trained else 5)
    if min(args.alpha, args.batch, args.images, *args.threads, args.repeats) < 1:
        raise SystemExit("--alpha, --batch, --images, --threads and --repeats must be >= 1")
    if not all(0 < d <= 1 for d in args.densities):
        raise SystemExit(f"--densities must be in (0, 1], got {args.densities}")
    report_trained(args) if trained else report_synthetic(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
