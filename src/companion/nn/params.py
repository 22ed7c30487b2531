"""Exact parameter accounting beside the paper's closed forms (Tables 1, 3, 4; Figure 1).

Exact counts come from the real modules, built on the ``meta`` device (no memory). The paper's
formulas count weights only and approximate; :func:`layer_table` puts both side by side, and
the differences are all of these kinds:

1. batch-norm: 2 parameters per channel (CONV, LOCAL) or per unit (FC) after every layer but
   the last; the last layer's bias: ``c``. Neither is in the tables.
2. D-CONV's total writes ``9·2⁸ α²`` for the convolutions, whose exact sum is ``9·(2⁸−2) α²``;
   D-FC's total writes ``s⁴α²`` for ``s⁴α²·(1/2 + … + 1/128) = s⁴α²·127/128``.
3. Table 3's D-LOCAL column: conv3 … conv8 read ``9·s²α²/2^(i−1)``, but a locally connected
   layer has (conv weights) × (output positions) = ``9·s²α²`` (odd layers) or ``9·s²α²/2``
   (even layers) weights, so D-LOCAL's exact size is about 3.4× the tabulated ``13 s²α²``.
   The paper's "3.42 M" for D-LOCAL (Table 1) is the tabulated formula at α = 15; the network
   that Table 3 describes layer by layer has 11.7 M parameters.
"""

from __future__ import annotations

import argparse

import pandas as pd
from torch import nn

from companion import paper
from companion.nn.layers import LocallyConnected2d
from companion.nn.models import MODEL_NAMES, build_model, check_model_args, family

PAPER_NETS = ("d-conv", "d-local", "d-fc", "s-conv", "s-local", "s-fc")
TABLE1_MODELS = PAPER_NETS + ("3-fc",)


def count_params(name: str, alpha: int, **kwargs) -> int:
    """Exact number of trainable parameters (weights, biases, batch-norm) of ``build_model``."""
    model = build_model(name, alpha, device="meta", **kwargs)
    return sum(p.numel() for p in model.parameters())


def fc_counterpart(name: str) -> str:
    """The FC network a model embeds into (Section 2): ``s-conv`` → ``s-fc``; 3-FC is its own."""
    if name == "resnet18":
        raise ValueError("resnet18 has no fully-connected counterpart in the paper")
    check_model_args(name, 1, image_size=32)
    return name if name == "3-fc" else f"{family(name)[0]}-fc"


def paper_layer_formulas(name: str, alpha: int, image_size: int = 32, num_classes: int = 10) -> dict:
    """Per-layer "#param" entries of Tables 3/4 (as printed, 3 input channels), by layer name."""
    a, s, c = alpha, image_size, num_classes
    depth, variant = family(name)
    if depth == "d":
        rows = {"conv1": {"conv": 9 * 3 * a, "local": 9 * 3 * s**2 * a, "fc": 3 * s**4 * a}[variant]}
        for i in range(2, 9):
            rows[f"conv{i}"] = {
                "conv": 9 * 2 ** (i - 1) * a**2,
                "local": 9 * s**2 * a**2 / 2 ** (i - 1),
                "fc": s**4 * a**2 / 2 ** (i - 1),
            }[variant]
        rows["fc1"], rows["fc2"] = 4 * s**2 * a**2, 64 * c * a
        return rows
    if depth == "s":
        conv1 = {"conv": 81 * 3 * a, "local": 81 * 3 * s**2 * a / 4, "fc": 3 * s**4 * a / 4}[variant]
        return {"conv1": conv1, "fc1": 6 * s**2 * a**2, "fc2": 24 * c * a}
    raise ValueError(f"Tables 3/4 cover {', '.join(PAPER_NETS)}; got {name!r}")


def paper_param_count(name: str, alpha: int, image_size: int = 32, num_classes: int = 10) -> float:
    """The paper's closed-form total ("Total" rows of Tables 3 and 4, the ≈ formulas).

    ``3-fc`` has no table; its count ``3s²α + α² + cα`` is derived from Appendix A.1 (weights of
    two hidden layers of width α). ``resnet18`` has no closed form in the paper.
    """
    check_model_args(name, alpha, image_size=image_size, num_classes=num_classes)
    a, s, c = alpha, image_size, num_classes
    totals = {
        "d-conv": (9 * 2**8 + 4 * s**2) * a**2 + (27 + 64 * c) * a,
        "d-local": 13 * s**2 * a**2 + (27 * s**2 + 64 * c) * a,
        "d-fc": (s**4 + 4 * s**2) * a**2 + (3 * s**4 + 64 * c) * a,
        "s-conv": 6 * s**2 * a**2 + (243 + 24 * c) * a,
        "s-local": 6 * s**2 * a**2 + (243 * s**2 / 4 + 24 * c) * a,
        "s-fc": 6 * s**2 * a**2 + (3 * s**4 / 4 + 24 * c) * a,
        "3-fc": 3 * s**2 * a + a**2 + c * a,
    }
    if name not in totals:
        raise ValueError(f"the paper gives no closed form for {name!r}; use count_params (exact)")
    return float(totals[name])


