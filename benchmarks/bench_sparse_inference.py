"""CPU inference of S-FC: dense eval model vs :func:`companion.nn.sparse.to_sparse` (Section 5).

Part 1 (per layer): S-FC's first layer (3072 -> 256α) magnitude-pruned to each density, timed in
every layout of ``companion.nn.sparse`` (the "auto" threshold comes from here).
Part 2 (whole model): S-FC α with ``conv1.layer`` pruned to density d, ``fc1.layer`` to 2d and
``fc2`` dense (Figure 3's pattern), random batch-norm statistics; images/s and memory of the
dense eval model vs its ``to_sparse(layout="auto")`` export, on the same batch, interleaved,
medians; predictions checked identical.
``--run DIR`` instead reports a trained run of the results store (DIR/config.json +
DIR/checkpoint.pt) at its learned densities.

    .venv/bin/python benchmarks/bench_sparse_inference.py [--alpha 8] [--batch 512]
        [--densities 0.01 0.02 0.05 0.10 0.25] [--threads 2 1] [--repeats 5] [--run DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from companion.nn.models import build_model
from companion.nn.sparse import (BATCH_BLOCK, LAYOUTS, SparseLinear, agreement, density_report, memory_bytes, timed,
                              to_sparse)

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


@torch.no_grad()
def prune_(weight: torch.Tensor, density: float) -> None:
    """Keep the ``density`` fraction of largest-magnitude entries of ``weight``, zero the rest."""
    keep = max(1, round(density * weight.numel()))
    if keep < weight.numel():
        threshold = weight.abs().flatten().kthvalue(weight.numel() - keep).values
        weight.mul_(weight.abs() > threshold)


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


def load_run(run_dir: Path) -> torch.nn.Module:
    """The trained model of a results-store run directory (config.json + checkpoint.pt)."""
    from companion.store.results import load_run as read_run
    from companion.store.artifacts import load_model

    run = read_run(run_dir)
    model = load_model(run)
    c = run.config
    print(f"run {run_dir}: {c.model} α={c.alpha} {c.dataset} {c.optimizer} λ={c.lam} β={c.beta}")
    return model


def compare(label: str, model: torch.nn.Module, x: torch.Tensor, repeats: int) -> None:
    """One row of part 2: images/s and memory, dense vs sparse(auto) in blocks of BATCH_BLOCK
    samples and in one block (fewer, longer parallel regions)."""
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=int, default=8, help="S-FC base channels α (Table 4)")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.10, 0.25],
                        help="first-layer densities (fc1 gets twice, fc2 stays dense)")
    parser.add_argument("--batch", type=int, default=512, help="images per forward pass")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1],
                        help="torch.set_num_threads values, each a full run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per variant")
    parser.add_argument("--run", type=Path, default=None, help="a trained run directory to report instead")
    parser.add_argument("--skip-layouts", action="store_true", help="skip part 1 (per-layer layouts)")
    args = parser.parse_args(argv)
    if args.alpha < 1 or args.batch < 1 or min(args.threads) < 1 or args.repeats < 1:
        raise SystemExit("--alpha, --batch, --threads and --repeats must be >= 1")
    if not all(0 < d <= 1 for d in args.densities):
        raise SystemExit(f"--densities must be in (0, 1], got {args.densities}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        run(args)
    return 0


def run(args) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    print(f"\n=== torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch {args.batch}, "
          f"medians of {args.repeats} interleaved repeats")

    if args.run is not None:
        model = load_run(args.run)
        print(density_report(model).to_string(index=False))
        print_header()
        compare("run", model, x, args.repeats)
        return

    if not args.skip_layouts:
        out_f, in_f = 256 * args.alpha, 3 * 32 * 32
        h = torch.randn(in_f, args.batch, generator=gen)  # feature-major, as inside SparseMLP
        print(f"1) first layer {in_f} -> {out_f}, whole batch of {args.batch}: time relative to dense "
              f"(< 1 is faster)")
        print(f"{'density':>8} {'dense ms':>9} " + " ".join(f"{name:>6}" for name in LAYOUTS[1:-1]))
        for density in args.densities:
            weight = torch.randn(out_f, in_f, generator=gen)
            prune_(weight, density)
            bias = torch.zeros(out_f)
            layers = {name: SparseLinear(weight, bias, name) for name in LAYOUTS[1:]}
            with torch.no_grad():
                ref = layers["dense"](h)
                for name, layer in layers.items():
                    torch.testing.assert_close(layer(h), ref, rtol=1e-4, atol=1e-4)
                t = timed({name: (lambda layer=layer: layer(h)) for name, layer in layers.items()},
                          args.repeats)
            print(f"{density:>8.3f} {t['dense'] * 1e3:>9.1f} "
                  + " ".join(f"{t[name] / t['dense']:>6.2f}" for name in LAYOUTS[1:-1]))

    print(f"2) S-FC α={args.alpha}: dense eval model vs to_sparse(layout='auto')")
    print_header()
    for density in args.densities:
        compare(f"d={density:g}", pruned_s_fc(args.alpha, density, gen), x, args.repeats)


if __name__ == "__main__":
    raise SystemExit(main())