def _description(module: nn.Module, alpha: int) -> str:
    """Table-style description: ``conv3x3(2α, 2)``, ``local9x9(α, 2)``, ``FC(24α)``."""
    layer = module.layer if hasattr(module, "layer") else module

    def width(n):
        return "α" if n == alpha else (f"{n // alpha}α" if n % alpha == 0 else str(n))

    if isinstance(layer, nn.Conv2d):
        k, st = layer.kernel_size[0], layer.stride[0]
        return f"conv{k}x{k}({width(layer.out_channels)}, {st})"
    if isinstance(layer, LocallyConnected2d):
        k = layer.kernel_size
        return f"local{k}x{k}({width(layer.out_channels)}, {layer.stride})"
    return f"FC({width(layer.out_features)})"


def layer_table(name: str, alpha: int, *, image_size: int = 32, in_channels: int = 3,
                num_classes: int = 10, **options) -> pd.DataFrame:
    """Per-layer exact counts (weight, bias, batch-norm) beside the paper's formula (Tables 3/4).

    One row per weight layer in table order, then a ``Total`` row whose ``paper`` entry is
    :func:`paper_param_count`. ``paper`` is NaN where the paper has no entry.
    """
    model = build_model(name, alpha, image_size=image_size, in_channels=in_channels,
                        num_classes=num_classes, device="meta", **options)
    modules = dict(model.named_modules())
    formulas = {}
    if name in PAPER_NETS and in_channels == 3:
        formulas = paper_layer_formulas(name, alpha, image_size, num_classes)
    rows = []
    for layer_name in model.paper_layers:
        layer = modules[layer_name]
        block_name = layer_name.rsplit(".", 1)[0] if layer_name.endswith(".layer") else layer_name
        block = modules[block_name]
        bn = getattr(block, "bn", None) if block is not layer else None
        row = {
            "layer": block_name,
            "description": _description(layer, alpha),
            "weight": layer.weight.numel(),
            "bias": layer.bias.numel() if layer.bias is not None else 0,
            "bn": sum(p.numel() for p in bn.parameters()) if bn is not None else 0,
            "paper": formulas.get(block_name, float("nan")),
        }
        row["total"] = row["weight"] + row["bias"] + row["bn"]
        rows.append(row)
    table = pd.DataFrame(rows, columns=["layer", "description", "weight", "bias", "bn", "total", "paper"])
    exact_total = sum(p.numel() for p in model.parameters())
    try:
        paper_total = paper_param_count(name, alpha, image_size, num_classes) if in_channels == 3 else float("nan")
    except ValueError:
        paper_total = float("nan")
    total = {"layer": "Total", "description": f"{name}(α={alpha})", "weight": table["weight"].sum(),
             "bias": table["bias"].sum(), "bn": exact_total - table["weight"].sum() - table["bias"].sum(),
             "total": exact_total, "paper": paper_total}
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def alpha_for_budget(name: str, params: float, *, image_size: int = 32, in_channels: int = 3,
                     num_classes: int = 10) -> int:
    """Smallest α whose FC counterpart has at least ``params`` parameters (Section 2.2).

    Section 2.2 sizes every network of Table 1 so that its FC counterpart has "roughly 256
    million" parameters. "Smallest α reaching the budget" reproduces both α that Table 1 implies
    (D-CONV 1.45 M ⇒ α = 15; S-CONV 138 M ⇒ α = 150); counts are exact (:func:`count_params`).
    """
    if not params > 0:
        raise ValueError(f"params must be a positive number of parameters, got {params!r}")
    target = fc_counterpart(name)
    kwargs = dict(image_size=image_size, in_channels=in_channels, num_classes=num_classes)
    check_model_args(target, 1, **kwargs)
    lo, hi = 1, 1
    while count_params(target, hi, **kwargs) < params:
        lo, hi = hi + 1, hi * 2
    while lo < hi:  # counts grow with α: binary search for the first α reaching the budget
        mid = (lo + hi) // 2
        if count_params(target, mid, **kwargs) >= params:
            hi = mid
        else:
            lo = mid + 1
    return lo


def table1_params(budget: float = paper.FC_BUDGET, *, image_size: int = 32, num_classes: int = 10) -> pd.DataFrame:
    """Table 1's "#param (M) orig. / FC-emb." columns, ours (exact) beside the paper's."""
    rows = []
    for name in TABLE1_MODELS:
        alpha = alpha_for_budget(name, budget, image_size=image_size, num_classes=num_classes)
        kwargs = dict(image_size=image_size, num_classes=num_classes)
        orig = count_params(name, alpha, **kwargs)
        fc_emb = count_params(fc_counterpart(name), alpha, **kwargs)
        paper_orig, paper_fc = paper.TABLE1_PARAMS_M[name]
        rows.append({
            "model": name, "alpha": alpha,
            "orig_M": orig / 1e6, "fc_emb_M": fc_emb / 1e6,
            "formula_orig_M": paper_param_count(name, alpha, image_size, num_classes) / 1e6,
            "paper_orig_M": paper_orig, "paper_fc_emb_M": paper_fc,
        })
    return pd.DataFrame(rows)


def scaling(names=PAPER_NETS, *, alphas=None, image_sizes=None, alpha: int = 16,
            image_size: int = 32) -> pd.DataFrame:
    """Exact parameter counts as α grows (at ``image_size``) and as s grows (at ``alpha``).

    The data of Figure 1's right panel, long form: ``model, alpha, image_size, params, sweep``.
    """
    alphas = list(alphas) if alphas is not None else [1, 2, 4, 8, 16, 32, 64, 128, 256]
    image_sizes = list(image_sizes) if image_sizes is not None else [16, 32, 48, 64, 96, 128]
    rows = []
    for name in names:
        for a in alphas:
            rows.append({"model": name, "alpha": a, "image_size": image_size, "sweep": "alpha",
                         "params": count_params(name, a, image_size=image_size)})
        for s in image_sizes:
            rows.append({"model": name, "alpha": alpha, "image_size": s, "sweep": "image_size",
                         "params": count_params(name, alpha, image_size=s)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- CLI
def _format_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    for col in ("weight", "bias", "bn", "total"):
        shown[col] = shown[col].map(lambda v: f"{int(v):,}")
    shown["paper"] = table["paper"].map(lambda v: "—" if v != v else f"{v:,.0f}")
    return shown.to_string(index=False)


def run_cli(args: argparse.Namespace) -> int:
    models = args.models or []
    for name in models:
        if args.alpha is not None:
            alpha = args.alpha
        elif name == "resnet18":
            alpha = 64  # He et al. (2016)'s width
        else:
            alpha = alpha_for_budget(name, args.budget, image_size=args.image_size, num_classes=args.num_classes)
        kwargs = {"kernel_size": args.kernel_size} if name == "resnet18" else {}
        table = layer_table(name, alpha, image_size=args.image_size, num_classes=args.num_classes, **kwargs)
        print(f"\n{name}, α={alpha}, s={args.image_size}, c={args.num_classes}  "
              f"(exact counts; 'paper' = formula of Tables 3/4)")
        print(_format_table(table))
    if not models or args.table1:
        t1 = table1_params(args.budget, image_size=args.image_size, num_classes=args.num_classes)
        print(f"\nTable 1, #param (M): α = smallest whose FC counterpart has >= {args.budget / 1e6:g} M "
              f"parameters (s={args.image_size}, c={args.num_classes})")
        shown = t1.rename(columns={"orig_M": "orig.", "fc_emb_M": "FC-emb.", "formula_orig_M": "orig. (formula)",
                                   "paper_orig_M": "paper orig.", "paper_fc_emb_M": "paper FC-emb."})
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3g}" if v < 10 else f"{v:.1f}"))
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "params", help="per-layer parameter tables (Tables 3/4) and Table 1's #param columns",
        description="Exact parameter counts beside the paper's formulas (Tables 1, 3, 4).",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"models to tabulate layer by layer ({', '.join(MODEL_NAMES)})")
    p.add_argument("--alpha", type=int, default=None,
                   help="base channels (default: the α of Table 1's 256 M budget)")
    p.add_argument("--image-size", type=int, default=32, help="image size s (default 32)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes c (default 10)")
    p.add_argument("--kernel-size", type=int, default=3, help="resnet18 block kernel (default 3)")
    p.add_argument("--budget", type=float, default=paper.FC_BUDGET,
                   help="FC-counterpart budget for choosing α (default 256e6, Section 2.2)")
    p.add_argument("--table1", action="store_true", help="also print Table 1's #param columns")
    p.set_defaults(func=run_cli)
